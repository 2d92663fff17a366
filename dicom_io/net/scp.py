"""A storage SCP: receive radiographs by C-STORE and hand each one over as a durable file.

The node must never acknowledge an image it could lose, so every C-STORE is answered only
after the received bytes are a complete DICOM Part-10 file in the spool's ``incoming`` folder:
written to a temporary file, fsynced, renamed, and the folder fsynced. File names come from
``uuid4`` and never from a UID in the data, so a hostile SOP Instance UID cannot escape the
spool. Only then is the caller's handler run, with a :class:`ReceivedInstance`; what it returns
(or raises) becomes the DIMSE status the sender sees.

Statuses the sender can get are listed in :mod:`dicom_io.net.handler`; on every failure status
the spooled file is removed if the handler left it in place. Calling AE titles outside the
allow-list, and every association while a watched disk is below ``min_free_bytes``, get an
A-ASSOCIATE-RJ.

How hostile peers are bounded is told in :mod:`dicom_io.net.transport`.

Logging uses the standard :mod:`logging` module (loggers under ``dicom_io.net``) with structured
``extra`` fields; nothing from the data set beyond its UIDs is ever logged.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import ipaddress
import logging
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self, cast

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian
from pynetdicom import AE, _config, evt
from pynetdicom.association import Association
from pynetdicom.dsutils import split_dataset
from pynetdicom.events import Event

from dicom_io.net.contexts import STORAGE_SOP_CLASSES, supported_contexts
from dicom_io.net.handler import (
    STATUS_PROCESSING_FAILURE,
    SUCCESS_OR_WARNING,
    CannotUnderstand,
    OutOfResources,
    ReceivedInstance,
    SOPClassNotSupported,
    StoreHandler,
    StoreRefused,
    error_comment,
)
from dicom_io.net.hosts import ConnectionCounts, in_networks, resolve_hosts
from dicom_io.net.peers import check_ae_title
from dicom_io.net.spool import (
    MB,
    adopt_part10,
    carries_meta,
    discard_partial,
    full_disk,
    keep_pynetdicom_temporary_files_in_the_spool,
    spool_meta,
    sweep,
    write_part10,
)
from dicom_io.net.transport import (
    MIN_PDU_LIMIT,
    PDU_SLACK,
    UNLIMITED_PDU_LIMIT,
    AssociationServer,
    GuardedRequestHandler,
    Limits,
)

logger = logging.getLogger(__name__)


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
        max_dataset_bytes: int = 512 * MB,
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
        self._server: AssociationServer | None = None
        self._thread: threading.Thread | None = None
        self._counts: ConnectionCounts | None = None

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
        self.prepare()
        self.serve()

    def prepare(self) -> None:
        """Make and sweep the spool's folders: once, before any receiver process accepts (a
        sweep while one receives would take its files)."""
        self.incoming_dir.mkdir(parents=True, exist_ok=True)
        self._tmp_dir.mkdir(parents=True, exist_ok=True)
        self._sweep_spool()

    def serve(
        self, listening: socket.socket | None = None, counts: ConnectionCounts | None = None
    ) -> None:
        """Accept on a port of its own, or on ``listening`` (bound, and shared with other
        receiver processes, by :mod:`dicom_io.net.processes`) counting in ``counts``."""
        if self._server is not None:
            raise RuntimeError("the SCP is already running")
        # Stream large data sets to a file instead of holding them in memory.
        _config.STORE_RECV_CHUNKED_DATASET = True
        self._networks = resolve_hosts(self.allowed_hosts) if self.allowed_hosts else []
        self._any_aet_networks = resolve_hosts(self.any_aet_hosts or ())
        keep_pynetdicom_temporary_files_in_the_spool()
        self._counts = counts or ConnectionCounts()
        ae, server = self._make_server(listening, self._counts)
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

    def _make_server(
        self, listening: socket.socket | None, counts: ConnectionCounts
    ) -> tuple[AE, AssociationServer]:
        """pynetdicom's AE with this SCP's contexts, timeouts and handlers, and its server with
        the transport's bounds."""
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
            (evt.EVT_CONN_CLOSE, discard_partial),
        ]
        server = ae.make_server(
            (self.host, self._requested_port),
            ssl_context=self.tls,
            evt_handlers=handlers,
            server_class=cast(
                Any, functools.partial(AssociationServer, listening=listening, counts=counts)
            ),
            request_handler=GuardedRequestHandler,
        )
        assert isinstance(server, AssociationServer)
        server.handshake_timeout = self.acse_timeout
        server.request_deadline = self.acse_timeout
        server.stall_timeout = self.network_timeout
        server.host_allowed = self._host_allowed if self.allowed_hosts is not None else None
        server.max_per_host = self.max_associations_per_host
        server.tmp_dir = self._tmp_dir
        server.limits = Limits(
            max_pdu_bytes=(
                max(self.max_pdu_size * PDU_SLACK, MIN_PDU_LIMIT)
                if self.max_pdu_size
                else UNLIMITED_PDU_LIMIT
            ),
            max_dataset_bytes=self.max_dataset_bytes,
        )
        return ae, server

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
        return in_networks(host, self._networks)

    def _on_requested(self, event: Event) -> None:
        """Reject unknown calling AE titles, and everyone while a watched disk is nearly full.

        Hosts were checked at accept (:class:`AssociationServer`).
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
            return
        counts = self._counts
        if counts is not None and counts.processes > 1 and counts.total() > self.max_associations:
            # across receiver processes, as pynetdicom does in one: local limit exceeded
            why = f"{self.max_associations} associations already"
            self._reject(assoc, calling, why, "too many associations", (0x02, 0x03, 0x02))

    def _calling_aet_allowed(self, calling: str, host: str) -> bool:
        if self.allowed_calling_aets is None or calling in self.allowed_calling_aets:
            return True
        return in_networks(host, self._any_aet_networks)

    def _full_disk(self, need: int = 0) -> Path | None:
        """The first watched folder whose disk would keep less than ``min_free_bytes`` free
        after ``need`` more bytes."""
        return full_disk((self.spool_dir, *self.watch_free), self.min_free_bytes, need)

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
            status, comment = STATUS_PROCESSING_FAILURE, "internal error while storing"

        ok = status in SUCCESS_OR_WARNING
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
            response.ErrorComment = error_comment(comment)
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
            raise CannotUnderstand(f"data set larger than {self.max_dataset_bytes // MB} MB")
        deflated = transfer_syntax == DeflatedExplicitVRLittleEndian
        # (an inflating data set may need more than it takes now: ENOSPC below gives 0xA700 too)
        full = self._full_disk(need=size_in)
        if full is not None:
            raise OutOfResources(
                "spool disk is full" if full == self.spool_dir else "store disk is full"
            )
        # A deflated data set is spooled inflated, so that no later reader inflates it whole.
        spooled_syntax = ExplicitVRLittleEndian if deflated else transfer_syntax
        calling = assoc.requestor.ae_title.strip()
        meta = spool_meta(assoc, sop_class, sop_instance, spooled_syntax)

        name = uuid.uuid4().hex
        final = self.incoming_dir / f"{name}.dcm"
        digest = hashlib.sha256()
        if not deflated and self._adoptable(Path(source), offset, meta):
            size = adopt_part10(Path(source), offset, meta, final=final, digest=digest)
        else:
            size = write_part10(
                Path(source),
                offset,
                meta,
                part=self._tmp_dir / f"{name}.part",
                final=final,
                digest=digest,
                inflate_cap=self.max_dataset_bytes if deflated else None,
            )
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

    def _adoptable(self, source: Path, offset: int, meta: FileMetaDataset) -> bool:
        """pynetdicom's file is in the spool's ``tmp`` (same disk) behind the meta we keep."""
        try:
            return source.parent.samefile(self._tmp_dir) and carries_meta(source, offset, meta)
        except OSError:
            return False

    def _sweep_spool(self) -> None:
        """``tmp`` holds our partial copies and pynetdicom's files of broken transfers; with
        ``sweep_incoming``, ``incoming`` holds files that were never acknowledged."""
        sweep([self._tmp_dir] + ([self.incoming_dir] if self.sweep_incoming else []))
