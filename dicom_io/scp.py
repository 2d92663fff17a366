"""A storage SCP: receive radiographs by C-STORE and hand each one over as a durable file.

The node must never acknowledge an image it could lose, so every C-STORE is answered only
after the received bytes are a complete DICOM Part-10 file in the spool's ``incoming`` folder:
written to a temporary file, fsynced, renamed, and the folder fsynced. File names come from
``uuid4`` and never from a UID in the data, so a hostile SOP Instance UID cannot escape the
spool. Only then is the caller's handler run, with a :class:`ReceivedInstance`; what it returns
(or raises) becomes the DIMSE status the sender sees.

Statuses the sender can get:

- ``0x0000`` (or a warning ``0xB0xx``) — whatever the handler returned; the file is the
  handler's to keep or move.
- ``0xA700`` out of resources — the handler raised :class:`OutOfResources`, the spool's (or a
  watched) disk went below ``min_free_bytes`` during the association, or the spool could not be
  written.
- ``0xA900`` data set does not match SOP class — :class:`DataSetMismatch`, or the data set's own
  SOP Class / Instance UID differ from the C-STORE request's.
- ``0xC000`` cannot understand — :class:`CannotUnderstand`, or the data set does not parse,
  is larger than ``max_dataset_bytes`` or inflates beyond it.
- ``0x0122`` SOP class not supported — :class:`SOPClassNotSupported`, or a request on a
  presentation context of another SOP class. SOP classes the node does not store at all are
  refused earlier, at association: no presentation context is accepted for them.
- ``0xC211`` — the handler raised anything else (logged with its traceback); the SCP goes on.

Failures carry a short Error Comment; on every failure status the spooled file is removed if
the handler left it in place. Calling AE titles outside the allow-list, and every association
while a watched disk is below ``min_free_bytes``, get an A-ASSOCIATE-RJ.

Hostile peers are bounded before they cost memory, disk or association slots:

- A connection from a host outside ``allowed_hosts``, or from a host that already holds
  ``max_associations_per_host`` connections, is closed at accept, before a byte is read.
- The whole association request (TLS handshake included) must arrive within
  ``acse_timeout`` of the accept, however slowly it trickles in; a PDU that stalls for
  ``network_timeout`` after that is dropped too.
- A PDU longer than twice the announced maximum (1 MiB at least), or a data set of more than
  ``max_dataset_bytes``, aborts the association (A-ABORT) as its bytes arrive; pynetdicom's
  temporary file of the data set lives in the spool's ``tmp`` folder and is removed.
- A Deflated data set is inflated in a stream with its output counted, and spooled as Explicit
  VR Little Endian: one that inflates beyond ``max_dataset_bytes`` is refused with 0xC000 and
  no later header read ever inflates anything.
- At start the spool's ``tmp`` folder is emptied (no association runs yet), and with
  ``sweep_incoming`` so is ``incoming``: for a handler that moves every file it acknowledges
  (the node's), what is left there was never acknowledged, and the sender sends it again.

Logging uses the standard :mod:`logging` module (logger ``dicom_io.scp``) with structured
``extra`` fields; nothing from the data set beyond its UIDs is ever logged.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import ipaddress
import logging
import os
import shutil
import socket
import socketserver
import ssl
import struct
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self, cast

from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    JPEG2000,
    UID,
    ComputedRadiographyImageStorage,
    DeflatedExplicitVRLittleEndian,
    DigitalXRayImageStorageForPresentation,
    DigitalXRayImageStorageForProcessing,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
    SecondaryCaptureImageStorage,
)
from pynetdicom import AE, _config, build_context, dimse_messages, evt
from pynetdicom.association import Association
from pynetdicom.dsutils import encode_file_meta, split_dataset
from pynetdicom.events import Event
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.transport import AssociationSocket, RequestHandler, ThreadedAssociationServer

from dicom_io.scu import ae_title_problem, check_ae_title

__all__ = [
    "RESULT_SOP_CLASSES",
    "STORAGE_SOP_CLASSES",
    "TRANSFER_SYNTAXES",
    "CannotUnderstand",
    "DataSetMismatch",
    "OutOfResources",
    "ReceivedInstance",
    "SOPClassNotSupported",
    "StorageSCP",
    "StoreHandler",
    "StoreRefused",
    "supported_contexts",
]

logger = logging.getLogger(__name__)

STORAGE_SOP_CLASSES: tuple[UID, ...] = (
    ComputedRadiographyImageStorage,
    DigitalXRayImageStorageForPresentation,
    DigitalXRayImageStorageForProcessing,
    SecondaryCaptureImageStorage,
)
"""The radiograph storage SOP classes the SCP accepts (besides Verification)."""

RESULT_SOP_CLASSES: tuple[UID, ...] = (
    UID("1.2.840.10008.5.1.4.1.1.88.34"),  # Comprehensive 3D SR
    UID("1.2.840.10008.5.1.4.1.1.11.1"),  # Grayscale Softcopy Presentation State
    SecondaryCaptureImageStorage,
)
"""What rascore sends back: an SCP standing in for a PACS (demo, benchmark) accepts these."""

TRANSFER_SYNTAXES: tuple[UID, ...] = (
    # The acceptor takes the first of these that the sender proposes in a context, so the
    # uncompressed ones come first: a sender is never asked to compress (let alone lossily)
    # an image it holds uncompressed. Compressed images offered only compressed arrive as
    # they are.
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    JPEGLosslessSV1,
    JPEGLossless,
    RLELossless,
    JPEG2000,
    JPEGLSNearLossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
)
"""Transfer syntaxes accepted for the storage SOP classes, in order of preference."""

_SUCCESS_OR_WARNING = frozenset({0x0000, 0xB000, 0xB006, 0xB007})
_STATUS_PROCESSING_FAILURE = 0xC211
_COPY_CHUNK = 1 << 20
_MB = 1024 * 1024
# A PDU may be this much larger than the maximum we announce (or 1 MiB, whichever is more)
# before the association is aborted instead of the PDU being read: the length field is 32 bits.
_PDU_SLACK = 2
_MIN_PDU_LIMIT = _MB
_UNLIMITED_PDU_LIMIT = 64 * _MB  # when no maximum is announced (max_pdu_size 0)
_MAX_COMMAND_BYTES = _MB  # a command set is a few hundred bytes
_LOOPBACK = ("127.0.0.0/8", "::1")


def supported_contexts(
    sop_classes: Iterable[str] = STORAGE_SOP_CLASSES,
) -> list[PresentationContext]:
    """The presentation contexts the SCP supports: Verification and ``sop_classes``."""
    contexts = [build_context(Verification, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])]
    contexts += [build_context(sop, list(TRANSFER_SYNTAXES)) for sop in sop_classes]
    return contexts


class StoreRefused(Exception):
    """Raised by a handler to refuse an instance with a DIMSE failure ``status``.

    The message goes back to the sender as the Error Comment (64 characters at most), so it
    must not contain patient data.
    """

    status = 0xC000

    def __init__(self, message: str = "", *, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class OutOfResources(StoreRefused):
    """Refused: out of resources (0xA700) — e.g. disk or database full; sender should retry."""

    status = 0xA700


class DataSetMismatch(StoreRefused):
    """Error: data set does not match SOP class (0xA900)."""

    status = 0xA900


class CannotUnderstand(StoreRefused):
    """Error: cannot understand (0xC000) — the data set cannot be used as it is."""

    status = 0xC000


class SOPClassNotSupported(StoreRefused):
    """Refused: SOP class not supported (0x0122)."""

    status = 0x0122


@dataclass(frozen=True)
class ReceivedInstance:
    """One received instance, already durable in the spool's ``incoming`` folder."""

    path: Path  # complete DICOM Part-10 file (preamble, file meta, data set as received)
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax: str  # of the spooled file: as negotiated, but a deflated one is inflated
    calling_ae_title: str
    calling_host: str
    calling_port: int
    called_ae_title: str
    received_at: datetime  # UTC, when the whole data set had arrived
    size: int  # bytes of the spooled file
    sha256: str  # hex digest of the data set bytes as received (file meta excluded)
    received_transfer_syntax: str = ""  # the negotiated one, when it differs (Deflated)


StoreHandler = Callable[[ReceivedInstance], int]


class StorageSCP:
    """A storage SCP for hand radiographs, small enough to run on its own in a test.

    ``handler`` is called once per received instance, from the association's thread (so
    concurrently for concurrent associations: it must be thread-safe), and returns a DIMSE
    status (``0x0000`` on success) or raises a :class:`StoreRefused`. ``port=0`` binds a free
    port; :attr:`port` tells which once started.
    """

    def __init__(
        self,
        ae_title: str,
        port: int,
        handler: StoreHandler,
        *,
        spool_dir: Path | str,
        host: str = "0.0.0.0",
        max_associations: int = 10,
        allowed_calling_aets: Iterable[str] | None = None,
        allowed_hosts: Iterable[str] | None = None,
        require_called_aet: bool = False,
        tls: ssl.SSLContext | None = None,
        min_free_bytes: int = 0,
        network_timeout: float = 60.0,
        acse_timeout: float = 30.0,
        dimse_timeout: float = 30.0,
        max_pdu_size: int = 256 * 1024,
        sop_classes: Iterable[str] = STORAGE_SOP_CLASSES,
        max_dataset_bytes: int = 512 * _MB,
        max_associations_per_host: int = 0,
        watch_free: Iterable[Path | str] = (),
        any_aet_hosts: Iterable[str] | None = None,
        rejection_hint: str = "",
        sweep_incoming: bool = False,
    ) -> None:
        """See the module's docstring; the arguments beyond the obvious ones:

        ``max_dataset_bytes`` caps one data set as received and as inflated;
        ``max_associations_per_host`` caps the connections one host holds at once (0: no cap);
        ``watch_free`` lists more folders (the store's) whose disks must keep
        ``min_free_bytes`` free; ``any_aet_hosts`` are hosts or networks from which any calling
        AE title is accepted even when ``allowed_calling_aets`` is given; ``rejection_hint``
        is appended to the log line of a refused calling AE title (how to allow it).
        """
        check_ae_title(ae_title, "ae_title")
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be 0-65535 (0 = any free port), not {port}")
        if max_associations < 1:
            raise ValueError("max_associations must be at least 1")
        if max_dataset_bytes < 1 or max_associations_per_host < 0:
            raise ValueError("max_dataset_bytes must be positive, max_associations_per_host >= 0")
        self.ae_title = ae_title.strip()
        self.host = host
        self._requested_port = port
        self.handler = handler
        self.spool_dir = Path(spool_dir)
        self.incoming_dir = self.spool_dir / "incoming"
        self._tmp_dir = self.spool_dir / "tmp"
        self.max_associations = max_associations
        self.allowed_calling_aets = (
            None if allowed_calling_aets is None else {a.strip() for a in allowed_calling_aets}
        )
        self.allowed_hosts = None if allowed_hosts is None else set(allowed_hosts)
        self.require_called_aet = require_called_aet
        self.tls = tls
        self.min_free_bytes = min_free_bytes
        self.network_timeout = network_timeout
        self.acse_timeout = acse_timeout
        self.dimse_timeout = dimse_timeout
        self.max_pdu_size = max_pdu_size
        self.sop_classes = tuple(sop_classes)
        self.max_dataset_bytes = max_dataset_bytes
        self.max_associations_per_host = max_associations_per_host
        self.watch_free = tuple(Path(p) for p in watch_free)
        self.any_aet_hosts = None if any_aet_hosts is None else tuple(any_aet_hosts)
        self.rejection_hint = rejection_hint
        self.sweep_incoming = sweep_incoming
        self._networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        self._any_aet_networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        self._ae: AE | None = None
        self._server: _AssociationServer | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port once started (the real one when constructed with port 0)."""
        if self._server is None:
            return self._requested_port
        return int(self._server.server_address[1])

    @property
    def is_running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        """Start listening; returns as soon as the port accepts connections."""
        if self._server is not None:
            raise RuntimeError("the SCP is already running")
        # Stream large data sets to a file instead of holding them in memory.
        _config.STORE_RECV_CHUNKED_DATASET = True
        self.incoming_dir.mkdir(parents=True, exist_ok=True)
        self._tmp_dir.mkdir(parents=True, exist_ok=True)
        self._sweep_spool()
        self._networks = _resolve_hosts(self.allowed_hosts) if self.allowed_hosts else []
        self._any_aet_networks = _resolve_hosts(self.any_aet_hosts or ())
        _keep_pynetdicom_temporary_files_in_the_spool()

        ae = AE(ae_title=self.ae_title)
        ae.supported_contexts = supported_contexts(self.sop_classes)
        ae.maximum_associations = self.max_associations
        ae.maximum_pdu_size = self.max_pdu_size
        ae.network_timeout = self.network_timeout
        ae.acse_timeout = self.acse_timeout
        ae.dimse_timeout = self.dimse_timeout
        ae.require_called_aet = self.require_called_aet
        handlers: list[evt.EventHandlerType] = [
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_CONN_CLOSE, self._on_conn_close),
        ]
        server = ae.make_server(
            (self.host, self._requested_port),
            ssl_context=self.tls,
            evt_handlers=handlers,
            server_class=_AssociationServer,
            request_handler=_RequestHandler,
        )
        assert isinstance(server, _AssociationServer)
        server.handshake_timeout = self.acse_timeout
        server.request_deadline = self.acse_timeout
        server.stall_timeout = self.network_timeout
        server.host_allowed = self._host_allowed if self.allowed_hosts is not None else None
        server.max_per_host = self.max_associations_per_host
        server.tmp_dir = self._tmp_dir
        server.limits = _Limits(
            max_pdu_bytes=(
                max(self.max_pdu_size * _PDU_SLACK, _MIN_PDU_LIMIT)
                if self.max_pdu_size
                else _UNLIMITED_PDU_LIMIT
            ),
            max_dataset_bytes=self.max_dataset_bytes,
        )
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},  # how soon stop() is noticed
            name=f"StorageSCP@{self.port}",
            daemon=True,
        )
        self._ae, self._server, self._thread = ae, server, thread
        thread.start()
        logger.info(
            "storage SCP %s listening on %s:%d%s",
            self.ae_title,
            self.host,
            self.port,
            " (TLS)" if self.tls else "",
            extra={"event": "dicom.scp.start", "ae_title": self.ae_title, "port": self.port},
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, let running associations finish for ``timeout`` s, abort the rest."""
        server, ae, thread = self._server, self._ae, self._thread
        if server is None or ae is None:
            return
        server.shutdown()
        if thread is not None:
            thread.join(timeout)
        # Established associations may be in the middle of a C-STORE: let them finish.
        # Ones still negotiating (or idle garbage connections) are simply aborted.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(a.is_established for a in ae.active_associations):
            time.sleep(0.02)
        for assoc in ae.active_associations:
            assoc.abort()
        self._server = self._ae = self._thread = None
        logger.info(
            "storage SCP %s stopped",
            self.ae_title,
            extra={"event": "dicom.scp.stop", "ae_title": self.ae_title},
        )

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- association control ------------------------------------------------------------------

    def _host_allowed(self, host: str) -> bool:
        return _in_networks(host, self._networks)

    def _on_requested(self, event: Event) -> None:
        """Reject unknown calling AE titles, and everyone while a watched disk is nearly full.

        Hosts were checked at accept (:class:`_AssociationServer`).
        """
        assoc = event.assoc
        primitive = assoc.requestor.primitive
        calling = str(getattr(primitive, "calling_ae_title", "") or "").strip()
        host = assoc.requestor.address
        if not self._calling_aet_allowed(calling, host):
            why = "calling AE title not recognised"
            hint = f"; {self.rejection_hint}" if self.rejection_hint else ""
            # Rejected (permanent), by the service user; as pynetdicom does for
            # require_calling_aet.
            self._reject(assoc, calling, why + hint, why, (0x01, 0x01, 0x03))
            return
        full = self._full_disk()
        if full is not None:
            # Rejected (transient), temporary congestion: the sender tries again later.
            why = f"disk of {full} below the free-space watermark"
            self._reject(assoc, calling, why, "disk full", (0x02, 0x03, 0x01))

    def _calling_aet_allowed(self, calling: str, host: str) -> bool:
        if self.allowed_calling_aets is None or calling in self.allowed_calling_aets:
            return True
        return _in_networks(host, self._any_aet_networks)

    def _full_disk(self, need: int = 0) -> Path | None:
        """The first watched folder whose disk would keep less than ``min_free_bytes`` free
        after ``need`` more bytes."""
        if not self.min_free_bytes:
            return None
        for folder in (self.spool_dir, *self.watch_free):
            try:
                if shutil.disk_usage(folder).free - need < self.min_free_bytes:
                    return folder
            except OSError:  # a store that is not mounted is as good as full
                return folder
        return None

    def _reject(
        self, assoc: Association, calling: str, message: str, why: str, rj: tuple[int, int, int]
    ) -> None:
        logger.warning(
            "association from %r at %s rejected: %s",
            calling,
            assoc.requestor.address,
            message,
            extra={
                "event": "dicom.association.rejected",
                "calling_ae": calling,
                "peer_host": assoc.requestor.address,
                "peer_port": assoc.requestor.port,
                "reason": why,
            },
        )
        assoc.acse.send_reject(*rj)
        assoc.kill()

    def _on_conn_close(self, event: Event) -> None:
        """Remove the temporary file of a data set whose transfer the peer broke off."""
        message = getattr(getattr(event.assoc, "dimse", None), "message", None)
        partial = getattr(message, "_data_set_file", None)
        if partial is None:
            return
        with contextlib.suppress(OSError):
            partial.close()
            os.unlink(partial.name)
        logger.warning(
            "connection closed in the middle of a data set; partial data discarded",
            extra={
                "event": "dicom.store.partial_discarded",
                "peer_host": event.assoc.requestor.address,
                "partial_path": str(partial.name),
            },
        )

    # -- C-STORE ------------------------------------------------------------------------------

    def _on_store(self, event: Event) -> int | Dataset:
        started = time.monotonic()
        assoc = event.assoc
        request: Any = event.request
        sop_class = str(request.AffectedSOPClassUID or "")
        sop_instance = str(request.AffectedSOPInstanceUID or "")
        called = getattr(assoc.requestor.primitive, "called_ae_title", None) or self.ae_title
        extra: dict[str, Any] = {
            "event": "dicom.store",
            "calling_ae": assoc.requestor.ae_title.strip(),
            "peer_host": assoc.requestor.address,
            "peer_port": assoc.requestor.port,
            "sop_class_uid": sop_class,
            "sop_instance_uid": sop_instance,
            "transfer_syntax": str(event.context.transfer_syntax),
        }
        instance: ReceivedInstance | None = None
        comment = ""
        try:
            if sop_class != event.context.abstract_syntax:
                raise SOPClassNotSupported("SOP class differs from the presentation context")
            instance = self._spool(event, sop_class, sop_instance, str(called).strip())
            extra["bytes"] = instance.size
            extra["spool_name"] = instance.path.name
            returned = self.handler(instance)
            if isinstance(returned, bool) or not isinstance(returned, int):
                raise TypeError(f"store handler returned {returned!r}, not an int status")
            if not 0 <= returned <= 0xFFFF:
                raise ValueError(f"store handler returned an invalid status {returned:#x}")
            status = returned
        except StoreRefused as exc:
            status, comment = exc.status, str(exc)
        except Exception:
            logger.exception(
                "store handler failed",
                extra={**extra, "event": "dicom.store.handler_error", "dimse_status": 0xC211},
            )
            status, comment = _STATUS_PROCESSING_FAILURE, "internal error while storing"

        ok = status in _SUCCESS_OR_WARNING
        if not ok and instance is not None:
            with contextlib.suppress(FileNotFoundError):
                instance.path.unlink()
        extra["dimse_status"] = status
        extra["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
        logger.log(
            logging.INFO if ok else logging.WARNING,
            "C-STORE from %s: status 0x%04X%s",
            extra["calling_ae"],
            status,
            f" ({comment})" if comment else "",
            extra=extra,
        )
        if ok:
            return status
        response = Dataset()
        response.Status = status
        if comment:
            response.ErrorComment = _error_comment(comment)
        return response

    def _spool(
        self, event: Event, sop_class: str, sop_instance: str, called: str
    ) -> ReceivedInstance:
        """Copy the received data set into the spool durably; return what the handler gets."""
        try:
            source = event.dataset_path
        except AttributeError:
            source = None
        if source is None or not Path(source).exists():
            raise CannotUnderstand("C-STORE request without a data set")
        received_at = datetime.now(UTC)
        assoc = event.assoc
        transfer_syntax = UID(str(event.context.transfer_syntax))
        try:
            _meta, offset = split_dataset(Path(source))
        except Exception as exc:
            raise CannotUnderstand("data set cannot be read") from exc

        size_in = Path(source).stat().st_size
        if size_in - offset > self.max_dataset_bytes:  # the transport stops it earlier
            raise CannotUnderstand(f"data set larger than {self.max_dataset_bytes // _MB} MB")
        deflated = transfer_syntax == DeflatedExplicitVRLittleEndian
        # (an inflating data set may need more than it takes now: ENOSPC below gives 0xA700 too)
        full = self._full_disk(need=size_in)
        if full is not None:
            raise OutOfResources(
                "spool disk is full" if full == self.spool_dir else "store disk is full"
            )
        # A deflated data set is spooled inflated, so that no later reader inflates it whole.
        spooled_syntax = ExplicitVRLittleEndian if deflated else transfer_syntax

        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = UID(sop_class)
        meta.MediaStorageSOPInstanceUID = UID(sop_instance)
        meta.TransferSyntaxUID = spooled_syntax
        meta.ImplementationClassUID = assoc.ae.implementation_class_uid
        if assoc.ae.implementation_version_name:
            meta.ImplementationVersionName = assoc.ae.implementation_version_name
        calling = assoc.requestor.ae_title.strip()
        if ae_title_problem(calling) is None:
            meta.SourceApplicationEntityTitle = calling

        name = uuid.uuid4().hex
        part = self._tmp_dir / f"{name}.part"
        final = self.incoming_dir / f"{name}.dcm"
        digest = hashlib.sha256()
        try:
            with open(part, "xb") as out, open(source, "rb") as data:
                out.write(b"\x00" * 128 + b"DICM" + encode_file_meta(meta))
                data.seek(offset)
                if deflated:
                    _inflate(data, out, digest, self.max_dataset_bytes)
                else:
                    while chunk := data.read(_COPY_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
                size = out.tell()
            self._check_header(part, sop_class, sop_instance)
            os.replace(part, final)
            _fsync_dir(self.incoming_dir)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                part.unlink()
            if isinstance(exc, OSError):
                logger.error(
                    "cannot write the spool: %s",
                    exc.strerror or exc,
                    extra={"event": "dicom.store.spool_error", "errno": exc.errno},
                )
                why = "spool disk is full" if exc.errno in _FULL else "cannot write the spool"
                raise OutOfResources(why) from exc
            raise
        return ReceivedInstance(
            path=final,
            sop_class_uid=sop_class,
            sop_instance_uid=sop_instance,
            transfer_syntax=str(spooled_syntax),
            calling_ae_title=calling,
            calling_host=assoc.requestor.address,
            calling_port=assoc.requestor.port,
            called_ae_title=called,
            received_at=received_at,
            size=size,
            sha256=digest.hexdigest(),
            received_transfer_syntax=str(transfer_syntax) if deflated else "",
        )

    @staticmethod
    def _check_header(path: Path, sop_class: str, sop_instance: str) -> None:
        """The data set must parse and name the same SOP class and instance as the request."""
        try:
            # Large values (a hostile private element) are skipped over, never read into memory.
            ds = dcmread(path, stop_before_pixels=True, defer_size=_MB)
            ds_class = str(ds.get("SOPClassUID", "") or "")
            ds_instance = str(ds.get("SOPInstanceUID", "") or "")
        except Exception as exc:
            raise CannotUnderstand("data set cannot be parsed") from exc
        if not ds_class or not ds_instance:
            raise CannotUnderstand("data set has no SOP Class or SOP Instance UID")
        if ds_class != sop_class:
            raise DataSetMismatch("SOP Class UID differs from the C-STORE request")
        if ds_instance != sop_instance:
            raise DataSetMismatch("SOP Instance UID differs from the C-STORE request")

    def _sweep_spool(self) -> None:
        """Remove what a previous run left behind: at start no association is running.

        ``tmp`` holds our partial copies and pynetdicom's files of broken transfers; with
        ``sweep_incoming``, ``incoming`` holds files that were never acknowledged.
        """
        folders = [self._tmp_dir] + ([self.incoming_dir] if self.sweep_incoming else [])
        files = size = 0
        for folder in folders:
            for path in folder.iterdir():
                with contextlib.suppress(OSError):
                    if path.is_file() and not path.is_symlink():
                        length = path.stat().st_size
                        path.unlink()
                        files, size = files + 1, size + length
        if files:
            logger.warning(
                "removed %d orphaned file(s) (%d bytes) from the spool",
                files,
                size,
                extra={"event": "dicom.spool.swept", "files": files, "bytes": size},
            )


_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


@dataclass(frozen=True)
class _Limits:
    """What one association may make the SCP read."""

    max_pdu_bytes: int  # the length field of one PDU
    max_dataset_bytes: int  # the data set of one DIMSE message, as received


class _GuardedSocket(AssociationSocket):
    """pynetdicom's association socket, counting what the peer sends as it arrives.

    pynetdicom's DUL reads a PDU as ``recv(6)`` (type and length) then ``recv(length)``, and
    buffers the whole PDU; the DIMSE layer then appends the data set's fragments to a file
    (or, for other messages, to memory) without limit. This socket sees both reads: a PDU
    longer than ``max_pdu_bytes``, or a DIMSE message whose data set passes
    ``max_dataset_bytes``, makes it send an A-ABORT, shut the connection down and return a
    short read, which pynetdicom handles as a closed connection (the partial file is removed).
    """

    limits: _Limits
    reading_since: float | None  # monotonic time a PDU read began, while one is in progress
    tripped: bool
    _pdu_type: int | None  # of the PDU whose header was read and whose body comes next
    _dataset_bytes: int
    _command_bytes: int

    @classmethod
    def adopt(cls, sock: AssociationSocket, limits: _Limits) -> _GuardedSocket:
        sock.__class__ = cls
        guarded = cast(_GuardedSocket, sock)
        guarded.limits = limits
        guarded.reading_since = None
        guarded.tripped = False
        guarded._pdu_type = None
        guarded._dataset_bytes = 0
        guarded._command_bytes = 0
        return guarded

    def recv(self, nr_bytes: int) -> bytearray:
        if self.tripped:
            return bytearray()
        self.reading_since = time.monotonic()
        try:
            return self._recv(nr_bytes)
        finally:
            self.reading_since = None

    def _recv(self, nr_bytes: int) -> bytearray:
        if self._pdu_type is None:  # the PDU header: type, reserved, length
            data = super().recv(nr_bytes)
            if len(data) == 6:
                pdu_type, _, length = struct.unpack(">BBL", data)
                if length > self.limits.max_pdu_bytes:
                    self._trip(f"PDU of {length} bytes", length, 0x06)
                else:
                    self._pdu_type = pdu_type
            return data
        pdu_type, self._pdu_type = self._pdu_type, None
        data = super().recv(nr_bytes)
        if pdu_type == 0x04 and len(data) == nr_bytes and not self._count(data):
            return bytearray()
        return data

    def _count(self, body: bytearray) -> bool:
        """Account for the PDVs of one P-DATA-TF; False once a limit is passed."""
        at = 0
        while at + 6 <= len(body):
            (item_length,) = struct.unpack_from(">L", body, at)
            control = body[at + 5]
            fragment = max(item_length - 2, 0)
            at += 4 + item_length
            if control & 0x01:  # command set
                self._command_bytes += fragment
                if self._command_bytes > _MAX_COMMAND_BYTES:
                    self._trip("command set too large", self._command_bytes, 0x00)
                    return False
                if control & 0x02:  # its last fragment: a new message's data set may follow
                    self._command_bytes = self._dataset_bytes = 0
            else:
                self._dataset_bytes += fragment
                if self._dataset_bytes > self.limits.max_dataset_bytes:
                    cap_mb = self.limits.max_dataset_bytes // _MB
                    self._trip(f"data set larger than {cap_mb} MB", self._dataset_bytes, 0x00)
                    return False
        return True

    def _trip(self, why: str, size: int, reason: int) -> None:
        """A-ABORT (source: service provider) and hang up; every later read is empty."""
        self.tripped = True
        host = self.assoc.requestor.address
        logger.warning(
            "association from %s aborted: %s",
            host,
            why,
            extra={
                "event": "dicom.association.aborted",
                "peer_host": host,
                "reason": why,
                "bytes": size,
            },
        )
        raw = self.socket
        if raw is None:
            return
        with contextlib.suppress(OSError):
            raw.settimeout(2)  # the peer may not read: never block on it
            raw.sendall(bytes((0x07, 0, 0, 0, 0, 4, 0, 0, 0x02, reason)))
        with contextlib.suppress(OSError):
            socket.socket.shutdown(raw, socket.SHUT_RDWR)


class _RequestHandler(RequestHandler):
    """pynetdicom's request handler, with the guarded socket and the association kept."""

    assoc: Association | None = None

    def handle(self) -> None:
        server = cast(_AssociationServer, self.server)
        assoc = self._create_association()
        _GuardedSocket.adopt(cast(AssociationSocket, assoc.dul.socket), server.limits)
        evt.trigger(assoc, evt.EVT_CONN_OPEN, {"address": self.client_address})
        self.assoc = assoc
        assoc.start()


class _AssociationServer(ThreadedAssociationServer):
    """pynetdicom's server, hardened against peers that connect but do not play along.

    - The host allow-list and the per-host cap are applied at accept (``verify_request``):
      a refused connection is closed before a byte of it is read, and takes no slot.
    - The TLS handshake runs in the connection's own thread, bounded by ``handshake_timeout``
      (pynetdicom wraps in the accept loop, so one silent client stops every other).
    - The connection's thread then watches its association: the A-ASSOCIATE-RQ must be in
      within ``request_deadline`` of the accept (pynetdicom's timers restart as bytes trickle
      in, and its reader blocks inside a PDU), and a PDU read stalled for ``stall_timeout``
      ends the connection too.
    - Connection errors are logged in one line instead of a traceback on stderr.
    """

    handshake_timeout: float | None = 30.0
    request_deadline: float = 30.0
    stall_timeout: float | None = 60.0
    host_allowed: Callable[[str], bool] | None = None
    max_per_host: int = 0
    tmp_dir: Path | None = None
    limits = _Limits(max_pdu_bytes=_UNLIMITED_PDU_LIMIT, max_dataset_bytes=512 * _MB)
    # stop() must not wait for a connection thread stuck in a handshake; nor must exit.
    block_on_close = False
    daemon_threads = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._per_host: dict[str, int] = {}
        self._per_host_lock = threading.Lock()

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        assert self.socket is not None
        client_socket, address = self.socket.accept()
        return client_socket, address

    def verify_request(self, request: Any, client_address: Any) -> bool:
        host = _peer_host(client_address)
        if self.host_allowed is not None and not self.host_allowed(host):
            why = "host not allowed"
        else:
            with self._per_host_lock:
                held = self._per_host.get(host, 0)
                if not self.max_per_host or held < self.max_per_host:
                    self._per_host[host] = held + 1
                    return True
            why = f"host already holds {held} connection(s)"
        logger.warning(
            "connection from %s refused: %s",
            host,
            why,
            extra={"event": "dicom.connection.refused", "peer_host": host, "reason": why},
        )
        return False  # socketserver closes it

    def process_request(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request(request, client_address)
        except BaseException:  # no thread started: give the slot back
            self._release(_peer_host(client_address))
            raise

    def finish_request(self, request: Any, client_address: Any) -> None:
        accepted = time.monotonic()
        try:
            if self.ssl_context is not None:
                request.settimeout(self.handshake_timeout)
                request = self.ssl_context.wrap_socket(request, server_side=True)
                request.settimeout(None)
            handler = cast(Any, self.RequestHandlerClass)(request, client_address, self)
            assoc = getattr(handler, "assoc", None)
            if assoc is not None:
                self._watch(assoc, request, accepted)
        finally:
            self._release(_peer_host(client_address))

    def _watch(self, assoc: Association, request: socket.socket, accepted: float) -> None:
        """Wait for the association to end, dropping the connection of a peer that dawdles."""
        deadline = accepted + self.request_deadline
        sock = assoc.dul.socket
        dropped = False
        while assoc.is_alive():
            assoc.join(0.2)
            if dropped or not assoc.is_alive():
                continue
            now = time.monotonic()
            since = getattr(sock, "reading_since", None)
            if assoc.requestor.primitive is None and now > deadline:
                why = f"association request not complete within {self.request_deadline:g} s"
            elif self.stall_timeout and since is not None and now - since > self.stall_timeout:
                why = f"a PDU stalled for more than {self.stall_timeout:g} s"
            else:
                continue
            host = assoc.requestor.address
            logger.warning(
                "connection from %s dropped: %s",
                host,
                why,
                extra={"event": "dicom.connection.dropped", "peer_host": host, "reason": why},
            )
            with contextlib.suppress(OSError):
                socket.socket.shutdown(request, socket.SHUT_RDWR)
            dropped = True

    def _release(self, host: str) -> None:
        with self._per_host_lock:
            held = self._per_host.get(host, 0) - 1
            if held > 0:
                self._per_host[host] = held
            else:
                self._per_host.pop(host, None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        host = client_address[0] if isinstance(client_address, tuple) else str(client_address)
        logger.warning(
            "connection from %s failed: %s",
            host,
            exc,
            extra={"event": "dicom.connection.error", "peer_host": host},
        )

    def shutdown(self) -> None:
        # Not AssociationServer.shutdown: this server is not registered in AE._servers.
        socketserver.BaseServer.shutdown(self)
        self.server_close()


def _peer_host(address: Any) -> str:
    return str(address[0]) if isinstance(address, tuple) else str(address)


_hook_lock = threading.Lock()
_hook_installed = False


def _keep_pynetdicom_temporary_files_in_the_spool() -> None:
    """Make pynetdicom write a received data set's temporary file into the spool's ``tmp``.

    pynetdicom calls ``NamedTemporaryFile`` without a folder (the system's temporary folder,
    often another, smaller disk). The data set is decoded in the association's DUL thread, so
    the folder is found from that thread's association and its server; anything else keeps
    pynetdicom's default.
    """
    global _hook_installed
    with _hook_lock:
        if _hook_installed:
            return
        original = dimse_messages.NamedTemporaryFile

        def named_temporary_file(*args: Any, **kwargs: Any) -> Any:
            if "dir" not in kwargs:
                assoc = getattr(threading.current_thread(), "assoc", None)
                folder = getattr(getattr(assoc, "_server", None), "tmp_dir", None)
                if folder is not None:
                    kwargs["dir"] = folder
            return original(*args, **kwargs)

        dimse_messages.NamedTemporaryFile = named_temporary_file
        _hook_installed = True


def _inflate(data: Any, out: Any, digest: Any, cap: int) -> None:
    """Inflate a Deflated Explicit VR LE data set from ``data`` into ``out``, never holding
    more than a chunk in memory, and refuse it as soon as its output passes ``cap`` bytes."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    written = 0
    try:
        for chunk in iter(lambda: data.read(_COPY_CHUNK), b""):
            digest.update(chunk)  # bytes after the end of the stream are hashed, not inflated
            pending = chunk
            while not inflater.eof:
                piece = inflater.decompress(pending, _COPY_CHUNK)
                pending = inflater.unconsumed_tail
                written += len(piece)
                if written > cap:
                    raise CannotUnderstand(f"data set inflates beyond {cap // _MB} MB")
                out.write(piece)
                if not pending and not piece:
                    break
    except zlib.error as exc:
        raise CannotUnderstand("deflated data set is corrupt") from exc
    if not inflater.eof:
        raise CannotUnderstand("deflated data set is truncated")


def _in_networks(host: str, networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _resolve_hosts(hosts: Iterable[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """IP addresses, networks (CIDR) and host names (resolved now) as a list of networks."""
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for entry in hosts:
        entry = entry.strip()
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
            continue
        except ValueError:
            pass
        try:
            infos = socket.getaddrinfo(entry, None, proto=socket.IPPROTO_TCP)
        except OSError as exc:
            raise ValueError(f"allowed host {entry!r} cannot be resolved: {exc}") from exc
        for info in infos:
            networks.append(ipaddress.ip_network(str(info[4][0]).split("%", 1)[0]))
    return networks


def _error_comment(text: str) -> str:
    """An Error Comment (LO): printable ASCII without backslash, 64 characters at most."""
    cleaned = "".join(c if 0x20 <= ord(c) <= 0x7E and c != "\\" else "?" for c in text)
    return cleaned[:64]
