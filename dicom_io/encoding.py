"""Write a data set as a DICOM Part 10 file, fast, byte for byte as pydicom writes it.

Why: pydicom's writer takes ~100 ms for a 20-joint SR (an ambiguous-VR walk, a character set
look-up and a temporary buffer per element), and result objects are on the node's critical
path. This writer covers what our builders make (Explicit or Implicit VR Little Endian,
ISO_IR 6, 100 or 192, native pixel data) in one pass into one buffer, and hands anything
else to pydicom, so the bytes are always those of ``ds.save_as(f, enforce_file_format=True)``.
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Callable, Sequence
from copy import deepcopy
from typing import Any, BinaryIO

import numpy as np
from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset, validate_file_meta
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import correct_ambiguous_vr_element, write_file_meta_info
from pydicom.multival import MultiValue
from pydicom.tag import _LUT_DESCRIPTOR_TAGS, Tag
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pydicom.valuerep import AMBIGUOUS_VR, EXPLICIT_VR_LENGTH_32, PersonName

__all__ = ["encode_file", "write_file"]

#: transfer syntax -> implicit VR; any other syntax goes to pydicom
_SYNTAXES = {ExplicitVRLittleEndian: False, ImplicitVRLittleEndian: True}
#: Python codecs (from Specific Character Set) that encode text with plain ``str.encode``
_CODECS = frozenset({default_encoding, "latin_1", "UTF8"})
_MULTI = (MultiValue, list, tuple, np.ndarray)
_PIXEL_DATA = 0x7FE00010
_CHARSET = 0x00080005
_UL = struct.Struct("<L")
_IMPLICIT = struct.Struct("<HHL")
_SHORT = struct.Struct("<HH2sH")
_LONG = struct.Struct("<HH2sHL")
_ITEM = b"\xfe\xff\x00\xe0\xff\xff\xff\xff"  # (FFFE,E000), length patched unless undefined
_ITEM_END = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"
_SEQUENCE_END = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
_UNDEFINED = 0xFFFFFFFF


class _Unsupported(Exception):
    """Something this writer leaves to pydicom (which may also refuse it, and says why)."""


def encode_file(ds: Dataset) -> bytes:
    """``ds`` as the bytes of a DICOM file: preamble, ``DICM``, file meta, data set."""
    try:
        return _encode_fast(ds)
    except _Unsupported:
        return _encode_pydicom(ds)


def write_file(ds: Dataset, target: str | os.PathLike[str] | BinaryIO) -> None:
    """Write :func:`encode_file` of ``ds`` to a path or an open binary file."""
    data = encode_file(ds)
    if isinstance(target, str | os.PathLike):
        with open(target, "wb") as f:
            f.write(data)
    else:
        target.write(data)


def _encode_pydicom(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _encode_fast(ds: Dataset) -> bytes:
    """The file's bytes, or :class:`_Unsupported`; the file meta as ``dcmwrite`` makes it."""
    if any(tag >> 16 in (0, 2) for tag in ds.keys()):  # noqa: SIM118 (iterating converts)
        raise _Unsupported  # pydicom refuses these with its own message
    meta = deepcopy(ds.file_meta) if hasattr(ds, "file_meta") else FileMetaDataset()
    implicit = _SYNTAXES.get(meta.get("TransferSyntaxUID"))
    preamble = getattr(ds, "preamble", None) or b"\x00" * 128
    if implicit is None or len(preamble) != 128:
        raise _Unsupported
    for keyword, source in (
        ("MediaStorageSOPClassUID", "SOPClassUID"),
        ("MediaStorageSOPInstanceUID", "SOPInstanceUID"),
    ):
        value = ds.get(source)
        if meta.get(keyword) is None or (value and value != meta.get(keyword)):
            setattr(meta, keyword, value)
    validate_file_meta(meta, enforce_standard=True)
    meta_io = DicomBytesIO()
    meta_io.is_little_endian, meta_io.is_implicit_VR = True, False
    write_file_meta_info(meta_io, meta, enforce_standard=True)
    if "PixelData" in ds:
        ds["PixelData"].is_undefined_length = False  # as dcmwrite does: native pixel data
    out = bytearray(preamble)
    out += b"DICM"
    out += meta_io.getvalue()
    _write_dataset(out, ds, implicit, [default_encoding], root=True)
    return bytes(out)


def _write_dataset(
    out: bytearray, ds: Dataset, implicit: bool, parent_codecs: list[str], root: bool = False
) -> None:
    """Append ``ds``'s elements in tag order, skipping group lengths as pydicom does.

    pydicom re-converts (raw elements, ambiguous VRs) only a data set whose original encoding
    differs from the one written; a data set read in the same encoding would be copied raw,
    which is left to pydicom.
    """
    codecs = parent_codecs
    if _CHARSET in ds.keys():  # noqa: SIM118 (no Tag() made)
        codecs = convert_encodings(ds[_CHARSET].value)
    if len(codecs) != 1 or codecs[0] not in _CODECS:
        raise _Unsupported
    # sorted as plain ints: pydicom's tags compare in Python, a tenth of the time here
    for tag, elem in sorted(zip(map(int, ds.keys()), ds.values(), strict=True)):
        if not tag & 0xFFFF and tag >> 16 > 6:
            continue
        if isinstance(elem, RawDataElement):
            if ds.original_encoding == (implicit, True):
                raise _Unsupported
            elem = ds[tag]
        vr = elem.VR
        if vr in AMBIGUOUS_VR:
            if not root or tag != _PIXEL_DATA or ds.original_encoding == (implicit, True):
                raise _Unsupported
            correct_ambiguous_vr_element(elem, ds, True)  # in place, as pydicom does
            vr = elem.VR
        if vr == "SQ":
            _write_sequence(out, elem, implicit, codecs)
            continue
        writer = _WRITERS.get(vr)
        if writer is None or elem.is_undefined_length:
            raise _Unsupported
        try:  # each writer refuses a value type it does not know (a buffer, say)
            value = b"" if _is_empty(elem.value) else writer(elem, codecs)
        except (struct.error, TypeError, ValueError, UnicodeError, AttributeError) as exc:
            raise _Unsupported from exc
        _header(out, tag, vr, len(value), implicit)
        out += value


def _header(out: bytearray, tag: int, vr: str, length: int, implicit: bool) -> None:
    group, element = tag >> 16, tag & 0xFFFF
    if implicit:
        out += _IMPLICIT.pack(group, element, length)
    elif vr in EXPLICIT_VR_LENGTH_32:
        out += _LONG.pack(group, element, vr.encode(), 0, length)
    elif length > 0xFFFF:
        raise _Unsupported  # pydicom writes it as UN, with a warning
    else:
        out += _SHORT.pack(group, element, vr.encode(), length)


def _write_sequence(out: bytearray, elem: DataElement, implicit: bool, codecs: list[str]) -> None:
    """Defined lengths (patched in place) unless the sequence or item says undefined."""
    undefined = elem.is_undefined_length
    _header(out, elem.tag, "SQ", _UNDEFINED if undefined else 0, implicit)
    start = len(out)
    for item in elem.value:
        out += _ITEM
        item_start = len(out)
        _write_dataset(out, item, implicit, codecs)
        if getattr(item, "is_undefined_length_sequence_item", False):
            out += _ITEM_END
        else:
            _UL.pack_into(out, item_start - 4, len(out) - item_start)
    if undefined:
        out += _SEQUENCE_END
    else:
        _UL.pack_into(out, start - 4, len(out) - start)


# --- values: each mirrors its pydicom.filewriter counterpart ------------------------------


def _is_empty(value: Any) -> bool:
    """``DataElement.is_empty`` for the value types written here, without its ABC checks."""
    if value is None:
        return True
    if isinstance(value, str | bytes | PersonName):
        return not value
    if isinstance(value, _MULTI):
        return len(value) == 0
    return False


def _padded(data: bytes, pad: bytes = b" ") -> bytes:
    return data + pad if len(data) % 2 else data


def _string(elem: DataElement, codecs: list[str], pad: str = " ") -> bytes:
    """AE, AS, CS, UR, UI; DA, DT, TM given as text: ``write_string``."""
    value = elem.value
    if not isinstance(value, str) and isinstance(value, _MULTI):  # str first: no ABC check
        value = "\\".join(value)
    if isinstance(value, bytes) and not len(value) % 2:
        return value
    if not isinstance(value, str):
        raise _Unsupported
    if len(value) % 2:
        value += pad
    return value.encode(default_encoding)


def _uid(elem: DataElement, codecs: list[str]) -> bytes:
    return _string(elem, codecs, "\0")


def _text(elem: DataElement, codecs: list[str]) -> bytes:
    """LO, LT, SH, ST, UC, UT in the data set's one character set: ``write_text``."""
    value = elem.value
    if isinstance(value, str):
        return _padded(value.encode(codecs[0]))
    if isinstance(value, _MULTI):
        if isinstance(value[0], str):
            return _padded(b"\\".join(v.encode(codecs[0]) for v in value))
        return _padded(b"\\".join(value))
    if not isinstance(value, bytes):
        raise _Unsupported
    return _padded(value)


def _person_name(elem: DataElement, codecs: list[str]) -> bytes:
    values = [elem.value] if elem.VM == 1 else elem.value
    return _padded(b"\\".join(v.encode(codecs) for v in values))


def _number_string(elem: DataElement, codecs: list[str]) -> bytes:
    """DS, IS: the string they were read as, else pydicom's ``str``."""
    value = elem.value
    items = value if isinstance(value, _MULTI) else [value]
    text = "\\".join(x.original_string if hasattr(x, "original_string") else str(x) for x in items)
    return _padded(text.encode(default_encoding))


def _temporal(formats: tuple[str, str]) -> Callable[[DataElement, list[str]], bytes]:
    """DA, DT, TM: text as it is, date/time objects formatted (``formats``: without, with
    microseconds) unless they keep the string they were made from."""

    def format_one(x: Any) -> str:
        if x is None or isinstance(x, str):
            return x or ""
        if hasattr(x, "original_string"):
            return str(x.original_string)
        return str(x.strftime(formats[1] if getattr(x, "microsecond", 0) > 0 else formats[0]))

    def write(elem: DataElement, codecs: list[str]) -> bytes:
        value = elem.value
        if isinstance(value, str):
            return _string(elem, codecs)
        items = value if isinstance(value, _MULTI) else [value]
        return _padded("\\".join(format_one(x) for x in items).encode(default_encoding))

    return write


def _numbers(fmt: str) -> Callable[[DataElement, list[str]], bytes]:
    def write(elem: DataElement, codecs: list[str]) -> bytes:
        value = elem.value
        if isinstance(value, MultiValue | list):
            if fmt == "h" and elem.tag in _LUT_DESCRIPTOR_TAGS:
                raise _Unsupported  # its first value is written unsigned
            return struct.pack(f"<{len(value)}{fmt}", *value)
        return struct.pack(f"<{fmt}", value)

    return write


def _bytes(elem: DataElement, codecs: list[str]) -> bytes:
    """OB, OD, OF, OL, OV, OW: padded with a NUL to even length."""
    if not isinstance(elem.value, bytes | bytearray):
        raise _Unsupported
    return _padded(bytes(elem.value), b"\0")


def _unknown(elem: DataElement, codecs: list[str]) -> bytes:
    """UN: as it is, unpadded."""
    if not isinstance(elem.value, bytes | bytearray):
        raise _Unsupported
    return bytes(elem.value)


def _tags(elem: DataElement, codecs: list[str]) -> bytes:
    value = elem.value
    try:
        tags: Sequence[Any] = list(value)
    except TypeError:  # one tag (an int); as pydicom, anything iterable is a list of tags
        tags = [value]
    return b"".join(struct.pack("<HH", t.group, t.element) for t in map(Tag, tags))


_WRITERS: dict[str, Callable[[DataElement, list[str]], bytes]] = {
    **dict.fromkeys(("AE", "AS", "CS", "UR"), _string),
    **dict.fromkeys(("LO", "LT", "SH", "ST", "UC", "UT"), _text),
    **dict.fromkeys(("OB", "OD", "OF", "OL", "OV", "OW"), _bytes),
    "UI": _uid,
    "PN": _person_name,
    "DS": _number_string,
    "IS": _number_string,
    "DA": _temporal(("%Y%m%d", "%Y%m%d")),
    "DT": _temporal(("%Y%m%d%H%M%S%z", "%Y%m%d%H%M%S.%f%z")),
    "TM": _temporal(("%H%M%S", "%H%M%S.%f")),
    "AT": _tags,
    "UN": _unknown,
    "FD": _numbers("d"),
    "FL": _numbers("f"),
    "SL": _numbers("l"),
    "SS": _numbers("h"),
    "SV": _numbers("q"),
    "UL": _numbers("L"),
    "US": _numbers("H"),
    "UV": _numbers("Q"),
}
