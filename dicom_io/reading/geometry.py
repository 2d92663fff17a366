"""Where the image sits in the world: its pixel spacing and its laterality.

A spacing outside what a hand radiograph can have is passed over by the reader as if absent,
and refused on arrival when it would make the image metres wide (a spacing bomb).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydicom import Dataset

from dicom_io.reading.errors import ImplausibleSpacing

#: Pixel spacing a hand radiograph can have, mm: detectors have 0.05-0.2, scanned films up to
#: about 1. A value outside is a mistake or an attack (4 mm on 4,000² pixels is a hand 16 m
#: wide) and is ignored as if absent, the reason kept in ``GreyscaleImage.spacing_note``.
PLAUSIBLE_SPACING_MM = (0.02, 2.0)
_LATERALITIES = ("L", "R", "B", "U")

_SPACING_NAMES = {
    "PixelSpacing": "Pixel Spacing",
    "ImagerPixelSpacing": "Imager Pixel Spacing",
    "NominalScannedPixelSpacing": "Nominal Scanned Pixel Spacing",
}


def pixel_spacing(ds: Dataset) -> tuple[tuple[float, float] | None, str | None, str]:
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


def laterality(ds: Dataset) -> str:
    image = str(ds.get("ImageLaterality", "") or "").strip().upper()
    if image in ("L", "R", "B"):
        return image
    series = str(ds.get("Laterality", "") or "").strip().upper()
    if series in ("L", "R"):
        return series
    return image if image in _LATERALITIES else "U"


def check_spacing_bound(ds: Dataset, rows: int, columns: int) -> None:
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
