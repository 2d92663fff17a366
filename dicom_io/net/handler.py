"""The seam between the SCP and the application, in pynetdicom's manner.

The SCP hands a :class:`ReceivedInstance` (a durable file) to a :data:`StoreHandler`; what the
handler returns, or the :class:`StoreRefused` it raises, becomes the DIMSE status the sender
sees. Nothing here speaks the protocol.

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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

SUCCESS_OR_WARNING = frozenset({0x0000, 0xB000, 0xB006, 0xB007})
STATUS_PROCESSING_FAILURE = 0xC211


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


def error_comment(text: str) -> str:
    """An Error Comment (LO): printable ASCII without backslash, 64 characters at most."""
    cleaned = "".join(c if 0x20 <= ord(c) <= 0x7E and c != "\\" else "?" for c in text)
    return cleaned[:64]
