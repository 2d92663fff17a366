"""Read a radiograph into a display-ready grey-scale array with its geometry.

The scorer must see the same picture a radiologist sees on a viewer: bone bright whatever the
photometric interpretation, windowed as the modality intended. So the reader applies the
Modality LUT, then the file's first VOI window (or, when a file has none, a robust window from
the image's own histogram), then the MONOCHROME1 / Presentation LUT inversion.
Anything it cannot turn into such a picture is rejected with :class:`UnreadableImage` and a
one-line reason that the command line and the SCP can pass on as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom import Dataset, dcmread
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, apply_voi_lut, get_decoder
from pydicom.uid import UID

__all__ = ["GreyscaleImage", "UnreadableImage", "read_radiograph"]

#: Percentiles of the modality-LUT output that bound the window when the file gives none;
#: robust to collimator edges, markers and dead pixels.
HISTOGRAM_PERCENTILES = (0.5, 99.5)

# Percentiles of a few million pixels are as good as of all of them, and much cheaper.
_HISTOGRAM_SAMPLES = 1 << 20

_LATERALITIES = ("L", "R", "B", "U")


class UnreadableImage(ValueError):
    """The object is not a single-frame grey-scale image this node can decode."""


@dataclass(frozen=True)
class GreyscaleImage:
    """A display-ready radiograph: float32 in [0, 1], bone bright, with what scoring needs."""

    pixels: np.ndarray  # (rows, columns) float32 in [0, 1]
    pixel_spacing_mm: tuple[float, float] | None  # (row spacing, column spacing)
    spacing_source: str | None  # "PixelSpacing" or "ImagerPixelSpacing"
    laterality: str  # "L", "R", "B" or "U"
    rows: int
    columns: int
    bits_stored: int
    photometric: str
    sop_instance_uid: str
    study_instance_uid: str
    window: tuple[float, float]  # (centre, width) in modality-LUT output units
    window_source: str  # "file" or "histogram"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _load(source: Path | str | Dataset) -> Dataset:
    if isinstance(source, Dataset):
        return source
    try:
        return dcmread(source)
    except InvalidDicomError as exc:
        raise UnreadableImage(f"not a DICOM file: {source} ({_one_line(exc)})") from exc


def _check_decodable(ds: Dataset) -> UID:
    """Reject what cannot become one grey-scale frame, before spending time decoding."""
    if "PixelData" not in ds:
        if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
            raise UnreadableImage("float pixel data is not supported")
        raise UnreadableImage("no Pixel Data (7FE0,0010) in the dataset")
    spp = int(ds.get("SamplesPerPixel", 1) or 1)
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    if spp != 1:
        raise UnreadableImage(
            f"colour image (SamplesPerPixel={spp}, PhotometricInterpretation={photometric}); "
            "a grey-scale radiograph is needed"
        )
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise UnreadableImage(
            f"PhotometricInterpretation {photometric or '(absent)'} is not grey-scale "
            "(MONOCHROME1 or MONOCHROME2 needed)"
        )
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise UnreadableImage(
            f"multi-frame image ({frames} frames); one frame per radiograph needed"
        )

    file_meta = getattr(ds, "file_meta", None)
    tsyntax = file_meta.get("TransferSyntaxUID") if file_meta is not None else None
    if not tsyntax:
        raise UnreadableImage("no Transfer Syntax UID (0002,0010), so the pixels cannot be decoded")
    ts = UID(tsyntax)
    try:
        decoder = get_decoder(ts)
    except NotImplementedError as exc:
        raise UnreadableImage(f"no decoder exists for transfer syntax {ts.name} ({ts})") from exc
    if not decoder.is_available:
        needs = "; ".join(decoder.missing_dependencies) or "a decoding plugin"
        raise UnreadableImage(f"no decoder installed for {ts.name} ({ts}): needs {needs}")
    return ts


def _spacing(ds: Dataset) -> tuple[tuple[float, float] | None, str | None]:
    """Pixel Spacing (calibrated at the patient) first, else Imager Pixel Spacing (detector)."""
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
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


def _first(value: Any) -> float:
    """First value of a possibly multi-valued DS (the file's preferred window)."""
    if isinstance(value, str | bytes) or not hasattr(value, "__len__"):
        return float(value)
    return float(value[0])


def _file_window(ds: Dataset) -> tuple[float, float] | None:
    if "WindowCenter" not in ds or "WindowWidth" not in ds:
        return None
    try:
        centre, width = _first(ds.WindowCenter), _first(ds.WindowWidth)
    except (TypeError, ValueError, IndexError):
        return None
    if not (np.isfinite(centre) and np.isfinite(width)) or width < 1:
        return None  # PS3.3 C.11.2.1.2: width shall be >= 1 (> 0 for LINEAR_EXACT)
    return centre, width


def _apply_window(values: np.ndarray, centre: float, width: float, function: str) -> np.ndarray:
    """PS3.3 C.11.2.1.2/3 window functions, scaled to [0, 1]."""
    if function == "SIGMOID":
        out = 1.0 / (1.0 + np.exp(-4.0 * (values - np.float32(centre)) / np.float32(width)))
    elif function == "LINEAR_EXACT":
        out = (values - np.float32(centre)) / np.float32(width) + np.float32(0.5)
    else:  # LINEAR, the default
        out = (values - np.float32(centre - 0.5)) / np.float32(max(width - 1.0, 1e-6))
        out += np.float32(0.5)
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)


def _histogram_window(values: np.ndarray) -> tuple[float, float]:
    """(centre, width) whose LINEAR window maps the low percentile to 0 and the high one to 1.

    Mapping both ends exactly makes MONOCHROME1 and MONOCHROME2 versions of one image come out
    identical after inversion.
    """
    step = max(1, int(np.sqrt(values.size / _HISTOGRAM_SAMPLES)))
    sample = values[::step, ::step]
    lo, hi = (float(v) for v in np.percentile(sample, HISTOGRAM_PERCENTILES))
    # LINEAR maps c - 0.5 - (w - 1)/2 to 0 and c - 0.5 + (w - 1)/2 to 1 (PS3.3 C.11.2.1.2.1).
    return (lo + hi) / 2.0 + 0.5, hi - lo + 1.0


def read_radiograph(source: Path | str | Dataset) -> GreyscaleImage:
    """Decode a single-frame grey-scale radiograph into a display-ready image.

    Raises UnreadableImage with a one-line reason if it cannot (OSError if a path cannot be
    opened at all).
    """
    ds = _load(source)
    ts = _check_decodable(ds)
    try:
        stored = ds.pixel_array
    except Exception as exc:  # decoders raise many types; all mean the same to the caller
        raise UnreadableImage(
            f"pixel data could not be decoded ({ts.name}): {_one_line(exc)}"
        ) from exc
    if stored.ndim != 2:
        raise UnreadableImage(f"expected one 2-D frame, decoded an array of shape {stored.shape}")

    values = np.asarray(apply_modality_lut(stored, ds), dtype=np.float32)

    window = _file_window(ds)
    function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").strip().upper()
    if window is not None:
        out = _apply_window(values, *window, function)
        source_name = "file"
    elif "VOILUTSequence" in ds and len(ds.VOILUTSequence) > 0:
        out, window = _apply_voi_lut_sequence(values, ds)
        source_name = "file"
    else:
        window = _histogram_window(values)
        out = _apply_window(values, *window, "LINEAR")
        source_name = "histogram"

    photometric = str(ds.PhotometricInterpretation).strip()
    shape = str(ds.get("PresentationLUTShape", "") or "").strip().upper()
    if photometric == "MONOCHROME1" or shape == "INVERSE":
        out = np.float32(1.0) - out

    spacing, spacing_source = _spacing(ds)
    rows, columns = (int(n) for n in out.shape)
    return GreyscaleImage(
        pixels=np.ascontiguousarray(out, dtype=np.float32),
        pixel_spacing_mm=spacing,
        spacing_source=spacing_source,
        laterality=_laterality(ds),
        rows=rows,
        columns=columns,
        bits_stored=int(ds.get("BitsStored", stored.dtype.itemsize * 8)),
        photometric=photometric,
        sop_instance_uid=str(ds.get("SOPInstanceUID", "")),
        study_instance_uid=str(ds.get("StudyInstanceUID", "")),
        window=(float(window[0]), float(window[1])),
        window_source=source_name,
    )


def _apply_voi_lut_sequence(
    values: np.ndarray, ds: Dataset
) -> tuple[np.ndarray, tuple[float, float]]:
    """First VOI LUT of the file, scaled by the LUT's own output range to [0, 1].

    The window reported is the LUT's input range, as (centre, width).
    """
    item = ds.VOILUTSequence[0]
    entries, first_mapped = int(item.LUTDescriptor[0]) or 65536, int(item.LUTDescriptor[1])
    lut_input = np.arange(first_mapped, first_mapped + entries, dtype=np.int32)
    lut_output = np.asarray(apply_voi_lut(lut_input, ds, index=0, prefer_lut=True), np.float32)
    lo, hi = float(lut_output.min()), float(lut_output.max())
    indices = np.rint(values).astype(np.int32)  # a LUT is indexed by integers
    mapped = np.asarray(apply_voi_lut(indices, ds, index=0, prefer_lut=True), np.float32)
    if hi > lo:
        out = np.clip((mapped - np.float32(lo)) / np.float32(hi - lo), 0.0, 1.0)
    else:
        out = np.zeros_like(mapped)
    return out.astype(np.float32, copy=False), (first_mapped + entries / 2.0, float(entries))
