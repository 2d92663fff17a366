"""Stored values of the one frame: pydicom's plugins, or dcmtk's decoders where none can.

For the JPEG family, JPEG-LS and RLE dcmtk's command line decoders (``dcmdjpeg``,
``dcmdjpls``, ``dcmdrle``) take over when no plugin can, e.g. 12-bit JPEG Extended or JPEG
lossless, for which no permissively licensed Python wheel exists. They run under a memory and a
time limit. Native data is used as a view of its bytes, without a copy.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from pydicom import Dataset, dcmread
from pydicom.dataelem import DataElement
from pydicom.dataset import FileMetaDataset
from pydicom.pixels import get_decoder, pixel_array
from pydicom.uid import (
    HTJ2K,
    JPEG2000,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
    generate_uid,
)

from dicom_io.reading.errors import (
    CorruptImage,
    ImageTooLarge,
    MissingDecoder,
    UnsupportedPixelFormat,
    UnsupportedTransferSyntax,
    header_int,
    one_line,
)
from dicom_io.reading.frames import JPEG_FAMILY

#: dcmtk's decoders run with at most this much address space and this much time. A frame that
#: passed the header checks needs far less (4,300² of 16 bits is 37 MB, decoded in a second).
DCMTK_MEMORY_MB = 2048
DCMTK_TIMEOUT_S = 120.0

_NATIVE = frozenset(
    {ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian}
    | {DeflatedExplicitVRLittleEndian}
)
#: dcmtk's decoders, used when no pydicom plugin can decode a transfer syntax.
_DCMTK_DECODERS: dict[UID, str] = {
    **{ts: "dcmdjpeg" for ts in JPEG_FAMILY},
    UID(JPEGLSLossless): "dcmdjpls",
    UID(JPEGLSNearLossless): "dcmdjpls",
    UID(RLELossless): "dcmdrle",
}
#: Where pylibjpeg is installed it is preferred: Pillow's JPEG 2000 path is slower and less
#: faithful for 16-bit data.
_PREFER_PYLIBJPEG = frozenset(
    {JPEG2000, JPEG2000Lossless, HTJ2K, HTJ2KLossless, HTJ2KLosslessRPCL, RLELossless}
)
#: Always lossy, whatever Lossy Image Compression says; JPEG 2000 and HTJ2K may be either.
_LOSSY = frozenset({JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLSNearLossless})
_MAYBE_LOSSY = frozenset({JPEG2000, HTJ2K})


def is_lossy(flag: str, ts: UID) -> bool:
    """Whether the pixels went through lossy compression: Lossy Image Compression (0028,2110)
    says "01", the transfer syntax is always lossy, or it may be and the flag does not deny it."""
    return flag == "01" or ts in _LOSSY or (flag != "00" and ts in _MAYBE_LOSSY)


_PIXEL_MODULE = (
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "PlanarConfiguration",
    "NumberOfFrames",
    "Rows",
    "Columns",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
)


def _find_tool(name: str) -> str | None:
    """Path of a dcmtk command line tool, or None (tests replace this to simulate absence)."""
    return shutil.which(name)


def transfer_syntax(ds: Dataset) -> UID:
    file_meta = getattr(ds, "file_meta", None)
    tsyntax = file_meta.get("TransferSyntaxUID") if file_meta is not None else None
    if not tsyntax:
        raise UnsupportedTransferSyntax(
            "no Transfer Syntax UID (0002,0010), so the pixels cannot be decoded"
        )
    return UID(str(tsyntax).strip())


def _pillow_only_12_bit(ds: Dataset, ts: UID, plugins: tuple[str, ...]) -> bool:
    """Pillow decodes only 8-bit JPEG; pylibjpeg-libjpeg (GPL) and gdcm are not installed."""
    return (
        ts in JPEG_FAMILY
        and ts != JPEGBaseline8Bit
        and tuple(plugins) == ("pillow",)
        and header_int(ds, "BitsStored", 8) > 8
    )


def decode_pixels(ds: Dataset, ts: UID, rows: int, columns: int) -> tuple[np.ndarray, str]:
    """Stored values of the one frame, as (rows, columns), and what decoded them."""
    tool = _DCMTK_DECODERS.get(ts)
    tool_path = _find_tool(tool) if tool else None
    try:
        decoder = get_decoder(ts)
    except NotImplementedError as exc:
        if tool_path is None or tool is None:
            raise UnsupportedTransferSyntax(
                f"no decoder exists for transfer syntax {ts.name} ({ts})"
            ) from exc
        decoder = None

    plugins: tuple[str, ...] = tuple(getattr(decoder, "available_plugins", ()) or ())
    usable = decoder is not None and decoder.is_available
    if usable and _pillow_only_12_bit(ds, ts, plugins):
        usable = False
    if not usable:
        if tool_path is None:
            raise _missing_decoder(ds, ts, decoder, tool, plugins)
        return _checked(_decode_with_dcmtk(ds, ts, tool_path), rows, columns), f"dcmtk {tool}"

    if ts in _NATIVE:
        _check_native_length(ds, rows, columns)
    plugin = "pylibjpeg" if ts in _PREFER_PYLIBJPEG and "pylibjpeg" in plugins else ""
    # Native data is used in place (no copy) unless unused high bits must be masked off.
    full_width = header_int(ds, "BitsStored", 0) == header_int(ds, "BitsAllocated")
    options: dict[str, Any] = {"view_only": True} if ts in _NATIVE and full_width else {}
    try:
        stored = pixel_array(ds, decoding_plugin=plugin, **options)
    except MemoryError as exc:
        raise ImageTooLarge(
            f"image too large: decoding the {ts.name} pixel data ran out of memory"
        ) from exc
    except Exception as exc:  # decoders raise many types; all mean the same to the caller
        if tool_path is None:
            raise CorruptImage(
                f"pixel data could not be decoded ({ts.name}): {one_line(exc)}"
            ) from exc
        # pydicom's plugin failed where dcmtk may not (e.g. unusual JPEG markers).
        return _checked(_decode_with_dcmtk(ds, ts, tool_path), rows, columns), f"dcmtk {tool}"
    name = f"pydicom/{plugin}" if plugin else "pydicom"
    return _checked(stored, rows, columns), name


def _check_native_length(ds: Dataset, rows: int, columns: int) -> None:
    value = ds.PixelData
    if not isinstance(value, bytes | bytearray):
        return
    expected = rows * columns * (header_int(ds, "BitsAllocated") // 8)
    if len(value) < expected:
        raise CorruptImage(
            f"pixel data truncated: {len(value)} of the {expected} bytes that {rows} × {columns} "
            f"pixels of {header_int(ds, 'BitsAllocated')} bits need (a cut file or an interrupted "
            "transfer)"
        )


def _missing_decoder(
    ds: Dataset, ts: UID, decoder: Any, tool: str | None, plugins: tuple[str, ...]
) -> MissingDecoder:
    missing = list(getattr(decoder, "missing_dependencies", ()) or ())
    if _pillow_only_12_bit(ds, ts, plugins):
        bits = header_int(ds, "BitsStored", 8)
        missing = [f"Pillow decodes only 8-bit {ts.name}, this image has {bits} bits", *missing]
    needs = "; ".join(missing) or "a decoding plugin"
    if tool:
        needs += f"; or dcmtk's {tool} on PATH"
        named = tool
    else:
        named = needs
    return MissingDecoder(f"no decoder installed for {ts.name} ({ts}): needs {needs}", named)


def _checked(stored: np.ndarray, rows: int, columns: int) -> np.ndarray:
    if stored.shape != (rows, columns):
        raise CorruptImage(
            f"decoded pixel data has shape {stored.shape}, the header says {rows} × {columns}"
        )
    if stored.dtype.kind not in "iuf":
        raise UnsupportedPixelFormat(f"decoded pixel data of type {stored.dtype} is not numeric")
    return stored


def _pixel_module_only(ds: Dataset, ts: UID) -> Dataset:
    """A file's worth of ``ds`` that a dcmtk decoder needs: its Image Pixel module and UIDs."""
    mini = Dataset()
    for keyword in _PIXEL_MODULE:
        if keyword in ds:
            mini[keyword] = ds[keyword]
    sop_class = str(ds.get("SOPClassUID", "") or "1.2.840.10008.5.1.4.1.1.7")
    sop_instance = str(ds.get("SOPInstanceUID", "") or generate_uid())
    mini.SOPClassUID = sop_class
    mini.SOPInstanceUID = sop_instance
    original = ds["PixelData"]
    element = DataElement(0x7FE00010, "OB", original.value)
    element.is_undefined_length = True  # encapsulated
    mini["PixelData"] = element
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ts
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance)
    mini.file_meta = meta
    return mini


def _decode_with_dcmtk(ds: Dataset, ts: UID, tool_path: str) -> np.ndarray:
    """Decode with a dcmtk tool through temporary files holding only the Image Pixel module."""
    tool = Path(tool_path).name
    mini = _pixel_module_only(ds, ts)
    with tempfile.TemporaryDirectory(prefix="rascore-decode-") as tmp:
        source, target = Path(tmp) / "in.dcm", Path(tmp) / "out.dcm"
        try:
            mini.save_as(source, enforce_file_format=True)
        except Exception as exc:
            raise CorruptImage(
                f"pixel data could not be prepared for {tool}: {one_line(exc)}"
            ) from exc
        # The limit is set by the shell the tool is exec'ed from: a preexec_fn would run Python
        # between fork and exec, which is unsafe in a process with threads (torch, Celery).
        limited = 'ulimit -v "$1" && shift && exec "$@"'
        kib = str(DCMTK_MEMORY_MB * 1024)
        try:
            proc = subprocess.run(
                ["/bin/sh", "-c", limited, "sh", kib, tool_path, str(source), str(target)],
                capture_output=True,
                text=True,
                timeout=DCMTK_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise CorruptImage(
                f"{tool} took longer than {DCMTK_TIMEOUT_S:g} s on the {ts.name} pixel data "
                "and was stopped"
            ) from exc
        except OSError as exc:
            raise CorruptImage(f"{tool} failed on {ts.name}: {one_line(exc)}") from exc
        if proc.returncode != 0 or not target.exists():
            message = one_line(proc.stderr or proc.stdout or f"exit status {proc.returncode}")
            raise CorruptImage(
                f"{tool} could not decode the {ts.name} pixel data within its "
                f"{DCMTK_MEMORY_MB} MB memory limit: {message}"
            )
        try:
            decoded = dcmread(target)
            return pixel_array(decoded)
        except Exception as exc:
            raise CorruptImage(f"{tool} output could not be read: {one_line(exc)}") from exc
