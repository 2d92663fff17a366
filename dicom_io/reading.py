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

Anything that cannot become such a picture is rejected with a subclass of
:class:`UnreadableImage` whose message is one line saying why; the command line and the SCP
pass it on as it is. ``reason`` on each class is a short stable code for logs and statuses.

Speed: an uncompressed 2,500 × 2,000 16-bit image is decoded as a view of its bytes and, in the
common case (rescale plus a linear window), windowed in three in-place float32 passes; other
pipelines of 8- or 16-bit data go through one lookup table of at most 65,536 entries.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydicom import Dataset, dcmread
from pydicom.dataelem import DataElement
from pydicom.dataset import FileMetaDataset
from pydicom.errors import InvalidDicomError
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
    "HISTOGRAM_PERCENTILES",
    "MAX_PIXELS",
    "MAX_SIDE",
    "ColourImage",
    "CorruptImage",
    "GreyscaleImage",
    "ImageTooLarge",
    "MissingDecoder",
    "MultiFrameImage",
    "NoPixelData",
    "NotARadiograph",
    "NotDicom",
    "UnreadableImage",
    "UnsupportedPixelFormat",
    "UnsupportedTransferSyntax",
    "VoiPreference",
    "read_radiograph",
]

#: Percentiles of the modality-LUT output of the anatomy that bound the window when the file
#: gives none; robust to markers, dead pixels and what is left of the background.
HISTOGRAM_PERCENTILES = (0.5, 99.5)

#: Memory bound, checked on the header before anything is decoded: 80 megapixels (320 MB as
#: float32) and 10,000 pixels a side. The largest CR plates and DX detectors are ~4,300 a side.
MAX_PIXELS = 80_000_000
MAX_SIDE = 10_000

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
    """Rows × Columns beyond the memory bound (:data:`MAX_PIXELS`, :data:`MAX_SIDE`)."""

    reason = "too-large"


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
        ds = dcmread(path)
    except InvalidDicomError as exc:
        # No preamble and "DICM": some archives store bare datasets. Accept one only if it
        # parses into something that looks like an image, never garbage.
        bare = _read_bare_dataset(path)
        if bare is None:
            raise NotDicom(f"not a DICOM file: {path} ({_one_line(exc)})") from exc
        return bare, True
    except OSError:
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
        ds = dcmread(path, force=True)
        sop_class = str(ds.get("SOPClassUID", "") or "")
        rows = ds.get("Rows")
    except Exception:
        return None
    if not sop_class.startswith("1.2.840.10008.") or rows is None:
        return None
    return ds


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
            f"absurd dimensions {rows} × {columns} ({rows * columns / 1e6:.0f} megapixels): "
            f"beyond the bound of {MAX_SIDE} pixels a side and {MAX_PIXELS / 1e6:.0f} megapixels"
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
        try:
            proc = subprocess.run(
                [tool_path, str(source), str(target)],
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise CorruptImage(f"{tool} failed on {ts.name}: {_one_line(exc)}") from exc
        if proc.returncode != 0 or not target.exists():
            message = _one_line(proc.stderr or proc.stdout or f"exit status {proc.returncode}")
            raise CorruptImage(f"{tool} could not decode the {ts.name} pixel data: {message}")
        try:
            decoded = dcmread(target)
            return pixel_array(decoded)
        except Exception as exc:
            raise CorruptImage(f"{tool} output could not be read: {_one_line(exc)}") from exc


# Geometry


def _spacing(ds: Dataset) -> tuple[tuple[float, float] | None, str | None]:
    """Pixel Spacing (calibrated at the patient) first, else Imager Pixel Spacing (detector),
    else the Nominal Scanned Pixel Spacing of a digitised film (Secondary Capture)."""
    for keyword in ("PixelSpacing", "ImagerPixelSpacing", "NominalScannedPixelSpacing"):
        value: Any = ds.get(keyword)
        if value is None:
            continue
        try:
            row, col = (float(v) for v in value)
        except (TypeError, ValueError):
            continue
        if row > 0 and col > 0 and np.isfinite(row) and np.isfinite(col):
            return (row, col), keyword
    return None, None


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

    spacing, spacing_source = _spacing(ds)
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
    )
