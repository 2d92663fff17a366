"""Phantoms laid out as an RA2-DREAM site: one JPEG per hand, ``{Patient_ID}-{LH|RH}.jpg``,
and ``training.csv`` in the challenge's exact columns with the phantom's truth.

This is what a site that took part in the challenge would bring, with labels known exactly, so
the whole path ``rascore phantom --format ra2dream`` → ``rascore site import`` → training and
validation on the site can be run and checked end to end without a real image. The JPEG is the
display picture a viewer shows (the DICOM written and read back, as tests/site_fixture.py
does); wrists and feet, which the phantom does not draw diseased, score 0 as the challenge
would have a healthy one; the thumb IP has no narrowing column; ``Overall_*`` are the sums.
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from dicom_io.reading import read_radiograph
from scoring.phantom import PhantomConfig, generate_image
from worker.lab.phantom_export import write_image
from worker.lab.site.ra2dream import COLUMNS, SCORE_COLUMNS, TOTALS

TABLE = "training.csv"
JPEG_QUALITY = 95


def patient_id(seed: int, index: int) -> str:
    """The phantom patient's RA2-DREAM ID: no hyphen, so ``{ID}-{LH|RH}`` splits one way."""
    return f"PHANTOM{seed}_{index:04d}"


def _hand_job(args: tuple[int, int, PhantomConfig, str]) -> dict[str, Any]:
    """Phantom ``index`` written as its display JPEG; its patient, hand and truth."""
    seed, index, config, out = args
    phantom = generate_image(seed, index, config)
    with tempfile.TemporaryDirectory() as tmp:
        name = write_image(seed, phantom, Path(tmp))["file"]
        grey = read_radiograph(Path(tmp) / name).pixels
    picture = np.rint(np.clip(grey, 0.0, 1.0) * 255.0).astype(np.uint8)
    code = f"{phantom.hands[0]}H"
    pid = patient_id(seed, phantom.patient.index)
    file = f"{pid}-{code}.jpg"
    if not cv2.imwrite(str(Path(out) / file), picture, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
        raise OSError(f"could not write {Path(out) / file}")
    truth = {j.label.split("_", 1)[1]: (j.jsn, j.erosion) for j in phantom.joints}
    return {"file": file, "patient": pid, "code": code, "truth": truth}


def _cells(hand: dict[str, Any]) -> dict[str, int]:
    """One hand's score cells: its joints from the truth, its wrist 0."""
    cells = {}
    for column, spec in SCORE_COLUMNS.items():
        if spec.part != hand["code"]:
            continue
        if spec.region == "wrist":
            cells[column] = 0
        else:
            jsn, erosion = hand["truth"][spec.site]
            cells[column] = erosion if spec.kind == "E" else jsn
    return cells


def table_rows(hands: list[dict[str, Any]]) -> list[dict[str, str]]:
    """One row per patient; a hand without an image has empty cells, feet are 0."""
    by_patient: dict[str, dict[str, int]] = {}
    for hand in hands:
        by_patient.setdefault(hand["patient"], {}).update(_cells(hand))
    rows = []
    for pid, cells in by_patient.items():
        for column, spec in SCORE_COLUMNS.items():
            if spec.region == "mtp":
                cells[column] = 0
        erosion = sum(v for c, v in cells.items() if SCORE_COLUMNS[c].kind == "E")
        narrowing = sum(v for c, v in cells.items() if SCORE_COLUMNS[c].kind == "J")
        totals = dict(zip(TOTALS, (erosion + narrowing, erosion, narrowing), strict=True))
        row = {"Patient_ID": pid, **{k: str(v) for k, v in totals.items()}}
        row.update({c: str(cells[c]) if c in cells else "" for c in SCORE_COLUMNS})
        rows.append(row)
    return rows


def export_ra2dream(
    out: Path,
    count: int,
    seed: int,
    config: PhantomConfig,
    jobs: int = 1,
    advance: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """Write ``count`` one-hand phantoms (right then left hand of each patient) and
    ``training.csv`` into ``out``; returns what was written."""
    from worker.lab.pool import map_in_processes

    if config.hands != 1:
        raise ValueError("RA2-DREAM has one hand per image: use hands=1")
    out.mkdir(parents=True, exist_ok=True)
    tasks = [(seed, i, config, str(out)) for i in range(count)]
    hands = map_in_processes(_hand_job, tasks, jobs, advance)
    rows = table_rows(hands)
    with open(out / TABLE, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return {
        "table": str(out / TABLE),
        "images": [hand["file"] for hand in hands],
        "patients": len(rows),
        "joints": 10 * len(hands),
        #: per image: file, patient, code (LH/RH) and truth (joint → (jsn, erosion))
        "hands": hands,
    }
