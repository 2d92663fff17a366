"""Training the joint cascade with OpenCV 3.4's ``opencv_traincascade``, as the paper did.

Positives are the labelled joint boxes of the working-resolution images, doubled by horizontal
flip (the paper's 1,860 → 3,720); negatives are tiles of the same radiographs that hold no
scored joint. The positives go into OpenCV's ``.vec`` format, written here directly (the format
is a tiny header and 16-bit samples), so ``opencv_createsamples`` is not needed.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..detection.cascade import WINDOW


@dataclass(frozen=True)
class CascadeRecipe:
    stages: int = 12
    min_hit_rate: float = 0.997
    max_false_alarm: float = 0.5
    negatives_per_stage_factor: float = 1.0  #: numNeg = factor × numPos
    negative_tiles_per_image: int = 60
    feature_type: str = "HAAR"
    mode: str = "BASIC"
    threads: int = 2
    #: feature values and sorted indices kept in memory; far faster than recomputing them
    value_buffer_mb: int = 3072
    index_buffer_mb: int = 2048


@dataclass(frozen=True)
class LabelledImage:
    """A working-resolution image (uint8) with the boxes (x, y, w, h) of its scored joints,
    and of look-alikes that are not scored joints (DIP joints): hard negatives."""

    pixels: np.ndarray
    boxes: Sequence[tuple[float, float, float, float]]
    look_alikes: Sequence[tuple[float, float, float, float]] = ()


def write_vec(path: Path, samples: np.ndarray) -> None:
    """OpenCV's positive-sample file: int32 count, int32 w·h, two int16 zeros, then per sample
    one zero byte and w·h int16 pixels (apps/createsamples/utility.cpp)."""
    count, h, w = samples.shape
    with open(path, "wb") as f:
        f.write(struct.pack("<iihh", count, w * h, 0, 0))
        for sample in samples:
            f.write(b"\x00")
            f.write(sample.astype("<i2").tobytes())


def positive_samples(images: Sequence[LabelledImage]) -> np.ndarray:
    """Every joint box resized to the window, plus its horizontal mirror image."""
    out = []
    for image in images:
        for x, y, w, h in image.boxes:
            side = max(w, h)
            cx, cy = x + w / 2, y + h / 2
            x0, y0 = round(cx - side / 2), round(cy - side / 2)
            s = round(side)
            if x0 < 0 or y0 < 0 or x0 + s > image.pixels.shape[1] or y0 + s > image.pixels.shape[0]:
                continue
            clip = cv2.resize(
                image.pixels[y0 : y0 + s, x0 : x0 + s],
                (WINDOW, WINDOW),
                interpolation=cv2.INTER_AREA,
            )
            out += [clip, clip[:, ::-1]]
    return np.asarray(out, dtype=np.uint8)


def negative_tiles(
    images: Sequence[LabelledImage], per_image: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Tiles (2–5 windows wide) that overlap no joint box, so nothing in them is a joint; and
    a tile around each look-alike (a DIP joint), the negatives that teach the most."""
    tiles = []
    for image in images:
        tiles += _look_alike_tiles(image)
        rows, cols = image.pixels.shape
        blocked = np.zeros((rows, cols), bool)
        for x, y, w, h in image.boxes:
            m = 0.25 * max(w, h)
            blocked[max(int(y - m), 0) : int(y + h + m), max(int(x - m), 0) : int(x + w + m)] = True
        integral = cv2.integral(blocked.astype(np.uint8))
        found = tries = 0
        while found < per_image and tries < per_image * 20:
            tries += 1
            side = int(rng.integers(2 * WINDOW, 5 * WINDOW))
            if side >= min(rows, cols):
                continue
            x0 = int(rng.integers(0, cols - side))
            y0 = int(rng.integers(0, rows - side))
            hits = (
                integral[y0 + side, x0 + side]
                - integral[y0, x0 + side]
                - integral[y0 + side, x0]
                + integral[y0, x0]
            )
            tile = image.pixels[y0 : y0 + side, x0 : x0 + side]
            if hits == 0 and tile.std() > 4:  # skip blank background: it teaches nothing
                tiles.append(tile.copy())
                found += 1
    return tiles


def _look_alike_tiles(image: LabelledImage) -> list[np.ndarray]:
    rows, cols = image.pixels.shape
    out = []
    for x, y, w, h in image.look_alikes:
        side = 1.4 * max(w, h)
        cx, cy = x + w / 2, y + h / 2
        x0, y0 = int(cx - side / 2), int(cy - side / 2)
        x1, y1 = int(cx + side / 2), int(cy + side / 2)
        if x0 < 0 or y0 < 0 or x1 > cols or y1 > rows or min(x1 - x0, y1 - y0) <= WINDOW:
            continue
        overlaps = any(
            x0 < bx + bw and bx < x1 and y0 < by + bh and by < y1 for bx, by, bw, bh in image.boxes
        )
        if not overlaps:
            out.append(image.pixels[y0:y1, x0:x1].copy())
    return out


def train_cascade(
    tool: Path,
    images: Sequence[LabelledImage],
    workdir: Path,
    recipe: CascadeRecipe = CascadeRecipe(),
    seed: int = 0,
    log: Path | None = None,
) -> Path:
    """Run ``opencv_traincascade``; returns the path of the cascade XML it wrote."""
    rng = np.random.default_rng(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    positives = positive_samples(images)
    if len(positives) < 20:
        raise ValueError(f"only {len(positives)} positive samples: too few to train a cascade")
    positives = positives[rng.permutation(len(positives))]
    write_vec(workdir / "positives.vec", positives)
    negatives_dir = _fresh(workdir / "negatives")
    names = []
    for i, tile in enumerate(negative_tiles(images, recipe.negative_tiles_per_image, rng)):
        name = negatives_dir / f"n{i:06d}.png"
        cv2.imwrite(str(name), tile)
        names.append(str(name))
    (workdir / "negatives.txt").write_text("\n".join(names) + "\n")
    # Each stage may reject (1 - min_hit_rate) of the positives it sees; keep enough in reserve.
    num_pos = int(len(positives) / (1 + (recipe.stages - 1) * (1 - recipe.min_hit_rate)) * 0.95)
    num_neg = int(num_pos * recipe.negatives_per_stage_factor)
    cascade_dir = _fresh(workdir / "cascade")
    options = {
        "-data": cascade_dir,
        "-vec": workdir / "positives.vec",
        "-bg": workdir / "negatives.txt",
        "-numPos": num_pos,
        "-numNeg": num_neg,
        "-numStages": recipe.stages,
        "-w": WINDOW,
        "-h": WINDOW,
        "-featureType": recipe.feature_type,
        "-mode": recipe.mode,
        "-minHitRate": recipe.min_hit_rate,
        "-maxFalseAlarmRate": recipe.max_false_alarm,
        "-numThreads": recipe.threads,
        "-precalcValBufSize": recipe.value_buffer_mb,
        "-precalcIdxBufSize": recipe.index_buffer_mb,
    }
    command = [str(tool), *(str(part) for pair in options.items() for part in pair)]
    with open(log or workdir / "traincascade.log", "w") as out:
        subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=True)
    xml = cascade_dir / "cascade.xml"
    if not xml.is_file():
        raise RuntimeError(
            f"opencv_traincascade wrote no cascade; see {workdir / 'traincascade.log'}"
        )
    return xml


def _fresh(directory: Path) -> Path:
    """``directory``, emptied of what an earlier run left there."""
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir()
    return directory
