"""The SCP's transport: pynetdicom's server and socket, bounded against hostile peers.

Hostile peers are bounded before they cost memory, disk or association slots:

- A connection from a host outside ``allowed_hosts``, or from a host that already holds
  ``max_associations_per_host`` connections (in any receiver process:
  :class:`~dicom_io.net.hosts.ConnectionCounts`), is closed at accept, before a byte is read.
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

The associations of one receiver process share its GIL (:mod:`dicom_io.net.processes` runs
several on one port), so the transport also spares them pynetdicom's busy loops: a PDU's body
is read in one ``recv_into``, the DUL and the association's reactor wait (``select``, queue)
instead of polling every millisecond, and P-DATA PDUs skip the log handlers that took the
AE-wide lock.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import select
import socket
import socketserver
import ssl
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from pynetdicom import evt
from pynetdicom._handlers import standard_pdu_recv_handler, standard_pdu_sent_handler
from pynetdicom.association import Association
from pynetdicom.pdu import P_DATA_TF
from pynetdicom.transport import AssociationSocket, RequestHandler, ThreadedAssociationServer

from dicom_io.net.hosts import ConnectionCounts, in_networks, peer_host, resolve_hosts
from dicom_io.net.spool import MB

__all__ = ["AssociationServer", "GuardedSocket", "in_networks", "peer_host", "resolve_hosts"]

logger = logging.getLogger(__name__)


# A PDU may be this much larger than the maximum we announce (or 1 MiB, whichever is more)
# before the association is aborted instead of the PDU being read: the length field is 32 bits.
PDU_SLACK = 2
MIN_PDU_LIMIT = MB
UNLIMITED_PDU_LIMIT = 64 * MB  # when no maximum is announced (max_pdu_size 0)
_MAX_COMMAND_BYTES = MB  # a command set is a few hundred bytes
REACTOR_WAIT = 0.02  # s an association's reactor waits for a message before its other checks
SOCKET_WAIT = 0.05  # s the DUL waits for a PDU or something to send before its other checks


@dataclass(frozen=True)
class Limits:
    """What one association may make the SCP read."""

    max_pdu_bytes: int  # the length field of one PDU
    max_dataset_bytes: int  # the data set of one DIMSE message, as received


class GuardedSocket(AssociationSocket):
    """pynetdicom's association socket, counting what the peer sends as it arrives.

    pynetdicom's DUL reads a PDU as ``recv(6)`` (type and length) then ``recv(length)``, and
    buffers the whole PDU; the DIMSE layer then appends the data set's fragments to a file
    (or, for other messages, to memory) without limit. This socket sees both reads: a PDU
    longer than ``max_pdu_bytes``, or a DIMSE message whose data set passes
    ``max_dataset_bytes``, makes it send an A-ABORT, shut the connection down and return a
    short read, which pynetdicom handles as a closed connection (the partial file is removed).
    """

    limits: Limits
    reading_since: float | None  # monotonic time a PDU read began, while one is in progress
    tripped: bool
    _pdu_type: int | None  # of the PDU whose header was read and whose body comes next
    _dataset_bytes: int
    _command_bytes: int
    _wake: tuple[int, int] | None  # a pipe: the DUL has something to send
    _wake_lock: threading.Lock

    @classmethod
    def adopt(cls, sock: AssociationSocket, limits: Limits) -> GuardedSocket:
        sock.__class__ = cls
        guarded = cast(GuardedSocket, sock)
        guarded.limits = limits
        guarded.reading_since = None
        guarded.tripped = False
        guarded._pdu_type = None
        guarded._dataset_bytes = 0
        guarded._command_bytes = 0
        guarded._wake_on_send()
        return guarded

    # -- waiting instead of polling -----------------------------------------------------------

    def _wake_on_send(self) -> None:
        """Every primitive the association hands its DUL to send also writes a byte to a pipe
        that :attr:`ready` waits on beside the socket."""
        read_end, write_end = os.pipe()
        os.set_blocking(read_end, False)
        os.set_blocking(write_end, False)
        self._wake, self._wake_lock = (read_end, write_end), threading.Lock()
        outgoing = self.assoc.dul.to_provider_queue
        put = outgoing.put

        def put_and_wake(item: Any, block: bool = True, timeout: float | None = None) -> None:
            put(item, block, timeout)
            with self._wake_lock, contextlib.suppress(OSError):  # full: a wake-up is pending
                if self._wake is not None:
                    os.write(self._wake[1], b"\0")

        outgoing.put = put_and_wake  # type: ignore[method-assign]

    @property
    def ready(self) -> bool:
        """Whether a PDU is waiting, after waiting up to ``SOCKET_WAIT`` for one.

        pynetdicom asks without waiting and, when nothing is there, sleeps 1 ms and asks again:
        1,000 wake-ups a second for each idle association, and up to a millisecond's delay
        for each PDU. Waiting in ``select`` on the socket and the wake-up pipe returns as soon
        as the peer sends or the association has something to send.
        """
        raw, wake = self.socket, self._wake
        if raw is None or wake is None or not self._is_connected:
            return bool(AssociationSocket.ready.fget(self))  # type: ignore[attr-defined]
        if isinstance(raw, ssl.SSLSocket) and raw.pending():
            return True
        try:
            fd = raw.fileno()
            readable, _, _ = select.select([fd, wake[0]], [], [], SOCKET_WAIT)
        except (OSError, ValueError):  # closed meanwhile: pynetdicom's own check says so
            return bool(AssociationSocket.ready.fget(self))  # type: ignore[attr-defined]
        if wake[0] in readable:
            with self._wake_lock, contextlib.suppress(OSError):
                if self._wake is wake:
                    os.read(wake[0], 4096)
        return fd in readable

    def close(self) -> None:
        super().close()
        self.close_wake()

    def close_wake(self) -> None:
        """Close the wake-up pipe (idempotent; never used again once closed)."""
        with self._wake_lock:
            wake, self._wake = self._wake, None
        for fd in wake or ():
            with contextlib.suppress(OSError):
                os.close(fd)

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
        data = self._recv_whole(nr_bytes)
        if pdu_type == 0x04 and len(data) == nr_bytes and not self._count(data):
            return bytearray()
        return data

    def _recv_whole(self, nr_bytes: int) -> bytearray:
        """A PDU's body in as few ``recv_into`` calls as the kernel allows.

        pynetdicom reads 4 KiB per ``recv``: ~2,900 calls (each dropping and retaking the GIL)
        per 12 MB image, which under ten associations made the threads queue on the GIL.
        The body was bounded by ``max_pdu_bytes`` before this allocation. Short on a closed
        connection, as pynetdicom's ``recv`` is.
        """
        raw = self.socket
        if raw is None:
            return super().recv(nr_bytes)
        buffer = bytearray(nr_bytes)
        view = memoryview(buffer)
        got = 0
        while got < nr_bytes:
            read = raw.recv_into(view[got:], nr_bytes - got)
            if not read:
                break
            got += read
        view.release()
        if got < nr_bytes:
            del buffer[got:]
        return buffer

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
                    cap_mb = self.limits.max_dataset_bytes // MB
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


class GuardedRequestHandler(RequestHandler):
    """pynetdicom's request handler, with the guarded socket and the association kept."""

    assoc: Association | None = None

    def handle(self) -> None:
        server = cast(AssociationServer, self.server)
        assoc = self._create_association()
        _spare_p_data_the_ae_lock(assoc)
        _wait_for_messages(assoc)
        GuardedSocket.adopt(cast(AssociationSocket, assoc.dul.socket), server.limits)
        evt.trigger(assoc, evt.EVT_CONN_OPEN, {"address": self.client_address})
        self.assoc = assoc
        assoc.start()


def _log_pdu_recv(event: evt.Event) -> list[str]:
    return [] if isinstance(event.pdu, P_DATA_TF) else standard_pdu_recv_handler(event)


def _log_pdu_sent(event: evt.Event) -> list[str]:
    return [] if isinstance(event.pdu, P_DATA_TF) else standard_pdu_sent_handler(event)


def _spare_p_data_the_ae_lock(assoc: Association) -> None:
    """pynetdicom's standard PDU log handlers take the AE-wide lock for every PDU and log
    nothing for a P-DATA-TF: ~180 times per image, the associations queued on that lock.
    The same handlers still log every other PDU."""
    for event, standard, ours in (
        (evt.EVT_PDU_RECV, standard_pdu_recv_handler, _log_pdu_recv),
        (evt.EVT_PDU_SENT, standard_pdu_sent_handler, _log_pdu_sent),
    ):
        bound = cast(list[tuple[Any, Any]], assoc.get_handlers(event))
        if any(handler is standard for handler, _ in bound):
            assoc.unbind(event, standard)
            assoc.bind(event, ours)


def _wait_for_messages(assoc: Association) -> None:
    """Let the association's reactor wait for its next DIMSE message instead of polling.

    pynetdicom's reactor asks for a message without waiting, 1,000 times a second: ten idle
    associations took a fifth of a core and the GIL 10,000 times a second. Waiting up to
    ``REACTOR_WAIT`` on the queue wakes it as soon as a message comes; a release or abort is
    still noticed within that time.
    """
    dimse = assoc.dimse

    def get_msg(block: bool = False) -> Any:
        try:
            return dimse.msg_queue.get(timeout=dimse.dimse_timeout if block else REACTOR_WAIT)
        except queue.Empty:
            return None, None

    dimse.get_msg = get_msg  # type: ignore[method-assign]


class AssociationServer(ThreadedAssociationServer):
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
    limits = Limits(max_pdu_bytes=UNLIMITED_PDU_LIMIT, max_dataset_bytes=512 * MB)
    # stop() must not wait for a connection thread stuck in a handshake; nor must exit.
    block_on_close = False
    daemon_threads = True

    def __init__(
        self,
        *args: Any,
        listening: socket.socket | None = None,
        counts: ConnectionCounts | None = None,
        **kwargs: Any,
    ) -> None:
        """``listening``: a socket already bound and listening (shared by receiver processes),
        used instead of binding one; ``counts``: the connections held, shared by them too."""
        self._listening = listening
        self.counts = counts or ConnectionCounts()
        super().__init__(*args, **kwargs)

    def server_bind(self) -> None:
        if self._listening is None:
            super().server_bind()
            return
        assert self.socket is not None
        self.socket.close()
        self.socket = self._listening
        # Another process may take the connection this one was woken for: accept must then
        # fail at once (socketserver ignores it), not block until the next connection.
        self.socket.setblocking(False)
        self.server_address = self.socket.getsockname()

    def server_activate(self) -> None:
        if self._listening is None:
            super().server_activate()

    def server_close(self) -> None:
        if self._listening is None:
            super().server_close()
        else:  # not shut down: the other processes go on accepting on it
            self._listening.close()

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        assert self.socket is not None
        client_socket, address = self.socket.accept()
        client_socket.setblocking(True)
        return client_socket, address

    def verify_request(self, request: Any, client_address: Any) -> bool:
        host = peer_host(client_address)
        if self.host_allowed is not None and not self.host_allowed(host):
            why: str | None = "host not allowed"
        else:
            why = self.counts.acquire(host, self.max_per_host)
            if why is None:
                return True
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
            self._release(peer_host(client_address))
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
                sock = assoc.dul.socket
                if isinstance(sock, GuardedSocket):
                    sock.close_wake()
        finally:
            self._release(peer_host(client_address))

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
        self.counts.release(host)

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
