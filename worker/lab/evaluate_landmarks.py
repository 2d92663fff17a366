"""``rascore evaluate --landmarks``: the model on real radiographs that carry only landmarks.

Each picture takes the road a scanned film takes (``worker.lab.real_images``: wrapped as CR
without pixel spacing, read by dicom_io), is scored as the node would score it, and its joints
are matched to the landmarks by ``scoring.evaluation.landmark_match``. The contact sheet shows
what the figures count: landmarks as dots, boxes green where the name is right, red where
mislabelled, orange where no landmark is near, grey where the model would not grade the joint.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from scoring.evaluation.landmark_match import HandLandmarks, ImageMatch, Prediction, match_image
from scoring.evaluation.landmarks import evaluate_landmarks
from worker.lab.real_images import LandmarkedImage, read_landmarks, read_picture, real_split

if TYPE_CHECKING:
    from scoring.pipeline import Scorer

SPLITS = ("train", "validation", "all")
LATERALITIES = ("", "L", "R")

#: contact sheet geometry: every tile is TILE_WIDTH × (CAPTION_HEIGHT + TILE_HEIGHT)
TILE_WIDTH = 320
TILE_HEIGHT = 400
CAPTION_HEIGHT = 18
SHEET_COLUMNS = 6
FOOTER_HEIGHT = 22
#: BGR
_GREEN, _RED, _ORANGE, _GREY = (80, 220, 80), (60, 60, 255), (40, 160, 255), (150, 150, 150)
_LANDMARK, _DIP = (255, 200, 0), (200, 120, 255)
_COLOURS = {"right": _GREEN, "mislabelled": _RED, "duplicate": _ORANGE, "unmatched": _ORANGE}

Bar = Callable[[str, int], Callable[[], None]]


def sheet_size(images: int) -> tuple[int, int]:
    """(height, width) in pixels of the contact sheet of ``images`` tiles."""
    columns = max(1, min(images, SHEET_COLUMNS))
    rows = max(1, math.ceil(images / columns))
    return rows * (CAPTION_HEIGHT + TILE_HEIGHT) + FOOTER_HEIGHT, columns * TILE_WIDTH


def select_images(images: list[LandmarkedImage], split: str) -> list[LandmarkedImage]:
    """The images of the fixed train/validation split, or all of them."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r} (train, validation or all)")
    return [im for im in images if split == "all" or real_split(im.image_id) == split]


def _predictions(score: Any) -> list[Prediction]:
    return [
        Prediction.from_box(j.label, j.box, j.jsn, j.erosion, j.assessable) for j in score.joints
    ]


def _tile(
    pixels: np.ndarray,
    hand: HandLandmarks,
    predictions: list[Prediction],
    boxes: list[tuple[int, int, int, int]],
    match: ImageMatch,
    caption: str,
) -> np.ndarray:
    """One image fitted into TILE_WIDTH × TILE_HEIGHT with its landmarks and boxes drawn."""
    rows, columns = pixels.shape
    scale = min(TILE_WIDTH / columns, TILE_HEIGHT / rows)
    small = cv2.resize(
        np.clip(pixels * 255.0, 0, 255).astype(np.uint8),
        (max(1, round(columns * scale)), max(1, round(rows * scale))),
        interpolation=cv2.INTER_AREA,
    )
    canvas = np.zeros((TILE_HEIGHT, TILE_WIDTH, 3), np.uint8)
    oy, ox = (TILE_HEIGHT - small.shape[0]) // 2, (TILE_WIDTH - small.shape[1]) // 2
    canvas[oy : oy + small.shape[0], ox : ox + small.shape[1]] = cv2.cvtColor(
        small, cv2.COLOR_GRAY2BGR
    )

    def at(x: float, y: float) -> tuple[int, int]:
        return round(ox + x * scale), round(oy + y * scale)

    for prediction, box, outcome in zip(predictions, boxes, match.predictions, strict=True):
        colour = _COLOURS[outcome.kind] if prediction.assessable else _GREY
        x, y, w, h = box
        cv2.rectangle(canvas, at(x, y), at(x + w, y + h), colour, 1, cv2.LINE_AA)
        corner = at(x, y)
        cv2.putText(
            canvas,
            prediction.label.split("_")[-1],
            (corner[0], max(corner[1] - 2, 7)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.28,
            colour,
            1,
            cv2.LINE_AA,
        )
    for points, colour in ((hand.joints, _LANDMARK), (hand.dips, _DIP)):
        for point in points.values():
            cv2.circle(canvas, at(*point), 2, colour, -1, cv2.LINE_AA)
    bar = np.zeros((CAPTION_HEIGHT, TILE_WIDTH, 3), np.uint8)
    cv2.putText(
        bar, caption, (3, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.36, (255, 255, 255), 1, cv2.LINE_AA
    )
    return np.vstack([bar, canvas])


def contact_sheet(tiles: list[np.ndarray]) -> np.ndarray:
    """Tiles in rows of SHEET_COLUMNS, with a legend of the colours at the foot."""
    height, width = sheet_size(len(tiles))
    sheet = np.zeros((height, width, 3), np.uint8)
    tile_h = CAPTION_HEIGHT + TILE_HEIGHT
    for k, tile in enumerate(tiles):
        r, c = divmod(k, SHEET_COLUMNS)
        sheet[r * tile_h : (r + 1) * tile_h, c * TILE_WIDTH : (c + 1) * TILE_WIDTH] = tile
    x = 4
    for text, colour in (
        ("right name", _GREEN),
        ("mislabelled", _RED),
        ("at no landmark", _ORANGE),
        ("not assessable", _GREY),
        ("landmark", _LANDMARK),
        ("DIP landmark", _DIP),
    ):
        cv2.putText(
            sheet,
            text,
            (x, height - 7),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.38,
            colour,
            1,
            cv2.LINE_AA,
        )
        x += 12 + 8 * len(text)
    return sheet


@dataclass(frozen=True)
class ScoredImage:
    """One landmarked image as the model scored it."""

    hand: HandLandmarks
    predictions: list[Prediction]
    status: str
    seconds: float  #: scoring only (detect, identify, grade), not reading the file


def load_landmarked(landmarks_csv: Path, images_dir: Path, split: str) -> list[LandmarkedImage]:
    """The landmarked images of ``split``; raises ValueError on bad input (CSV, an image id
    without a picture, an unknown or empty split) before any model is loaded."""
    images = select_images(read_landmarks(landmarks_csv, images_dir), split)
    if not images:
        raise ValueError(f"no landmarked images in the {split!r} split")
    return images


def evaluate_landmark_images(
    scorer: Scorer,
    images: list[LandmarkedImage],
    split: str = "all",
    laterality: str = "",
    hand_side: str = "",
    gallery: Path | None = None,
    bar: Bar | None = None,
) -> dict[str, Any]:
    """Score every image and return the figures as JSON-ready data (``split`` is recorded).

    ``laterality`` is what the scorer is told (a scanned film usually says nothing);
    ``hand_side`` is the patient side of the landmarked hands when known, to measure side
    agreement (default: ``laterality``). Raises ValueError on a picture it cannot read.
    """
    if laterality not in LATERALITIES or hand_side not in LATERALITIES:
        raise ValueError("laterality and hand side must be L, R or empty")
    side = hand_side or laterality
    advance = bar("landmarked images", len(images)) if bar else None
    scored: list[ScoredImage] = []
    tiles: list[np.ndarray] = []
    for image in images:
        try:
            grey = read_picture(image.path, laterality)
        except Exception as exc:  # dicom_io's typed errors and OpenCV's ValueError alike
            raise ValueError(f"{image.path}: {exc}") from None
        spacing = grey.pixel_spacing_mm[1] if grey.pixel_spacing_mm else None
        start = time.perf_counter()
        score = scorer.score(grey.pixels, spacing, laterality)
        elapsed = time.perf_counter() - start
        hand = HandLandmarks(image.image_id, image.joints(), image.dips(), side, spacing)
        predictions = _predictions(score)
        scored.append(ScoredImage(hand, predictions, score.status, elapsed))
        if gallery is not None:
            match = match_image(hand, predictions)
            found = sum(o.outcome == "found" for o in match.joints)
            caption = f"{image.image_id}  {found}/{len(match.joints)} found  {score.status}"
            boxes = [j.box for j in score.joints]
            tiles.append(_tile(grey.pixels, hand, predictions, boxes, match, caption))
        if advance:
            advance()

    evaluation = evaluate_landmarks((s.hand, s.predictions) for s in scored)
    seconds = [s.seconds for s in scored]
    figures: dict[str, Any] = {
        "images": evaluation.images,
        "split": split,
        "laterality": laterality,
        "hand_side": side,
        "model": {"name": scorer.bundle.name, "version": scorer.bundle.version},
        **evaluation.as_dict(),
        "status": dict(Counter(s.status for s in scored).most_common()),
        "seconds_per_image": round(statistics.fmean(seconds), 4),
        "seconds_per_image_median": round(statistics.median(seconds), 4),
    }
    if gallery is not None:
        gallery.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(gallery), contact_sheet(tiles)):
            raise ValueError(f"{gallery}: could not write the gallery")
        figures["gallery"] = str(gallery)
    return figures


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _ci(interval: dict[str, float | None]) -> str:
    if interval["low"] is None or interval["high"] is None:
        return ""
    return f" ({100 * interval['low']:.0f}–{100 * interval['high']:.0f})"


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def readable_table(figures: dict[str, Any]) -> str:
    """The figures as a short Markdown table, one column per joint type."""
    columns = [("all", figures["overall"]), *figures["per_type"].items()]
    rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("landmarked joints", lambda f: str(f["joints"])),
        ("found, right name (95% CI)", lambda f: _pct(f["found_rate"]) + _ci(f["found_rate_ci"])),
        ("mislabelled", lambda f: str(f["mislabelled"])),
        ("missed", lambda f: str(f["missed"])),
        (
            "error / hand scale, median / p95",
            lambda f: f"{_num(f['error_fraction']['median'])} / {_num(f['error_fraction']['p95'])}",
        ),
        (
            "graded JSN≥2 or erosion≥2 (95% CI)",
            lambda f: _pct(f["grades"]["rate_2_or_more"]) + _ci(f["grades"]["rate_2_or_more_ci"]),
        ),
        ("not assessable (of found)", lambda f: _pct(f["grades"]["abstention_rate"])),
        ("JSN grades given", lambda f: _grades(f["grades"]["jsn"])),
        ("erosion grades given", lambda f: _grades(f["grades"]["erosion"])),
    ]
    if figures["overall"]["side"] is not None:
        rows.append(("side agrees", lambda f: _pct(f["side"]["rate"]) if f["side"] else "–"))
    p = figures["predictions"]
    confusions = ", ".join(f"{k} {v}" for k, v in list(p["confusions"].items())[:6]) or "none"
    lines = [
        f"{figures['images']} images ({figures['split']}), model {figures['model']['version']}; "
        "healthy hands: every grade should be 0",
        "",
        "| figure | " + " | ".join(name for name, _ in columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    lines += [f"| {label} | " + " | ".join(f(c) for _, c in columns) + " |" for label, f in rows]
    lines += [
        "",
        f"predictions: {p['total']} ({p['right']} right, {p['mislabelled']} mislabelled, "
        f"{p['duplicate']} duplicate, {p['unmatched']} at no landmark); "
        f"confusions: {confusions}",
        f"seconds per image: {figures['seconds_per_image']:.3f}",
    ]
    return "\n".join(lines)


def _grades(counts: dict[str, int]) -> str:
    return " ".join(f"{k}:{v}" for k, v in counts.items()) or "–"


def evaluate_real_validation(
    model_dir: Path, folder: Path, bar: Bar | None = None
) -> dict[str, Any]:
    """The new model on the real validation split of ``folder`` (never seen by training),
    told no laterality, as a scanned film arrives; the hands are left hands (DHA)."""
    from scoring.pipeline import Scorer

    images = load_landmarked(folder / "landmarks.csv", folder, "validation")
    figures = evaluate_landmark_images(
        Scorer.load(model_dir), images, "validation", laterality="", hand_side="L", bar=bar
    )
    figures["folder"] = folder.name
    return figures
