"""Read a radiograph into a display-ready grey-scale array with its geometry.

The scorer must see the same picture a radiologist sees on a viewer: bone bright whatever the
photometric interpretation, windowed as the modality intended. So the reader applies, in the
order of PS3.4 N.2 (the grey-scale pipeline):

1. the Modality LUT: Rescale Slope / Intercept, or the Modality LUT Sequence;
2. the VOI: the file's first window (Window Center / Width with its VOI LUT Function), or its
   first VOI LUT Sequence item, or, when the file has neither, a robust window from the
   histogram of the anatomy (air and collimation left out);
3. the MONOCHROME1 / Presentation LUT Shape INVERSE inversion, so bone is bright.

Decoding covers what a PACS sends for CR and DX: implicit and explicit little endian, explicit
big endian, deflated, JPEG baseline and extended (12-bit), JPEG lossless (process 14 and SV1),
JPEG-LS lossless and near-lossless, JPEG 2000 lossless and lossy (and HTJ2K), RLE. pydicom's
plugins decode what they can; for the JPEG family, JPEG-LS and RLE dcmtk's command line
decoders (``dcmdjpeg``, ``dcmdjpls``, ``dcmdrle``) take over when no plugin can, e.g. 12-bit
JPEG Extended or JPEG lossless, for which no permissively licensed Python wheel exists.

Nothing is decoded on trust: before a decoder runs, the compressed frame's own header (the
JPEG 2000 SIZ marker or JP2 ``ihdr`` box, the JPEG and JPEG-LS SOF, the RLE segment table) must
agree with Rows, Columns, Samples per Pixel and Bits Allocated, which are bounded by
:data:`MAX_PIXELS` and :data:`MAX_SIDE`; a deflated data set is inflated through a decompressor
capped at what its header's image needs; dcmtk's decoders run under a memory and a time limit.
An 82-byte codestream that claims 16,000² pixels is refused, never allocated.

Anything that cannot become such a picture is rejected with a subclass of
:class:`UnreadableImage` whose message is one line saying why; the command line and the SCP
pass it on as it is. ``reason`` on each class is a short stable code for logs and statuses.

Speed: an uncompressed 2,500 × 2,000 16-bit image is decoded as a view of its bytes and, in the
common case (rescale plus a linear window), windowed in three in-place float32 passes; other
pipelines of 8- or 16-bit data go through one lookup table of at most 65,536 entries.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, Literal, cast

import numpy as np
from pydicom import Dataset, dcmread
from pydicom.dataelem import DataElement
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.encaps import generate_fragments
from pydicom.errors import InvalidDicomError
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import data_element_generator, read_preamble
from pydicom.filereader import read_dataset as read_raw_dataset
from pydicom.pixels import apply_modality_lut, apply_voi, get_decoder, pixel_array
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
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
    generate_uid,
)

__all__ = [
    "ACCEPTED_SOP_CLASSES",
    "DCMTK_MEMORY_MB",
    "DCMTK_TIMEOUT_S",
    "HISTOGRAM_PERCENTILES",
    "MAX_INFLATED",
    "MAX_PIXELS",
    "MAX_SIDE",
    "PLAUSIBLE_SPACING_MM",
    "ColourImage",
    "CorruptImage",
    "GreyscaleImage",
    "ImageTooLarge",
    "ImplausibleSpacing",
    "MissingDecoder",
    "MultiFrameImage",
    "NoPixelData",
    "NotARadiograph",
    "NotDicom",
    "UnreadableImage",
    "UnsupportedPixelFormat",
    "UnsupportedTransferSyntax",
    "VoiPreference",
    "check_bounds",
    "read_dicom",
    "read_radiograph",
]

#: Percentiles of the modality-LUT output of the anatomy that bound the window when the file
#: gives none; robust to markers, dead pixels and what is left of the background.
HISTOGRAM_PERCENTILES = (0.5, 99.5)

#: Memory bound, checked on the header before anything is decoded: 80 megapixels (320 MB as
#: float32) and 10,000 pixels a side. The largest CR plates and DX detectors are ~4,300 a side.
MAX_PIXELS = 80_000_000
MAX_SIDE = 10_000

#: A deflated data set inflates to at most its header, one frame of the size its Image Pixel
#: module declares and this margin (overlays, padding, trailing elements)...
INFLATE_MARGIN = 16 << 20
#: ...and never beyond this, which is what the largest image allowed needs at 16 bits (when the
#: header's pixel module is not found early in the stream, this is the only bound).
MAX_INFLATED = MAX_PIXELS * 2 + INFLATE_MARGIN

#: dcmtk's decoders run with at most this much address space and this much time. A frame that
#: passed the header checks needs far less (4,300² of 16 bits is 37 MB, decoded in a second).
DCMTK_MEMORY_MB = 2048
DCMTK_TIMEOUT_S = 120.0

#: Pixel spacing a hand radiograph can have, mm: detectors have 0.05-0.2, scanned films up to
#: about 1. A value outside is a mistake or an attack (4 mm on 4,000² pixels is a hand 16 m
#: wide) and is ignored as if absent, the reason kept in ``GreyscaleImage.spacing_note``.
PLAUSIBLE_SPACING_MM = (0.02, 2.0)

#: The storage SOP classes read as radiographs. A dataset handed in as an object (not a path)
#: may also have no SOP Class UID at all.
ACCEPTED_SOP_CLASSES: dict[str, str] = {
    "1.2.840.10008.5.1.4.1.1.1": "CR Image Storage",
    "1.2.840.10008.5.1.4.1.1.1.1": "Digital X-Ray Image Storage - For Presentation",
    "1.2.840.10008.5.1.4.1.1.1.1.1": "Digital X-Ray Image Storage - For Processing",
    "1.2.840.10008.5.1.4.1.1.7": "Secondary Capture Image Storage",
}

#: Which VOI the reader prefers when a file has both a window and a VOI LUT Sequence;
#: "histogram" ignores the file's VOI altogether.
VoiPreference = Literal["window", "lut", "histogram"]

# Percentiles of 65,536 pixels spread evenly over the image (a grid of about 1 mm on a hand
# radiograph) are as good as of all of them, and much cheaper.
_HISTOGRAM_SAMPLES = 1 << 16

_LATERALITIES = ("L", "R", "B", "U")

_NATIVE = frozenset(
    {ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian}
    | {DeflatedExplicitVRLittleEndian}
)
_JPEG_FAMILY = frozenset(
    {JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLossless, JPEGLosslessSV1}
    # retired JPEG processes (1.2.840.10008.1.2.4.52 - .66) that old archives still hold
    | {UID(f"1.2.840.10008.1.2.4.{n}") for n in range(52, 67)}
)
#: dcmtk's decoders, used when no pydicom plugin can decode a transfer syntax.
_DCMTK_DECODERS: dict[UID, str] = {
    **{ts: "dcmdjpeg" for ts in _JPEG_FAMILY},
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

_BOUND = f"beyond the bound of {MAX_SIDE} pixels a side and {MAX_PIXELS / 1e6:.0f} megapixels"

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


# Errors


class UnreadableImage(ValueError):
    """The object is not a single-frame grey-scale radiograph this node can decode.

    The message is one line that says why. Subclasses say which kind of refusal it is.
    """

    reason: ClassVar[str] = "unreadable"


class NotDicom(UnreadableImage):
    """The bytes are not a DICOM file (garbage, another format)."""

    reason = "not-dicom"


class CorruptImage(UnreadableImage):
    """A DICOM file that is truncated or whose header or pixel data cannot be parsed."""

    reason = "corrupt"


class NotARadiograph(UnreadableImage):
    """A SOP class other than CR, DX (either) or Secondary Capture."""

    reason = "sop-class"


class NoPixelData(UnreadableImage):
    """No Pixel Data (7FE0,0010) at all."""

    reason = "no-pixel-data"


class ColourImage(UnreadableImage):
    """Colour or palette image: more than one sample per pixel, or not MONOCHROME1/2."""

    reason = "colour"


class MultiFrameImage(UnreadableImage):
    """More than one frame; a radiograph is one."""

    reason = "multi-frame"


class ImageTooLarge(UnreadableImage):
    """Beyond the memory bound: Rows × Columns, or what a compressed frame's own header
    claims, over :data:`MAX_PIXELS` or :data:`MAX_SIDE`, or a deflated data set inflating beyond
    what its image needs. The message starts "image too large" (the job's reason shows it)."""

    reason = "too-large"


class ImplausibleSpacing(ImageTooLarge):
    """A pixel spacing over the :data:`PLAUSIBLE_SPACING_MM` bound: 4 mm on a 4,000² image is
    an image 16 metres wide, and anything that works in millimetres (a detector's working
    image) would be eight times the stored one a side. Raised by :func:`check_bounds` only;
    :func:`read_radiograph` passes such a spacing over as if absent."""


class UnsupportedPixelFormat(UnreadableImage):
    """Bits Allocated other than 8, 16 or 32, float pixel data, or a missing pixel attribute."""

    reason = "pixel-format"


class UnsupportedTransferSyntax(UnreadableImage):
    """No decoder exists at all for the transfer syntax (video, or an unknown UID)."""

    reason = "transfer-syntax"


class MissingDecoder(UnreadableImage):
    """A decoder exists for the transfer syntax but is not installed here.

    ``decoder`` names what would decode it (a Python package or a dcmtk tool).
    """

    reason = "missing-decoder"

    def __init__(self, message: str, decoder: str) -> None:
        super().__init__(message)
        self.decoder = decoder


# Result


@dataclass(frozen=True)
class GreyscaleImage:
    """A display-ready radiograph: float32 in [0, 1], bone bright, with what scoring needs."""

    pixels: np.ndarray  # (rows, columns) float32 in [0, 1]
    pixel_spacing_mm: tuple[float, float] | None  # (row spacing, column spacing)
    spacing_source: str | None  # "PixelSpacing", "ImagerPixelSpacing" or None
    laterality: str  # "L", "R", "B" or "U"
    rows: int
    columns: int
    bits_stored: int
    photometric: str
    sop_instance_uid: str
    study_instance_uid: str
    window: tuple[float, float]  # (centre, width) in modality-LUT output units
    window_source: str  # "file" or "histogram"
    # Added with the production reader; defaults keep older constructors working.
    sop_class_uid: str = ""  # "" only for a bare dataset without one
    modality: str = ""
    view_position: str = ""  # e.g. "PA", "AP"; "" when the file does not say
    transfer_syntax_uid: str = ""
    voi: str = ""  # "window", "voi-lut" or "histogram": what set the window
    voi_function: str = "LINEAR"  # LINEAR, LINEAR_EXACT, SIGMOID, or LUT for a VOI LUT
    window_explanation: str = ""  # the file's explanation, or how the histogram window was made
    inverted: bool = False  # MONOCHROME1 or Presentation LUT Shape INVERSE was applied
    decoder: str = ""  # "pydicom", "pydicom/pylibjpeg", "dcmtk dcmdjpeg", ...
    lossy: bool = False  # Lossy Image Compression 01, or a lossy transfer syntax
    spacing_note: str = ""  # why a spacing in the file was ignored (outside the plausible range)


# Loading and checks


def _one_line(exc: BaseException | str) -> str:
    text = exc if isinstance(exc, str) else str(exc)
    return " ".join(text.split()) or type(exc).__name__


def _load(source: Path | str | Dataset) -> tuple[Dataset, bool]:
    """The dataset, and whether it came from a file (which must then name its SOP class)."""
    if isinstance(source, Dataset):
        return source, False
    path = Path(source)
    ds: Dataset
    try:
        ds = _dcmread(path)
    except InvalidDicomError as exc:
        # No preamble and "DICM": some archives store bare datasets. Accept one only if it
        # parses into something that looks like an image, never garbage.
        bare = _read_bare_dataset(path)
        if bare is None:
            raise NotDicom(f"not a DICOM file: {path} ({_one_line(exc)})") from exc
        return bare, True
    except (OSError, UnreadableImage):
        raise
    except Exception as exc:  # pydicom raises many types for truncated or mangled files
        raise CorruptImage(
            f"truncated or corrupt DICOM file {path}: {type(exc).__name__}: {_one_line(exc)}"
        ) from exc
    if "PixelData" not in ds and _has_pixel_data_tag(path):
        # pydicom drops an encapsulated Pixel Data element whose file ends inside it.
        raise CorruptImage(f"truncated file {path}: it ends inside its Pixel Data (7FE0,0010)")
    return ds, True


def _has_pixel_data_tag(path: Path) -> bool:
    try:
        data = path.read_bytes()
    except OSError:
        return False
    return b"\xe0\x7f\x10\x00" in data or b"\x7f\xe0\x00\x10" in data


def _read_bare_dataset(path: Path) -> Dataset | None:
    try:
        ds = _dcmread(path, force=True)
        sop_class = str(ds.get("SOPClassUID", "") or "")
        rows = ds.get("Rows")
    except UnreadableImage:
        raise
    except Exception:
        return None
    if not sop_class.startswith("1.2.840.10008.") or rows is None:
        return None
    return ds


def read_dicom(path: Path | str) -> Dataset:
    """The data set of a DICOM file, read as :func:`read_radiograph` reads it.

    For callers that need the data set itself (the worker builds its results from it): a
    deflated data set is inflated through a capped decompressor (pydicom's ``dcmread``
    inflates without limit, so a 2 MB file can take gigabytes), and a file without preamble is
    accepted only when it looks like an image. Raises like :func:`read_radiograph`.
    """
    return _load(Path(path))[0]


def check_bounds(path: Path | str) -> None:
    """Refuse a decompression or spacing bomb on arrival, without decoding and without reading
    the pixel data into memory: Rows × Columns within :data:`MAX_PIXELS` and :data:`MAX_SIDE`,
    no pixel spacing over the plausible maximum (:class:`ImplausibleSpacing`), and for JPEG
    2000, JPEG and JPEG-LS the first frame's own header agreeing with the pixel module. Raises
    :class:`ImageTooLarge` or :class:`CorruptImage`; anything else wrong with the image is
    left to :func:`read_radiograph`, which says it when the image is scored."""
    with Path(path).open("rb") as fp:
        ds = dcmread(fp, stop_before_pixels=True, defer_size=_HEADER_VALUE_BYTES)
        try:
            rows, columns = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
            samples = int(ds.get("SamplesPerPixel", 1) or 1)
            bits = int(ds.get("BitsAllocated", 0) or 0)
        except (TypeError, ValueError):
            return  # the reader names what is wrong with the pixel module
        if rows > MAX_SIDE or columns > MAX_SIDE or rows * columns > MAX_PIXELS:
            raise ImageTooLarge(
                f"image too large: {rows} × {columns} ({rows * columns / 1e6:.0f} megapixels), "
                f"{_BOUND}"
            )
        _check_spacing_bound(ds, rows, columns)
        ts = UID(str(ds.file_meta.get("TransferSyntaxUID", "") or ""))
        if ts not in _J2K and ts not in _JPEG_FAMILY and ts not in _JPEG_LS:
            return
        start = _first_fragment_start(fp)
    if start is None:
        return  # no encapsulated pixel data where expected: the reader says so
    try:
        headers = _j2k_headers(start) if ts in _J2K else [_jpeg_header(start)]
    except (ValueError, struct.error, IndexError):
        return  # a frame the decoder will refuse as corrupt, costing nothing
    for header in headers:
        _compare(header, ts, (rows, columns, samples, bits))


def _check_spacing_bound(ds: Dataset, rows: int, columns: int) -> None:
    """Refuse a spacing bomb: any pixel spacing over the plausible maximum."""
    top = PLAUSIBLE_SPACING_MM[1]
    for keyword, name in _SPACING_NAMES.items():
        try:
            row, col = (float(v) for v in ds.get(keyword) or ())
        except (TypeError, ValueError):
            continue
        if max(row, col) > top and np.isfinite(row) and np.isfinite(col):
            raise ImplausibleSpacing(
                f"image too large: {name} {row:g}\\{col:g} mm makes it "
                f"{rows * row / 1000:.1f} × {columns * col / 1000:.1f} m; a hand radiograph's "
                f"pixels are at most {top:g} mm"
            )


#: header values longer than this are not read by :func:`check_bounds`
_HEADER_VALUE_BYTES = 64 * 1024
_ITEM = b"\xfe\xff\x00\xe0"


def _first_fragment_start(fp: BinaryIO) -> bytes | None:
    """The first bytes of the first fragment of encapsulated Pixel Data, read from ``fp``
    standing at the Pixel Data element (where ``dcmread(stop_before_pixels=True)`` leaves it)."""
    head = fp.read(12)
    if len(head) < 12 or head[:4] != b"\xe0\x7f\x10\x00" or head[8:] != b"\xff\xff\xff\xff":
        return None
    item = fp.read(8)  # the Basic Offset Table, then the first fragment
    if len(item) < 8 or item[:4] != _ITEM:
        return None
    fp.seek(struct.unpack("<I", item[4:])[0], 1)
    item = fp.read(8)
    if len(item) < 8 or item[:4] != _ITEM:
        return None
    length = struct.unpack("<I", item[4:])[0]
    return fp.read(min(length, _HEADER_BYTES))


# Deflated data sets


def _dcmread(path: Path, force: bool = False) -> Dataset:
    """``dcmread``, except that a deflated data set is inflated with a cap (:func:`_inflate`)."""
    with path.open("rb") as fp:
        preamble = read_preamble(fp, force)
        try:
            meta = read_raw_dataset(
                fp, False, True, stop_when=lambda tag, vr, length: tag.group != 2
            )
            deflated = (
                str(meta.get("TransferSyntaxUID", "")).strip() == DeflatedExplicitVRLittleEndian
            )
        except Exception:  # dcmread says what is wrong with the file meta, below
            deflated = False
        if deflated:
            inflated = _inflate(fp)
    if not deflated:
        return dcmread(path, force=force)
    body = read_raw_dataset(cast(BinaryIO, DicomBytesIO(inflated)), False, True)
    ds = FileDataset(str(path), body, preamble, FileMetaDataset(meta), False, True)
    ds.set_original_encoding(False, True, body._character_set)
    return ds


def _inflate(stream: BinaryIO) -> bytes:
    """The deflated data set that follows in ``stream``, inflated at most to the size its own
    header needs (:func:`_inflation_limit`); ImageTooLarge beyond, CorruptImage if damaged."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    out = bytearray()
    limit, probe = MAX_INFLATED, 1 << 20
    try:
        while not inflater.eof:
            pending = inflater.unconsumed_tail or stream.read(1 << 16)
            if not pending:
                out += inflater.flush()  # a truncated stream: dcmread tells what is missing
                break
            out += inflater.decompress(pending, limit + 1 - len(out))
            if probe and len(out) >= probe:  # is the header's pixel module in yet?
                limit = _inflation_limit(bytes(out[:probe]))
                probe = 2 * probe if limit == MAX_INFLATED and probe < _LAST_PROBE else 0
            if len(out) > limit:
                raise ImageTooLarge(
                    f"image too large: the deflated data set inflates beyond "
                    f"{limit / 2**20:.1f} MB, more than its header and image can need "
                    "(a decompression bomb?)"
                )
    except zlib.error as exc:
        raise CorruptImage(f"the deflated data set is corrupt: {_one_line(exc)}") from exc
    return bytes(out)


#: the header's Image Pixel module is looked for in the first 1, 2, 4, 8 and 16 MiB inflated
_LAST_PROBE = 16 << 20
_GEOMETRY = {0x00280002: "samples", 0x00280010: "rows", 0x00280011: "columns", 0x00280100: "bits"}


def _inflation_limit(prefix: bytes) -> int:
    """How far a deflated data set whose start is ``prefix`` may inflate: up to the end of its
    Image Pixel module, one frame of the size that module declares, and :data:`INFLATE_MARGIN`.
    :data:`MAX_INFLATED` while the module's end is not in ``prefix``."""
    fp = cast(BinaryIO, DicomBytesIO(prefix))
    stopped = [False]

    def past_pixel_module(tag: Any, vr: Any, length: Any) -> bool:
        stopped[0] = tag.group > 0x0028
        return stopped[0]

    found: dict[str, int] = {}
    try:
        for element in data_element_generator(fp, False, True, stop_when=past_pixel_module):
            if element.tag in _GEOMETRY and isinstance(element.value, bytes):
                found[_GEOMETRY[element.tag]] = struct.unpack("<H", element.value[:2])[0]
    except Exception:  # cut in the middle of an element, or not parseable: no bound yet
        return MAX_INFLATED
    if not stopped[0] or "rows" not in found or "columns" not in found:
        return MAX_INFLATED
    frame = (
        found["rows"]
        * found["columns"]
        * max(found.get("samples", 1), 1)
        * max((found.get("bits", 16) + 7) // 8, 1)
    )
    return min(fp.tell() + frame + INFLATE_MARGIN, MAX_INFLATED)


def _sop_class(ds: Dataset, from_file: bool) -> str:
    uid = ds.get("SOPClassUID")
    if not uid:
        file_meta = getattr(ds, "file_meta", None)
        uid = file_meta.get("MediaStorageSOPClassUID") if file_meta is not None else None
    if not uid:
        if from_file and "PixelData" not in ds and "Rows" not in ds:
            raise NotDicom("not a DICOM image: the file holds no SOP Class UID and no image")
        if from_file:
            raise NotARadiograph(
                "no SOP Class UID (0008,0016): cannot tell whether the file is a radiograph"
            )
        return ""
    uid = str(uid).strip()
    if uid not in ACCEPTED_SOP_CLASSES:
        name = UID(uid).name
        what = f"{name} ({uid})" if name != uid else uid
        raise NotARadiograph(
            f"SOP class {what} is not a radiograph; accepted: CR, DX (for presentation or "
            "processing) and single-frame grey-scale Secondary Capture"
        )
    return uid


def _int(ds: Dataset, keyword: str, default: int | None = None) -> int:
    value = ds.get(keyword, default)
    if value is None or value == "":
        if default is None:
            raise UnsupportedPixelFormat(f"{keyword} is missing, so the pixels cannot be decoded")
        return default
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise CorruptImage(f"{keyword} {value!r} is not an integer") from exc


def _check_pixel_module(ds: Dataset, from_file: bool) -> tuple[int, int]:
    """Reject what cannot become one grey-scale frame, before spending time decoding."""
    if "PixelData" not in ds:
        if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
            raise UnsupportedPixelFormat("float pixel data is not supported")
        if from_file:
            raise NoPixelData(
                "no Pixel Data (7FE0,0010) in the file: it is truncated, or the instance has "
                "no image"
            )
        raise NoPixelData("no Pixel Data (7FE0,0010) in the dataset")
    spp = _int(ds, "SamplesPerPixel", 1)
    photometric = str(ds.get("PhotometricInterpretation", "") or "").strip()
    if spp != 1:
        raise ColourImage(
            f"colour image (SamplesPerPixel={spp}, PhotometricInterpretation={photometric}); "
            "a grey-scale radiograph is needed"
        )
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise ColourImage(
            f"PhotometricInterpretation {photometric or '(absent)'} is not grey-scale "
            "(MONOCHROME1 or MONOCHROME2 needed)"
        )
    frames = _int(ds, "NumberOfFrames", 1)
    if frames > 1:
        raise MultiFrameImage(
            f"multi-frame image ({frames} frames); one frame per radiograph needed"
        )
    rows, columns = _int(ds, "Rows"), _int(ds, "Columns")
    if rows < 1 or columns < 1:
        raise CorruptImage(f"image of {rows} × {columns} pixels has no pixels")
    if rows > MAX_SIDE or columns > MAX_SIDE or rows * columns > MAX_PIXELS:
        raise ImageTooLarge(
            f"image too large: absurd dimensions {rows} × {columns} "
            f"({rows * columns / 1e6:.0f} megapixels), {_BOUND}"
        )
    bits_allocated = _int(ds, "BitsAllocated")
    if bits_allocated not in (8, 16, 32):
        raise UnsupportedPixelFormat(
            f"BitsAllocated {bits_allocated} is not supported (8, 16 or 32 needed)"
        )
    bits_stored = _int(ds, "BitsStored", bits_allocated)
    if not 1 <= bits_stored <= bits_allocated:
        raise CorruptImage(f"BitsStored {bits_stored} does not fit BitsAllocated {bits_allocated}")
    return rows, columns


# Decoding


def _find_tool(name: str) -> str | None:
    """Path of a dcmtk command line tool, or None (tests replace this to simulate absence)."""
    return shutil.which(name)


def _transfer_syntax(ds: Dataset) -> UID:
    file_meta = getattr(ds, "file_meta", None)
    tsyntax = file_meta.get("TransferSyntaxUID") if file_meta is not None else None
    if not tsyntax:
        raise UnsupportedTransferSyntax(
            "no Transfer Syntax UID (0002,0010), so the pixels cannot be decoded"
        )
    return UID(str(tsyntax).strip())


# Compressed frame headers


@dataclass(frozen=True)
class _FrameHeader:
    """What a compressed frame says of itself, read from its own header before any decoder."""

    what: str  # e.g. "JPEG 2000 codestream", "JP2 ihdr box", "JPEG SOF3 header"
    rows: int
    columns: int
    samples: int
    bits: int  # bits a sample; 0 when the header does not say


_J2K = frozenset({JPEG2000, JPEG2000Lossless, HTJ2K, HTJ2KLossless, HTJ2KLosslessRPCL})
_JPEG_LS = frozenset({JPEGLSLossless, JPEGLSNearLossless})
_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
#: SOFn markers: baseline, extended, progressive, lossless (Huffman and arithmetic) and
#: JPEG-LS (SOF55, SOF57)
_SOF = frozenset(
    {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7, 0xF9}
)
#: markers without a length: TEM, RST0-7, SOI
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})
#: how much of a frame's start is read for its header: a JPEG's APPn segments (EXIF, ICC
#: profiles) come before its SOF
_HEADER_BYTES = 1 << 20


def _check_frame_header(ds: Dataset, ts: UID, rows: int, columns: int) -> None:
    """Refuse a compressed frame whose own header disagrees with the data set's, before a
    decoder allocates what the frame claims: ImageTooLarge beyond the bounds, else
    CorruptImage."""
    if ts not in _J2K and ts not in _JPEG_FAMILY and ts not in _JPEG_LS and ts != RLELossless:
        return
    value = ds["PixelData"].value
    if not isinstance(value, bytes | bytearray):
        return
    samples, bits = _int(ds, "SamplesPerPixel", 1), _int(ds, "BitsAllocated")
    try:
        start, length = _frame_start(value)
        if ts == RLELossless:
            _check_rle(start, length, samples * ((bits + 7) // 8))
            return
        headers = _j2k_headers(start) if ts in _J2K else [_jpeg_header(start)]
    except (ValueError, struct.error, IndexError) as exc:
        raise CorruptImage(
            f"pixel data could not be decoded ({ts.name}): {_one_line(exc)}"
        ) from exc
    for header in headers:
        _compare(header, ts, (rows, columns, samples, bits))


def _compare(header: _FrameHeader, ts: UID, declared: tuple[int, int, int, int]) -> None:
    rows, columns, samples, bits = declared
    size = f"{header.rows} × {header.columns}"
    if (header.rows, header.columns) != (rows, columns):
        pixels = header.rows * header.columns
        if max(header.rows, header.columns) > MAX_SIDE or pixels > MAX_PIXELS:
            raise ImageTooLarge(
                f"image too large: its {header.what} is {size} pixels "
                f"({pixels / 1e6:.0f} megapixels), {_BOUND}, but the header says "
                f"{rows} × {columns}; refused before decoding ({ts.name})"
            )
        raise CorruptImage(
            f"pixel data could not be decoded ({ts.name}): its {header.what} is {size} pixels "
            f"but the header says {rows} × {columns}"
        )
    if header.samples != samples:
        raise CorruptImage(
            f"pixel data could not be decoded ({ts.name}): its {header.what} has "
            f"{header.samples} components but the header says Samples per Pixel {samples}"
        )
    if header.bits > bits:
        raise CorruptImage(
            f"pixel data could not be decoded ({ts.name}): its {header.what} has {header.bits} "
            f"bits a sample, more than Bits Allocated {bits}"
        )


def _frame_start(value: bytes | bytearray) -> tuple[bytes, int]:
    """The first bytes of the (only) frame of encapsulated pixel data, and its whole length."""
    fragments: Iterator[bytes] = generate_fragments(value)
    next(fragments, None)  # the Basic Offset Table
    start, length = b"", 0
    for fragment in fragments:
        if len(start) < _HEADER_BYTES:
            start += fragment[: _HEADER_BYTES - len(start)]
        length += len(fragment)
    if not length:
        raise ValueError("the encapsulated pixel data holds no fragment")
    return start, length


def _j2k_headers(data: bytes) -> list[_FrameHeader]:
    """The codestream's SIZ and, in a JP2 file, its ihdr box too (each must agree)."""
    if not data.startswith(_JP2_SIGNATURE):
        return [_siz(data)]
    headers: list[_FrameHeader] = []
    for kind, payload in _boxes(data):
        if kind == b"jp2h":
            headers += [_ihdr(body) for sub, body in _boxes(payload) if sub == b"ihdr"]
        elif kind == b"jp2c":
            return [_siz(payload), *headers]
    raise ValueError("the JP2 file has no codestream box (jp2c) near its start")


def _boxes(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(type, payload) of the JP2 boxes in ``data`` (ISO 15444-1 I.4)."""
    pos = 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, pos)
        head = 8
        if size == 1:
            size, head = struct.unpack_from(">Q", data, pos + 8)[0], 16
        elif size == 0:
            size = len(data) - pos
        if size < head:
            raise ValueError(f"malformed JP2 box {kind!r} of {size} bytes")
        yield kind, data[pos + head : pos + size]
        pos += size


def _ihdr(body: bytes) -> _FrameHeader:
    height, width, components, depth = struct.unpack_from(">IIHB", body)
    bits = 0 if depth == 0xFF else (depth & 0x7F) + 1  # 255: each component says
    return _FrameHeader("JP2 ihdr box", height, width, components, bits)


def _siz(data: bytes) -> _FrameHeader:
    """The image size of a JPEG 2000 (or HTJ2K) codestream from its SIZ marker (ISO 15444-1
    A.5.1): the first component's size, which is what a decoder allocates for a grey image."""
    if data[:4] != b"\xff\x4f\xff\x51":
        raise ValueError("the frame does not start with the JPEG 2000 SOC and SIZ markers")
    (_, _, x, y, x0, y0, tile_x, tile_y, tile_x0, tile_y0, components) = struct.unpack_from(
        ">HHIIIIIIIIH", data, 4
    )
    if components < 1:
        raise ValueError("the JPEG 2000 SIZ marker has no component")
    depth, step_x, step_y = struct.unpack_from(">BBB", data, 42)
    if not (x > x0 and y > y0 and tile_x and tile_y and step_x and step_y):
        raise ValueError(f"malformed JPEG 2000 SIZ marker ({x} × {y} from {x0}, {y0})")
    if tile_x0 > x0 or tile_y0 > y0:
        raise ValueError("malformed JPEG 2000 SIZ marker (tiles start after the image)")
    tiles = -(-(x - tile_x0) // tile_x) * -(-(y - tile_y0) // tile_y)
    if tiles > 65535:
        raise ValueError(f"the JPEG 2000 SIZ marker declares {tiles} tiles, beyond 65,535")
    columns = -(-x // step_x) - -(-x0 // step_x)
    rows = -(-y // step_y) - -(-y0 // step_y)
    return _FrameHeader("JPEG 2000 codestream", rows, columns, components, (depth & 0x7F) + 1)


def _jpeg_header(data: bytes) -> _FrameHeader:
    """The frame header (SOFn, or JPEG-LS SOF55) of a JPEG or JPEG-LS frame (ITU T.81 B.2)."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("the frame does not start with a JPEG SOI marker")
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError(f"no JPEG marker at byte {pos} of the frame")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        if marker in (0xD9, 0xDA):
            raise ValueError("the JPEG frame has no SOF marker before its scan")
        if marker in _SOF:
            bits, rows, columns, samples = struct.unpack_from(">BHHB", data, pos + 4)
            if rows == 0:
                raise ValueError("the JPEG frame leaves its height to a DNL marker (unsupported)")
            name = "JPEG-LS SOF55" if marker == 0xF7 else f"JPEG SOF{marker - 0xC0}"
            return _FrameHeader(f"{name} header", rows, columns, samples, bits)
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if length < 2:
            raise ValueError(f"malformed JPEG marker segment at byte {pos} of the frame")
        pos += 2 + length
    raise ValueError(f"no JPEG SOF marker in the first {len(data)} bytes of the frame")


def _check_rle(data: bytes, length: int, segments: int) -> None:
    """The RLE header (PS3.5 G.5): one segment per byte of a sample, each offset inside the
    frame. Decoders write Rows × Columns a segment whatever it holds; only the table needs
    checking."""
    if len(data) < 64:
        raise ValueError(f"the RLE header is cut: {len(data)} of its 64 bytes")
    count, *offsets = struct.unpack_from("<16I", data)
    if count != segments:
        raise ValueError(f"the RLE header has {count} segments, the pixel module needs {segments}")
    used = offsets[:count]
    inside = all(a < b for a, b in zip([63, *used], [*used, length], strict=True))
    if used[0] != 64 or not inside:
        raise ValueError(f"the RLE segment offsets {used} do not fit the frame's {length} bytes")


def _pillow_only_12_bit(ds: Dataset, ts: UID, plugins: tuple[str, ...]) -> bool:
    """Pillow decodes only 8-bit JPEG; pylibjpeg-libjpeg (GPL) and gdcm are not installed."""
    return (
        ts in _JPEG_FAMILY
        and ts != JPEGBaseline8Bit
        and tuple(plugins) == ("pillow",)
        and _int(ds, "BitsStored", 8) > 8
    )


def _decode(ds: Dataset, ts: UID, rows: int, columns: int) -> tuple[np.ndarray, str]:
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
    full_width = _int(ds, "BitsStored", 0) == _int(ds, "BitsAllocated")
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
                f"pixel data could not be decoded ({ts.name}): {_one_line(exc)}"
            ) from exc
        # pydicom's plugin failed where dcmtk may not (e.g. unusual JPEG markers).
        return _checked(_decode_with_dcmtk(ds, ts, tool_path), rows, columns), f"dcmtk {tool}"
    name = f"pydicom/{plugin}" if plugin else "pydicom"
    return _checked(stored, rows, columns), name


def _check_native_length(ds: Dataset, rows: int, columns: int) -> None:
    value = ds.PixelData
    if not isinstance(value, bytes | bytearray):
        return
    expected = rows * columns * (_int(ds, "BitsAllocated") // 8)
    if len(value) < expected:
        raise CorruptImage(
            f"pixel data truncated: {len(value)} of the {expected} bytes that {rows} × {columns} "
            f"pixels of {_int(ds, 'BitsAllocated')} bits need (a cut file or an interrupted "
            "transfer)"
        )


def _missing_decoder(
    ds: Dataset, ts: UID, decoder: Any, tool: str | None, plugins: tuple[str, ...]
) -> MissingDecoder:
    missing = list(getattr(decoder, "missing_dependencies", ()) or ())
    if _pillow_only_12_bit(ds, ts, plugins):
        bits = _int(ds, "BitsStored", 8)
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


def _decode_with_dcmtk(ds: Dataset, ts: UID, tool_path: str) -> np.ndarray:
    """Decode with a dcmtk tool through temporary files holding only the Image Pixel module."""
    tool = Path(tool_path).name
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

    with tempfile.TemporaryDirectory(prefix="rascore-decode-") as tmp:
        source, target = Path(tmp) / "in.dcm", Path(tmp) / "out.dcm"
        try:
            mini.save_as(source, enforce_file_format=True)
        except Exception as exc:
            raise CorruptImage(
                f"pixel data could not be prepared for {tool}: {_one_line(exc)}"
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
            raise CorruptImage(f"{tool} failed on {ts.name}: {_one_line(exc)}") from exc
        if proc.returncode != 0 or not target.exists():
            message = _one_line(proc.stderr or proc.stdout or f"exit status {proc.returncode}")
            raise CorruptImage(
                f"{tool} could not decode the {ts.name} pixel data within its "
                f"{DCMTK_MEMORY_MB} MB memory limit: {message}"
            )
        try:
            decoded = dcmread(target)
            return pixel_array(decoded)
        except Exception as exc:
            raise CorruptImage(f"{tool} output could not be read: {_one_line(exc)}") from exc


# Geometry


_SPACING_NAMES = {
    "PixelSpacing": "Pixel Spacing",
    "ImagerPixelSpacing": "Imager Pixel Spacing",
    "NominalScannedPixelSpacing": "Nominal Scanned Pixel Spacing",
}


def _spacing(ds: Dataset) -> tuple[tuple[float, float] | None, str | None, str]:
    """Pixel Spacing (calibrated at the patient) first, else Imager Pixel Spacing (detector),
    else the Nominal Scanned Pixel Spacing of a digitised film (Secondary Capture); one outside
    :data:`PLAUSIBLE_SPACING_MM` is passed over as if absent. The third value says which were
    passed over and why ("" when none)."""
    lo, hi = PLAUSIBLE_SPACING_MM
    ignored: list[str] = []
    for keyword, name in _SPACING_NAMES.items():
        value: Any = ds.get(keyword)
        if value is None:
            continue
        try:
            row, col = (float(v) for v in value)
        except (TypeError, ValueError):
            continue
        if not (row > 0 and col > 0 and np.isfinite(row) and np.isfinite(col)):
            continue  # 0\0 and the like: no spacing at all
        if not (lo <= row <= hi and lo <= col <= hi):
            ignored.append(f"{name} {row:g}\\{col:g} mm")
            continue
        return (row, col), keyword, _spacing_note(ignored)
    return None, None, _spacing_note(ignored)


def _spacing_note(ignored: list[str]) -> str:
    if not ignored:
        return ""
    lo, hi = PLAUSIBLE_SPACING_MM
    return f"{'; '.join(ignored)} ignored: outside the {lo:g}-{hi:g} mm a hand radiograph has"


def _laterality(ds: Dataset) -> str:
    image = str(ds.get("ImageLaterality", "") or "").strip().upper()
    if image in ("L", "R", "B"):
        return image
    series = str(ds.get("Laterality", "") or "").strip().upper()
    if series in ("L", "R"):
        return series
    return image if image in _LATERALITIES else "U"


def _text(ds: Dataset, keyword: str) -> str:
    try:
        return str(ds.get(keyword, "") or "").strip()
    except Exception:  # a mangled value must not stop an otherwise readable image
        return ""


# VOI


@dataclass(frozen=True)
class _Voi:
    kind: str  # "window", "voi-lut" or "histogram"
    centre: float
    width: float
    function: str  # LINEAR, LINEAR_EXACT, SIGMOID, or LUT
    explanation: str


def _first(value: Any) -> Any:
    """First value of a possibly multi-valued element (the file's preferred one)."""
    if isinstance(value, str | bytes) or not hasattr(value, "__len__"):
        return value
    return value[0] if len(value) else None


def _file_window(ds: Dataset) -> _Voi | None:
    if "WindowCenter" not in ds or "WindowWidth" not in ds:
        return None
    try:
        centre, width = float(_first(ds.WindowCenter)), float(_first(ds.WindowWidth))
    except (TypeError, ValueError, IndexError):
        return None
    function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").strip().upper()
    if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
        function = "LINEAR"
    if not (np.isfinite(centre) and np.isfinite(width)):
        return None
    # PS3.3 C.11.2.1.2: width >= 1 for LINEAR, > 0 otherwise
    if width < 1 if function == "LINEAR" else width <= 0:
        return None
    explanation = ""
    if "WindowCenterWidthExplanation" in ds:
        explanation = str(_first(ds.WindowCenterWidthExplanation) or "").strip()
    return _Voi("window", centre, width, function, explanation)


def _file_voi_lut(ds: Dataset) -> _Voi | None:
    sequence = ds.get("VOILUTSequence")
    if not sequence:
        return None
    item = sequence[0]
    try:
        entries = int(item.LUTDescriptor[0]) or 65536
        first_mapped = int(item.LUTDescriptor[1])
    except (AttributeError, TypeError, ValueError, IndexError):
        return None
    explanation = str(item.get("LUTExplanation", "") or "").strip()
    return _Voi("voi-lut", first_mapped + entries / 2.0, float(entries), "LUT", explanation)


def _choose_voi(ds: Dataset, preference: VoiPreference) -> _Voi | None:
    """The file's VOI in order of preference; None means "make one from the histogram"."""
    if preference == "histogram":
        return None
    order = (_file_voi_lut, _file_window) if preference == "lut" else (_file_window, _file_voi_lut)
    for find in order:
        voi = find(ds)
        if voi is not None:
            return voi
    return None


def _window_affine(voi: _Voi) -> tuple[float, float]:
    """(a, b) with output = a * x + b (before clipping) for a linear window on x."""
    c, w = voi.centre, voi.width
    if voi.function == "LINEAR_EXACT":
        return 1.0 / w, 0.5 - c / w
    # LINEAR (PS3.3 C.11.2.1.2.1): ((x - (c - 0.5)) / (w - 1) + 0.5), clipped
    span = max(w - 1.0, 1e-6)
    return 1.0 / span, 0.5 - (c - 0.5) / span


def _apply_voi_to_values(values: np.ndarray, voi: _Voi, ds: Dataset) -> np.ndarray:
    """VOI of modality-LUT output ``values`` (float), scaled to [0, 1] float32."""
    if voi.kind == "voi-lut":
        indices = np.rint(values).astype(np.int64)
        mapped = np.asarray(apply_voi(indices, ds, index=0), dtype=np.float32)
        item = ds.VOILUTSequence[0]
        entries, first_mapped, bits = (int(v) for v in item.LUTDescriptor)
        top = float(2**bits - 1)  # the LUT's output range (PS3.3 C.11.2.1.1)
        every_input = np.arange(first_mapped, first_mapped + (entries or 65536), dtype=np.int64)
        data_max = float(np.max(apply_voi(every_input, ds, index=0)))
        if data_max > top:  # a descriptor that understates its data (seen in the wild)
            top = float(2 ** int(np.ceil(np.log2(data_max + 1))) - 1)
        out = mapped / np.float32(top)
    elif voi.function == "SIGMOID":
        x = np.asarray(values, dtype=np.float32)
        out = 1.0 / (1.0 + np.exp(np.float32(-4.0 / voi.width) * (x - np.float32(voi.centre))))
    else:
        a, b = _window_affine(voi)
        out = np.asarray(values, dtype=np.float32) * np.float32(a) + np.float32(b)
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)


# The histogram window


def _sample_step(rows: int, columns: int) -> int:
    return max(1, int(np.sqrt(rows * columns / _HISTOGRAM_SAMPLES)))


def _end_mode(hist: np.ndarray, min_mass: float, max_extent: float) -> tuple[int, float] | None:
    """A compact mode at the low end of ``hist`` (fractions per bin) followed by a drop.

    Returns (index of the first bin above the mode, the mode's mass) or None. Compact: it holds
    at least ``min_mass`` of all pixels within ``max_extent`` of the value range; followed by a
    drop: the bins just above it hold on average under a third of what its bins do. Anatomy
    (soft tissue, bone) spreads over much of the range; air and collimator shadow do not.
    """
    bins = hist.size
    kernel = np.array([1.0, 2.0, 3.0, 2.0, 1.0]) / 9.0
    smooth = np.convolve(hist, kernel, mode="same")
    search = smooth[: int(0.4 * bins)]
    if search.size == 0 or float(search.max()) <= 0.0:
        return None
    peak = int(np.argmax(search))
    threshold = 0.25 * float(smooth[peak])
    start = peak
    while start > 0 and smooth[start - 1] > threshold:
        start -= 1
    end = peak
    while end + 1 < bins and smooth[end + 1] > threshold:
        end += 1
    while end + 1 < bins and smooth[end + 1] < smooth[end]:  # on down to the valley
        end += 1
    mass = float(hist[: end + 1].sum())
    extent = (end + 1 - start) / bins
    if mass < min_mass or extent > max_extent:
        return None
    above = hist[end + 1 : end + 1 + max(bins // 25, 1)]
    inside = float(hist[start : end + 1].mean())
    if above.size and float(above.mean()) > inside / 3.0:
        return None
    return end + 1, mass


def _body(display: np.ndarray) -> tuple[np.ndarray | None, str]:
    """Mask of the anatomy in a sample of display-oriented values (high = bright), or None.

    Leaves out, when present: a saturated extreme value (clipped background or an electronic
    shutter), a compact dark mode (direct exposure, "air") and a compact bright mode that lies
    mostly along the image border (collimator shadow), with anything beyond each.
    """
    if display.size < 4096:
        return None, ""
    excluded = np.zeros(display.shape, dtype=bool)
    notes: list[str] = []
    for extreme, name in ((display.min(), "dark"), (display.max(), "bright")):
        at = display == extreme
        fraction = float(at.mean())
        if fraction >= 0.01:
            excluded |= at
            notes.append(f"saturated {name} {fraction:.0%}")
    rest = display[~excluded]
    if rest.size < 1024:
        return None, ""
    lo, hi = (float(v) for v in np.percentile(rest, (0.05, 99.95)))
    if not hi > lo:
        return (~excluded if notes else None), ", ".join(notes)
    bins = 256
    counts, edges = np.histogram(rest, bins=bins, range=(lo, hi))
    hist = counts / float(display.size)

    dark = _end_mode(hist, min_mass=0.10, max_extent=0.12)
    if dark is not None:
        cut = float(edges[dark[0]])
        air = display < cut
        excluded |= air
        notes.append(f"air {float(air.mean()):.0%}")
    bright = _end_mode(hist[::-1], min_mass=0.02, max_extent=0.12)
    if bright is not None:
        cut = float(edges[bins - bright[0]])
        shadow = display >= cut
        rows, columns = display.shape
        frame = np.ones(display.shape, dtype=bool)
        frame[rows // 10 : rows - rows // 10, columns // 10 : columns - columns // 10] = False
        in_frame = float(shadow[frame].sum()) / max(float(shadow.sum()), 1.0)
        if in_frame >= 0.5:
            excluded |= shadow
            notes.append(f"collimation {float(shadow.mean()):.0%}")
    if not notes:
        return None, ""
    body = ~excluded
    if float(body.mean()) < 0.05:  # what is left is too little to be the anatomy
        return None, ""
    return body, ", ".join(notes)


def _histogram_voi(modality_sample: np.ndarray, inverted: bool) -> _Voi:
    """A LINEAR window that maps the anatomy's low percentile to 0 and its high one to 1.

    Mapping both ends exactly makes MONOCHROME1 and MONOCHROME2 versions of one image come out
    identical after inversion.
    """
    sample = np.asarray(modality_sample, dtype=np.float64)
    display = -sample if inverted else sample
    body, notes = _body(display)
    values = display[body] if body is not None else display.ravel()
    lo_d, hi_d = (float(v) for v in np.percentile(values, HISTOGRAM_PERCENTILES))
    lo, hi = (-hi_d, -lo_d) if inverted else (lo_d, hi_d)
    p_lo, p_hi = HISTOGRAM_PERCENTILES
    what = f"anatomy (excluded: {notes})" if notes else "whole image"
    explanation = f"histogram {p_lo:g}-{p_hi:g} percentiles of the {what}"
    # LINEAR maps c - 0.5 - (w - 1)/2 to 0 and c - 0.5 + (w - 1)/2 to 1 (PS3.3 C.11.2.1.2.1).
    return _Voi("histogram", (lo + hi) / 2.0 + 0.5, hi - lo + 1.0, "LINEAR", explanation)


# The pipeline


def _rescale(ds: Dataset) -> tuple[float, float] | None:
    """(slope, intercept) of a linear Modality LUT, or None for a Modality LUT Sequence."""
    if ds.get("ModalityLUTSequence"):
        return None
    try:
        slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
        intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
    except (TypeError, ValueError) as exc:
        raise CorruptImage(f"Rescale Slope / Intercept are not numbers: {_one_line(exc)}") from exc
    if not (np.isfinite(slope) and np.isfinite(intercept)) or slope == 0.0:
        raise CorruptImage(f"Rescale Slope {slope} / Intercept {intercept} are unusable")
    return slope, intercept


def _index_domain(stored: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """For 8- and 16-bit data: an unsigned view to index tables with, and each index's value."""
    unsigned = {1: np.uint8, 2: np.uint16}.get(stored.dtype.itemsize)
    if stored.dtype.kind not in "iu" or unsigned is None:
        return None
    domain = np.arange(1 << (8 * stored.dtype.itemsize), dtype=unsigned).view(stored.dtype)
    return stored.view(unsigned), domain


def _modality_values(
    stored: np.ndarray, ds: Dataset, rescale: tuple[float, float] | None
) -> np.ndarray:
    """Modality-LUT output of (a small array of) stored values, float64."""
    if rescale is not None:
        return stored.astype(np.float64) * rescale[0] + rescale[1]
    return np.asarray(apply_modality_lut(stored, ds), dtype=np.float64)


def _display(
    stored: np.ndarray,
    ds: Dataset,
    rescale: tuple[float, float] | None,
    voi: _Voi,
    inverted: bool,
) -> np.ndarray:
    """The display image, float32 in [0, 1], bone bright."""
    if rescale is not None and voi.kind != "voi-lut" and voi.function != "SIGMOID":
        # Linear modality and linear window: one affine map, three in-place float32 passes.
        a, b = _window_affine(voi)
        a, b = a * rescale[0], a * rescale[1] + b
        if inverted:
            a, b = -a, 1.0 - b
        out = np.multiply(stored, np.float32(a), dtype=np.float32)
        out += np.float32(b)
        return np.clip(out, 0.0, 1.0, out=out)

    domain = _index_domain(stored)
    if domain is not None:
        # Any pipeline on 8- or 16-bit data: one table over every possible stored value.
        index, values = domain
        table = _apply_voi_to_values(_modality_values(values, ds, rescale), voi, ds)
        if inverted:
            table = np.float32(1.0) - table
        return table[index]

    values = _modality_values(stored, ds, rescale).astype(np.float32)  # 32-bit data: rare
    out = _apply_voi_to_values(values, voi, ds)
    return np.float32(1.0) - out if inverted else out


def read_radiograph(
    source: Path | str | Dataset, *, voi: VoiPreference = "window"
) -> GreyscaleImage:
    """Decode a single-frame grey-scale radiograph into a display-ready image.

    ``source`` is a path or a dataset. ``voi`` chooses between a file's window and its VOI LUT
    Sequence when it has both ("window", the default, or "lut"); "histogram" ignores both.
    Raises a subclass of :class:`UnreadableImage` with a one-line reason if it cannot (OSError
    if a path cannot be opened at all).
    """
    ds, from_file = _load(source)
    sop_class = _sop_class(ds, from_file)
    rows, columns = _check_pixel_module(ds, from_file)
    ts = _transfer_syntax(ds)
    _check_frame_header(ds, ts, rows, columns)
    stored, decoder = _decode(ds, ts, rows, columns)

    photometric = str(ds.PhotometricInterpretation).strip()
    shape = _text(ds, "PresentationLUTShape").upper()
    inverted = photometric == "MONOCHROME1" or shape == "INVERSE"
    rescale = _rescale(ds)

    chosen = _choose_voi(ds, voi)
    if chosen is None:
        step = _sample_step(rows, columns)
        chosen = _histogram_voi(_modality_values(stored[::step, ::step], ds, rescale), inverted)
    try:
        out = _display(stored, ds, rescale, chosen, inverted)
    except UnreadableImage:
        raise
    except Exception as exc:  # a malformed LUT in an otherwise readable file
        raise CorruptImage(
            f"the Modality/VOI LUT could not be applied: {type(exc).__name__}: {_one_line(exc)}"
        ) from exc

    spacing, spacing_source, spacing_note = _spacing(ds)
    lossy_flag = _text(ds, "LossyImageCompression")
    return GreyscaleImage(
        pixels=np.ascontiguousarray(out, dtype=np.float32),
        pixel_spacing_mm=spacing,
        spacing_source=spacing_source,
        laterality=_laterality(ds),
        rows=rows,
        columns=columns,
        bits_stored=_int(ds, "BitsStored", stored.dtype.itemsize * 8),
        photometric=photometric,
        sop_instance_uid=_text(ds, "SOPInstanceUID"),
        study_instance_uid=_text(ds, "StudyInstanceUID"),
        window=(float(chosen.centre), float(chosen.width)),
        window_source="histogram" if chosen.kind == "histogram" else "file",
        sop_class_uid=sop_class,
        modality=_text(ds, "Modality"),
        view_position=_text(ds, "ViewPosition").upper(),
        transfer_syntax_uid=str(ts),
        voi=chosen.kind,
        voi_function=chosen.function,
        window_explanation=chosen.explanation,
        inverted=inverted,
        decoder=decoder,
        lossy=lossy_flag == "01" or ts in _LOSSY or (lossy_flag != "00" and ts in _MAYBE_LOSSY),
        spacing_note=spacing_note,
    )
