"""An overlay Secondary Capture as PNG: the dashboard shows it, the demo writes it beside the
DICOM file."""

from __future__ import annotations

from pathlib import Path

import cv2
import pydicom


def overlay_png(sc_path: Path) -> bytes:
    """The RGB pixels of the SC at ``sc_path``, encoded as PNG."""
    pixels = pydicom.dcmread(sc_path).pixel_array
    ok, png = cv2.imencode(".png", cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"{sc_path}: the overlay cannot be encoded as PNG")
    return png.tobytes()
