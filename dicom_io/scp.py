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
- ``0xA700`` out of resources — the handler raised :class:`OutOfResources`, the spool disk is
  below ``min_free_bytes``, or the spool could not be written.
- ``0xA900`` data set does not match SOP class — :class:`DataSetMismatch`, or the data set's own
  SOP Class / Instance UID differ from the C-STORE request's.
- ``0xC000`` cannot understand — :class:`CannotUnderstand`, or the data set does not parse.
- ``0x0122`` SOP class not supported — :class:`SOPClassNotSupported`, or a request on a
  presentation context of another SOP class. SOP classes the node does not store at all are
  refused earlier, at association: no presentation context is accepted for them.
- ``0xC211`` — the handler raised anything else (logged with its traceback); the SCP goes on.

Failures carry a short Error Comment; on every failure status the spooled file is removed if
the handler left it in place. Associations from calling AE titles or hosts outside the
allow-lists are rejected with an A-ASSOCIATE-RJ.

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
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

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
from pynetdicom import AE, _config, build_context, evt
from pynetdicom.dsutils import encode_file_meta, split_dataset
from pynetdicom.events import Event
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.transport import ThreadedAssociationServer

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
# Left-over temporary files older than this are removed when an SCP starts on the spool.
_STALE_PART_SECONDS = 3600
_COPY_CHUNK = 1 << 20


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
    transfer_syntax: str  # the negotiated transfer syntax the data set is encoded in
    calling_ae_title: str
    calling_host: str
    calling_port: int
    called_ae_title: str
    received_at: datetime  # UTC, when the whole data set had arrived
    size: int  # bytes of the spooled file
    sha256: str  # hex digest of the data set bytes as received (file meta excluded)


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
    ) -> None:
        check_ae_title(ae_title, "ae_title")
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be 0-65535 (0 = any free port), not {port}")
        if max_associations < 1:
            raise ValueError("max_associations must be at least 1")
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
        self._networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
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
        self._remove_stale_parts()
        self._networks = _resolve_hosts(self.allowed_hosts) if self.allowed_hosts else []

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
        )
        assert isinstance(server, _AssociationServer)
        server.handshake_timeout = self.acse_timeout
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
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self._networks)

    def _on_requested(self, event: Event) -> None:
        """Reject associations from hosts or calling AE titles outside the allow-lists."""
        assoc = event.assoc
        primitive = assoc.requestor.primitive
        calling = str(getattr(primitive, "calling_ae_title", "") or "").strip()
        host = assoc.requestor.address
        diagnostic = None
        if self.allowed_hosts is not None and not self._host_allowed(host):
            diagnostic, why = 0x01, "host not allowed"  # no reason given
        elif self.allowed_calling_aets is not None and calling not in self.allowed_calling_aets:
            diagnostic, why = 0x03, "calling AE title not recognised"
        if diagnostic is None:
            return
        logger.warning(
            "association from %r at %s rejected: %s",
            calling,
            host,
            why,
            extra={
                "event": "dicom.association.rejected",
                "calling_ae": calling,
                "peer_host": host,
                "peer_port": assoc.requestor.port,
                "reason": why,
            },
        )
        # Rejected (permanent), by the service user; as pynetdicom does for require_calling_aet.
        assoc.acse.send_reject(0x01, 0x01, diagnostic)
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
        if self.min_free_bytes:
            free = shutil.disk_usage(self.spool_dir).free
            if free - size_in < self.min_free_bytes:
                raise OutOfResources("spool disk is full")

        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = UID(sop_class)
        meta.MediaStorageSOPInstanceUID = UID(sop_instance)
        meta.TransferSyntaxUID = transfer_syntax
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
            transfer_syntax=str(transfer_syntax),
            calling_ae_title=calling,
            calling_host=assoc.requestor.address,
            calling_port=assoc.requestor.port,
            called_ae_title=called,
            received_at=received_at,
            size=size,
            sha256=digest.hexdigest(),
        )

    @staticmethod
    def _check_header(path: Path, sop_class: str, sop_instance: str) -> None:
        """The data set must parse and name the same SOP class and instance as the request."""
        try:
            ds = dcmread(path, stop_before_pixels=True)
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

    def _remove_stale_parts(self) -> None:
        cutoff = time.time() - _STALE_PART_SECONDS
        for part in self._tmp_dir.glob("*.part"):
            with contextlib.suppress(OSError):
                if part.stat().st_mtime < cutoff:
                    part.unlink()


_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


class _AssociationServer(ThreadedAssociationServer):
    """pynetdicom's server with the TLS handshake moved off the accept loop.

    pynetdicom wraps the client socket in the thread that accepts connections, so one client
    that opens a TCP connection and never completes the handshake stops every other client.
    Here the handshake runs in the connection's own thread, bounded by ``handshake_timeout``.
    Connection errors are logged in one line instead of a traceback on stderr.
    """

    handshake_timeout: float | None = 30.0
    # stop() must not wait for a connection thread stuck in a handshake; nor must exit.
    block_on_close = False
    daemon_threads = True

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        assert self.socket is not None
        client_socket, address = self.socket.accept()
        return client_socket, address

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.ssl_context is not None:
            request.settimeout(self.handshake_timeout)
            request = self.ssl_context.wrap_socket(request, server_side=True)
            request.settimeout(None)
        super().finish_request(request, client_address)

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
