"""A storage SCU: send DICOM files to an ``AET@host:port`` and report each instance's status.

Nothing here raises for a network problem: a refused connection, a rejected or aborted
association, a peer that accepts no presentation context for an instance — each gives that
instance a :class:`SendStatus` with ``ok=False`` and a reason, so the outbox can record it and
retry. Only a malformed destination raises (:class:`ValueError`), because that is a
configuration error to fix, not a condition to retry.

Each file is offered in its own transfer syntax and, as a fallback, uncompressed (explicit and
implicit VR little endian) in a separate presentation context; a compressed file goes as it is
when the peer accepts its syntax and is decompressed with pydicom only when the peer accepts
nothing but uncompressed. A file whose own syntax the peer accepted goes as it is stored (its
bytes, undecoded); only a conversion or decompression reads it into a data set. A batch uses
one association, or more when it needs more than the 128 presentation contexts one
association can carry.

Over TLS (``tls``: a context from :func:`client_tls_context`) the server's certificate must be
signed by a trusted CA and name the destination's host; there is no fallback to plain TCP, and
a failed handshake is reported with OpenSSL's reason (e.g. an untrusted certificate).
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.filereader import read_file_meta_info
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pynetdicom import AE, _config, build_context
from pynetdicom.association import Association
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.status import code_to_category

__all__ = [
    "MAX_CONTEXTS",
    "Destination",
    "SendStatus",
    "ae_title_problem",
    "check_ae_title",
    "client_tls_context",
    "echo",
    "parse_destinations",
    "send_files",
]

logger = logging.getLogger(__name__)

MAX_CONTEXTS = 128
"""Presentation contexts one association can propose (odd context IDs 1–255)."""

_UNCOMPRESSED = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
# Syntaxes pynetdicom converts between when sending a decoded data set.
_CONVERTIBLE = frozenset({*_UNCOMPRESSED, DeflatedExplicitVRLittleEndian})
_AS_STORED, _CONVERT, _DECOMPRESS = "as stored", "convert", "decompress"
_HOST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")


def ae_title_problem(value: str) -> str | None:
    """Why ``value`` is not a usable AE title, or None.

    An AE title is 1–16 characters of printable ASCII without a backslash; leading and trailing
    spaces do not count, and all spaces is empty.
    """
    if not value.strip():
        return "is empty"
    if len(value) > 16:
        return f"is {len(value)} characters long (16 at most)"
    if any(ord(c) < 0x20 or ord(c) > 0x7E for c in value):
        return "contains control or non-ASCII characters"
    if "\\" in value:
        return "contains a backslash"
    return None


def check_ae_title(value: str, what: str = "AE title") -> str:
    """Return ``value`` without surrounding spaces, or raise :class:`ValueError` saying why."""
    problem = ae_title_problem(value)
    if problem is not None:
        raise ValueError(f"{what} {value!r} {problem}")
    return value.strip()


@dataclass(frozen=True)
class Destination:
    """A DICOM peer: AE title, host and port."""

    ae_title: str
    host: str
    port: int

    def __post_init__(self) -> None:
        check_ae_title(self.ae_title, "AE title")
        object.__setattr__(self, "ae_title", self.ae_title.strip())
        _check_host(self.host)
        if isinstance(self.port, bool) or not isinstance(self.port, int):
            raise ValueError(f"port must be an integer, not {self.port!r}")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port {self.port} is out of range (1-65535)")

    @classmethod
    def parse(cls, text: str) -> Destination:
        """Parse ``AET@host:port`` (``AET@[ipv6]:port`` for IPv6); ValueError says what is wrong."""
        if not isinstance(text, str):
            raise ValueError(f"destination must be a string, not {type(text).__name__}")
        entry = text.strip()
        ae_title, at, address = entry.rpartition("@")
        if not at:
            raise ValueError(f"destination {text!r} is not AET@host:port (no '@')")
        if address.startswith("["):
            host, bracket, rest = address[1:].partition("]")
            if not bracket or not rest.startswith(":"):
                raise ValueError(f"destination {text!r}: write IPv6 hosts as [address]:port")
            port_text = rest[1:]
        else:
            host, colon, port_text = address.rpartition(":")
            if not colon:
                raise ValueError(f"destination {text!r} is not AET@host:port (no ':port')")
            if ":" in host:
                raise ValueError(f"destination {text!r}: write IPv6 hosts as [address]:port")
        if not port_text.isascii() or not port_text.isdigit():
            raise ValueError(f"destination {text!r}: port {port_text!r} is not a number")
        try:
            return cls(ae_title, host, int(port_text))
        except ValueError as exc:
            raise ValueError(f"destination {text!r}: {exc}") from None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.ae_title}@{host}:{self.port}"


def parse_destinations(text: str) -> list[Destination]:
    """Parse a comma-separated list such as ``RASCORE_DESTINATIONS``; empty items are skipped."""
    return [Destination.parse(item) for item in text.split(",") if item.strip()]


def _check_host(host: str) -> None:
    if not isinstance(host, str) or not host:
        raise ValueError("host is empty")
    if len(host) > 253:
        raise ValueError("host name is longer than 253 characters")
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    if not _HOST_NAME.fullmatch(host):
        raise ValueError(f"host {host!r} is neither an IP address nor a valid host name")


@dataclass(frozen=True)
class SendStatus:
    """What became of one file.

    ``status`` is the DIMSE status the peer answered, or None when no answer came (could not
    connect, association rejected or aborted, no presentation context, unreadable file).
    ``ok`` is True for success and warning statuses (the peer stored the instance).
    """

    path: Path
    sop_instance_uid: str
    sop_class_uid: str
    status: int | None
    ok: bool
    error: str | None = None
    transfer_syntax: str | None = None  # as sent on the wire

    @property
    def status_hex(self) -> str:
        return "none" if self.status is None else f"0x{self.status:04X}"


@dataclass
class _Item:
    index: int
    path: Path
    sop_class: UID
    sop_instance: str
    transfer_syntax: UID


def _context_keys(item: _Item) -> list[tuple[UID, UID | None]]:
    """The contexts a file needs: its own syntax, and the uncompressed fallback (``None``)."""
    keys: list[tuple[UID, UID | None]] = []
    if item.transfer_syntax not in _UNCOMPRESSED:
        keys.append((item.sop_class, item.transfer_syntax))
    keys.append((item.sop_class, None))
    return keys


def _batches(items: list[_Item]) -> list[tuple[list[_Item], list[PresentationContext]]]:
    """Split ``items`` into groups whose contexts fit one association each, in file order."""
    batches: list[tuple[list[_Item], list[tuple[UID, UID | None]]]] = []
    for item in items:
        needed = _context_keys(item)
        if batches:
            group, keys = batches[-1]
            new = [k for k in needed if k not in keys]
            if len(keys) + len(new) <= MAX_CONTEXTS:
                group.append(item)
                keys.extend(new)
                continue
        batches.append(([item], list(needed)))
    result = []
    for group, keys in batches:
        contexts = [
            build_context(sop, list(_UNCOMPRESSED) if ts is None else [ts]) for sop, ts in keys
        ]
        result.append((group, contexts))
    return result


def client_tls_context(
    ca: Path | str | None = None, cert: Path | str | None = None, key: Path | str | None = None
) -> ssl.SSLContext:
    """A TLS context for sending: TLS 1.2 or later; the server's certificate is verified
    against the CA bundle ``ca`` (the system's CAs when None) and must name the host; ``cert``
    (with ``key``, or a key inside it) goes as the client's certificate, for a PACS that
    authenticates its peers. A missing or unreadable file raises (a configuration error)."""
    context = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=None if ca is None else str(ca)
    )
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert is not None:
        context.load_cert_chain(str(cert), None if key is None else str(key))
    return context


def _tls_problem(tls: ssl.SSLContext, destination: Destination, timeout: float) -> str:
    """Why a TLS association failed: one more handshake, for OpenSSL's reason (pynetdicom
    only logs it)."""
    try:
        with (
            socket.create_connection((destination.host, destination.port), timeout=timeout) as raw,
            tls.wrap_socket(raw, server_hostname=destination.host) as wrapped,
        ):
            wrapped.settimeout(min(timeout, 5))
            wrapped.recv(1)  # TLS 1.3: the server refuses a client certificate after the handshake
    except ssl.SSLCertVerificationError as exc:
        return f"the server's certificate is not trusted ({exc.verify_message})"
    except ssl.SSLError as exc:
        return f"TLS handshake failed ({exc.reason or exc})"
    except TimeoutError:
        return "the TLS handshake succeeded, then the association failed"
    except OSError as exc:
        return f"TLS connection failed ({exc.strerror or exc})"
    return "the TLS handshake succeeded, then the server closed the connection"


def _new_ae(calling_ae: str, timeout: float) -> AE:
    ae = AE(ae_title=check_ae_title(calling_ae, "calling AE title"))
    ae.acse_timeout = timeout
    ae.dimse_timeout = timeout
    ae.network_timeout = timeout
    ae.connection_timeout = timeout
    return ae


def _associate(
    ae: AE,
    destination: Destination,
    contexts: list[PresentationContext],
    tls: ssl.SSLContext | None,
    timeout: float,
) -> tuple[Association | None, str | None]:
    """An established association, or None and the reason there is none."""
    tls_args = (tls, destination.host) if tls is not None else None
    try:
        assoc = ae.associate(
            destination.host,
            destination.port,
            contexts=contexts,
            ae_title=destination.ae_title,
            tls_args=tls_args,
        )
    except Exception as exc:  # pynetdicom raises for invalid arguments only
        return None, f"cannot associate with {destination}: {exc}"
    if assoc.is_established:
        return assoc, None
    if assoc.is_rejected:
        rsp: Any = assoc.acceptor.primitive
        try:
            detail = f"{rsp.result_str}, {rsp.source_str}: {rsp.reason_str}"
        except Exception:
            detail = "no reason given"
        return None, f"association rejected by {destination} ({detail})"
    if assoc.is_aborted and assoc.rejected_contexts and not assoc.accepted_contexts:
        return None, f"{destination} accepted none of the proposed presentation contexts"
    # pynetdicom only logs why the connection failed; ask the network once more for the reason.
    try:
        with socket.create_connection((destination.host, destination.port), timeout=timeout):
            pass
    except OSError as exc:
        return None, f"cannot connect to {destination}: {exc.strerror or exc}"
    if tls is not None:
        return (
            None,
            f"no TLS association with {destination}: {_tls_problem(tls, destination, timeout)}",
        )
    if assoc.is_aborted:
        return None, f"association with {destination} aborted during negotiation"
    return None, f"no association with {destination} (no answer to the request)"


def send_files(
    destination: str | Destination,
    files: Sequence[Path | str],
    *,
    calling_ae: str = "RASCORE",
    timeout: float = 30,
    tls: ssl.SSLContext | None = None,
) -> list[SendStatus]:
    """C-STORE ``files`` to ``destination``; one :class:`SendStatus` per file, in order.

    Raises ValueError only for a malformed destination or calling AE title.
    """
    dest = destination if isinstance(destination, Destination) else Destination.parse(destination)
    ae = _new_ae(calling_ae, timeout)
    results: dict[int, SendStatus] = {}
    items: list[_Item] = []
    for index, name in enumerate(files):
        path = Path(name)
        try:
            meta = read_file_meta_info(path)
            items.append(
                _Item(
                    index,
                    path,
                    UID(str(meta.MediaStorageSOPClassUID)),
                    str(meta.MediaStorageSOPInstanceUID),
                    UID(str(meta.TransferSyntaxUID)),
                )
            )
        except Exception as exc:
            results[index] = SendStatus(
                path, "", "", None, False, f"not a readable DICOM Part-10 file: {exc}"
            )

    for group, contexts in _batches(items):
        assoc, why = _associate(ae, dest, contexts, tls, timeout)
        if assoc is None:
            logger.warning(
                "sending %d instance(s) to %s failed: %s",
                len(group),
                dest,
                why,
                extra={"event": "dicom.send.no_association", "destination": str(dest)},
            )
            for item in group:
                results[item.index] = _failed(item, why)
            continue
        try:
            for item in group:
                if not assoc.is_established:
                    results[item.index] = _failed(
                        item, f"association with {dest} ended before this instance was sent"
                    )
                    continue
                results[item.index] = _send_one(assoc, item, dest)
        finally:
            if assoc.is_established:
                assoc.release()
    return [results[i] for i in range(len(files))]


def _failed(item: _Item, why: str | None) -> SendStatus:
    return SendStatus(item.path, item.sop_instance, str(item.sop_class), None, False, why)


def _how_to_send(assoc: Association, item: _Item) -> str | None:
    """How ``item`` goes: as stored (the peer accepted its own syntax), converted by pynetdicom
    between uncompressed syntaxes, decompressed (the peer accepted only uncompressed for it),
    or not at all (None: no context fits)."""
    accepted = {(cx.abstract_syntax, cx.transfer_syntax[0]) for cx in assoc.accepted_contexts}
    own = item.transfer_syntax
    if (item.sop_class, own) in accepted:
        return _AS_STORED
    if own in _CONVERTIBLE and any((item.sop_class, ts) in accepted for ts in _CONVERTIBLE):
        return _CONVERT
    if own.is_compressed and any((item.sop_class, ts) in accepted for ts in _UNCOMPRESSED):
        return _DECOMPRESS
    return None


def _payload(item: _Item, how: str) -> tuple[Path | Dataset, str, str] | str:
    """What to hand ``send_c_store``, the SOP Instance UID and the syntax; or why there is none.

    A file in an accepted syntax goes as its path: pynetdicom then sends the stored bytes in
    PDU-sized chunks instead of decoding and re-encoding the whole data set (~0.1 s for an SR).
    """
    if how == _AS_STORED:
        _config.STORE_SEND_CHUNKED_DATASET = True  # a path is sent undecoded (exact context)
        return item.path, item.sop_instance, str(item.transfer_syntax)
    try:
        ds = dcmread(item.path)
        if how == _DECOMPRESS:
            ds.decompress()
    except Exception as exc:
        what = "decompress" if how == _DECOMPRESS else "read"
        return f"cannot {what} the file: {exc}"
    uid = str(ds.get("SOPInstanceUID", item.sop_instance))
    return ds, uid, str(ds.file_meta.TransferSyntaxUID)


def _send_one(assoc: Association, item: _Item, dest: Destination) -> SendStatus:
    how = _how_to_send(assoc, item)
    if how is None:
        return _failed(
            item,
            f"{dest} accepted no presentation context for {item.sop_class.name} "
            f"in {item.transfer_syntax.name} or uncompressed",
        )
    payload = _payload(item, how)
    if isinstance(payload, str):
        return _failed(item, payload)
    what, sop_instance, sent_ts = payload
    try:
        rsp = assoc.send_c_store(what)
    except Exception as exc:
        return _failed(item, f"C-STORE not sent: {exc}")
    if "Status" not in rsp:
        return SendStatus(
            item.path,
            sop_instance,
            str(item.sop_class),
            None,
            False,
            "no C-STORE response (association aborted or DIMSE timeout)",
            sent_ts,
        )
    status = int(rsp.Status)
    category = code_to_category(status)
    ok = category in ("Success", "Warning")
    error = None
    if not ok:
        comment = rsp.get("ErrorComment")
        error = f"peer answered {category.lower()} 0x{status:04X}" + (
            f": {comment}" if comment else ""
        )
    result = SendStatus(
        item.path,
        sop_instance,
        str(item.sop_class),
        status,
        ok,
        error,
        sent_ts,
    )
    logger.log(
        logging.INFO if ok else logging.WARNING,
        "C-STORE to %s: status 0x%04X",
        dest,
        status,
        extra={
            "event": "dicom.send",
            "destination": str(dest),
            "sop_instance_uid": result.sop_instance_uid,
            "dimse_status": status,
            "transfer_syntax": sent_ts,
        },
    )
    return result


def echo(
    destination: str | Destination,
    *,
    calling_ae: str = "RASCORE",
    timeout: float = 10,
    tls: ssl.SSLContext | None = None,
) -> bool:
    """C-ECHO ``destination``: True when it answers success, False for any failure."""
    dest = destination if isinstance(destination, Destination) else Destination.parse(destination)
    ae = _new_ae(calling_ae, timeout)
    contexts = [build_context(Verification, list(_UNCOMPRESSED))]
    assoc, why = _associate(ae, dest, contexts, tls, timeout)
    if assoc is None:
        logger.warning(
            "C-ECHO to %s failed: %s",
            dest,
            why,
            extra={"event": "dicom.echo", "destination": str(dest), "reason": why},
        )
        return False
    try:
        rsp = assoc.send_c_echo()
        return bool("Status" in rsp and rsp.Status == 0x0000)
    except Exception as exc:
        logger.warning("C-ECHO to %s failed: %s", dest, exc, extra={"event": "dicom.echo"})
        return False
    finally:
        if assoc.is_established:
            assoc.release()
