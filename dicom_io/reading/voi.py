"""The grey-scale pipeline of PS3.4 N.2: Modality LUT, VOI, and the inversion to bone bright.

The VOI is the file's first window (Window Center / Width with its VOI LUT Function), or its
first VOI LUT Sequence item, or, when the file has neither, a robust window from the histogram
of the anatomy (air and collimation left out).

Speed: in the common case (rescale plus a linear window) an image is windowed in three in-place
float32 passes; other pipelines of 8- or 16-bit data go through one lookup table of at most
65,536 entries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydicom import Dataset
from pydicom.pixels import apply_modality_lut, apply_voi

from dicom_io.reading.errors import CorruptImage, one_line

#: Percentiles of the modality-LUT output of the anatomy that bound the window when the file
#: gives none; robust to markers, dead pixels and what is left of the background.
HISTOGRAM_PERCENTILES = (0.5, 99.5)

#: Which VOI the reader prefers when a file has both a window and a VOI LUT Sequence;
#: "histogram" ignores the file's VOI altogether.
VoiPreference = Literal["window", "lut", "histogram"]

# Percentiles of 65,536 pixels spread evenly over the image (a grid of about 1 mm on a hand
# radiograph) are as good as of all of them, and much cheaper.
_HISTOGRAM_SAMPLES = 1 << 16


@dataclass(frozen=True)
class Voi:
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


def _file_window(ds: Dataset) -> Voi | None:
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
    return Voi("window", centre, width, function, explanation)


def _file_voi_lut(ds: Dataset) -> Voi | None:
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
    return Voi("voi-lut", first_mapped + entries / 2.0, float(entries), "LUT", explanation)


def choose_voi(ds: Dataset, preference: VoiPreference) -> Voi | None:
    """The file's VOI in order of preference; None means "make one from the histogram"."""
    if preference == "histogram":
        return None
    order = (_file_voi_lut, _file_window) if preference == "lut" else (_file_window, _file_voi_lut)
    for find in order:
        voi = find(ds)
        if voi is not None:
            return voi
    return None


def _window_affine(voi: Voi) -> tuple[float, float]:
    """(a, b) with output = a * x + b (before clipping) for a linear window on x."""
    c, w = voi.centre, voi.width
    if voi.function == "LINEAR_EXACT":
        return 1.0 / w, 0.5 - c / w
    # LINEAR (PS3.3 C.11.2.1.2.1): ((x - (c - 0.5)) / (w - 1) + 0.5), clipped
    span = max(w - 1.0, 1e-6)
    return 1.0 / span, 0.5 - (c - 0.5) / span


def _apply_voi_to_values(values: np.ndarray, voi: Voi, ds: Dataset) -> np.ndarray:
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


def sample_step(rows: int, columns: int) -> int:
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


def histogram_voi(modality_sample: np.ndarray, inverted: bool) -> Voi:
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
    return Voi("histogram", (lo + hi) / 2.0 + 0.5, hi - lo + 1.0, "LINEAR", explanation)


# The pipeline


def linear_rescale(ds: Dataset) -> tuple[float, float] | None:
    """(slope, intercept) of a linear Modality LUT, or None for a Modality LUT Sequence."""
    if ds.get("ModalityLUTSequence"):
        return None
    try:
        slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
        intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
    except (TypeError, ValueError) as exc:
        raise CorruptImage(f"Rescale Slope / Intercept are not numbers: {one_line(exc)}") from exc
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


def modality_values(
    stored: np.ndarray, ds: Dataset, rescale: tuple[float, float] | None
) -> np.ndarray:
    """Modality-LUT output of (a small array of) stored values, float64."""
    if rescale is not None:
        return stored.astype(np.float64) * rescale[0] + rescale[1]
    return np.asarray(apply_modality_lut(stored, ds), dtype=np.float64)


def display_image(
    stored: np.ndarray,
    ds: Dataset,
    rescale: tuple[float, float] | None,
    voi: Voi,
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
        table = _apply_voi_to_values(modality_values(values, ds, rescale), voi, ds)
        if inverted:
            table = np.float32(1.0) - table
        return table[index]

    values = modality_values(stored, ds, rescale).astype(np.float32)  # 32-bit data: rare
    out = _apply_voi_to_values(values, voi, ds)
    return np.float32(1.0) - out if inverted else out
