"""A contact sheet of phantoms with their joints boxed and labelled, to look at."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from .model import PhantomImage

_GREEN, _YELLOW, _ORANGE, _RED = (80, 220, 80), (60, 230, 250), (40, 160, 255), (60, 60, 255)


def display_grey(image: PhantomImage) -> np.ndarray:
    """8-bit grey-scale as a viewer shows it: bone bright, in the file's window where it has
    one (rescaled), else windowed on the image's histogram."""
    acq = image.acquisition
    values = image.pixels.astype(np.float32)
    if acq.window is not None:
        slope, intercept = acq.rescale or (1.0, 0.0)
        centre, width = acq.window
        grey = (values * slope + intercept - (centre - width / 2.0)) / max(width, 1.0)
        if acq.photometric == "MONOCHROME1":
            grey = 1.0 - grey
        return np.asarray(np.clip(grey * 255.0, 0, 255), dtype=np.uint8)
    if acq.photometric == "MONOCHROME1":
        values = float((1 << acq.bits_stored) - 1) - values
    sample = values[::8, ::8]
    lo, hi = np.percentile(sample, [2.0, 99.0])
    grey = np.clip((values - lo) / max(hi - lo, 1.0) * 255.0, 0, 255)
    return np.asarray(grey, dtype=np.uint8)


def _colour(jsn: int, erosion: int) -> tuple[int, int, int]:
    worst = max(jsn, erosion)
    return _GREEN if worst == 0 else _YELLOW if worst <= 2 else _ORANGE if worst <= 3 else _RED


def annotated(image: PhantomImage, width: int) -> np.ndarray:
    """One tile: the image at ``width`` pixels wide with joints boxed, "label JSN/erosion"."""
    grey = display_grey(image)
    scale = width / grey.shape[1]
    tile = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    tile = cv2.cvtColor(tile, cv2.COLOR_GRAY2BGR)
    font = max(width / 1800.0, 0.28)
    for joint in image.joints:
        x, y, w, h = (round(v * scale) for v in joint.box)
        colour = _colour(joint.jsn, joint.erosion)
        cv2.rectangle(tile, (x, y), (x + w, y + h), colour, 1, cv2.LINE_AA)
        text = f"{joint.label[2:]} {joint.jsn}/{joint.erosion}"
        cv2.putText(
            tile, text, (x, max(y - 3, 8)), cv2.FONT_HERSHEY_SIMPLEX, font, colour, 1, cv2.LINE_AA
        )
    acq = image.acquisition
    caption = (
        f"#{image.image_index} {acq.modality} {acq.photometric} {acq.bits_stored}-bit "
        f"{acq.pixel_spacing_mm:.3f} mm  severity {image.patient.severity:+.1f}  "
        f"JSN {sum(j.jsn for j in image.joints)} ERO {sum(j.erosion for j in image.joints)}"
    )
    bar = np.zeros((int(22 * max(font / 0.4, 1.0)), tile.shape[1], 3), np.uint8)
    cv2.putText(
        bar,
        caption,
        (4, bar.shape[0] - 7),
        cv2.FONT_HERSHEY_SIMPLEX,
        font * 1.05,
        (255, 255, 255),
        1,
        cv2.LINE_AA,
    )
    return np.vstack([bar, tile])


def contact_sheet(tiles: Sequence[np.ndarray], columns: int = 4) -> np.ndarray:
    """Tiles (from :func:`annotated`) in a grid, padded to the row's tallest."""
    tile_width = max(t.shape[1] for t in tiles)
    rows = []
    for start in range(0, len(tiles), columns):
        row = tiles[start : start + columns]
        height = max(t.shape[0] for t in row)
        padded = [np.pad(t, ((0, height - t.shape[0]), (0, 0), (0, 0))) for t in row]
        padded += [np.zeros((height, tile_width, 3), np.uint8)] * (columns - len(row))
        rows.append(np.hstack([np.pad(t, ((2, 2), (2, 2), (0, 0))) for t in padded]))
    sheet = np.vstack(rows)
    footer = np.zeros((26, sheet.shape[1], 3), np.uint8)
    cv2.putText(
        footer,
        "rascore synthetic hand phantoms - labels JSN/erosion - NOT FOR DIAGNOSTIC USE",
        (6, 18),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.5,
        (255, 255, 255),
        1,
        cv2.LINE_AA,
    )
    return np.vstack([sheet, footer])
