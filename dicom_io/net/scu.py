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

import logging
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.filereader import read_file_meta_info
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pynetdicom import _config, build_context
from pynetdicom.association import Association
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.status import code_to_category

from dicom_io.net.peers import (
    Destination,
    ae_title_problem,
    associate,
    check_ae_title,
    client_tls_context,
    new_ae,
    parse_destinations,
)

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
    ae = new_ae(calling_ae, timeout)
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
        assoc, why = associate(ae, dest, contexts, tls, timeout)
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
    ae = new_ae(calling_ae, timeout)
    contexts = [build_context(Verification, list(_UNCOMPRESSED))]
    assoc, why = associate(ae, dest, contexts, tls, timeout)
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
