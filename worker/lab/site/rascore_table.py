"""rascore's own label table: one row per joint, image and reader (docs/site-data.md).

    image,patient,hand,joint,reader,jsn,erosion[,x,y]

``image`` names a file under the images folder (or, for DICOM, a SOP Instance UID or a file
name); ``hand`` is L or R; ``joint`` one of IP, PIP2–5, MCP1–5; an empty grade is "not
labelled"; several readers may grade the same joint, each on its own row.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scoring.joints import JOINT_NAMES
from worker.lab.site.folder import HANDS, MAX_EROSION, MAX_JSN, JointLabel
from worker.lab.site.plan import (
    DICOM_SUFFIXES,
    PICTURE_SUFFIXES,
    Plan,
    PlannedImage,
    image_files,
    parse_coordinate,
    parse_grade,
)

REQUIRED = ("image", "patient", "hand", "joint", "reader", "jsn", "erosion")
OPTIONAL = ("x", "y")


@dataclass(frozen=True)
class TableRow:
    line: int
    image: str
    patient: str  #: "" allowed only for DICOM (the header's Patient ID is used)
    hand: str  #: "" allowed only for DICOM (the header's laterality is used)
    joint: str
    reader: str
    jsn: int | None
    erosion: int | None
    x: float | None
    y: float | None


def _cell(column: str, row: dict[str, str], problems: list[str], top: int | None) -> Any:
    """A grade (``top`` given) or a coordinate; a bad one is added to ``problems``."""
    try:
        if top is None:
            return parse_coordinate(row.get(column))
        return parse_grade(row[column], top)
    except ValueError as exc:
        problems.append(f"{column}: {exc}")
        return None


def _parse(
    line: int, row: dict[str, str], default_reader: str, dicom: bool
) -> tuple[TableRow | None, list[str]]:
    problems: list[str] = []
    image = row["image"].strip()
    patient = row["patient"].strip()
    hand = row["hand"].strip().upper()
    joint = row["joint"].strip().upper()
    if not image:
        problems.append("no image")
    if not patient and not dicom:
        problems.append("no patient")
    if hand not in HANDS and (hand or not dicom):
        problems.append(f"hand {row['hand']!r} is not L or R")
    if joint not in JOINT_NAMES:
        problems.append(f"unknown joint {row['joint']!r} (one of {', '.join(JOINT_NAMES)})")
    jsn = _cell("jsn", row, problems, MAX_JSN)
    erosion = _cell("erosion", row, problems, MAX_EROSION)
    x, y = _cell("x", row, problems, None), _cell("y", row, problems, None)
    if (x is None) != (y is None):
        problems.append("x and y go together")
    if problems:
        return None, problems
    reader = row["reader"].strip() or default_reader
    return TableRow(line, image, patient, hand, joint, reader, jsn, erosion, x, y), []


def _consistency(
    row: TableRow, first: dict[str, TableRow], seen: dict[tuple[str, str, str], int]
) -> list[str]:
    """A joint graded twice by one reader, or an image given two patients or hands."""
    problems = []
    key = (row.image, row.joint, row.reader)
    if key in seen:
        problems.append(f"{row.image} {row.joint} by {row.reader} already on line {seen[key]}")
    seen.setdefault(key, row.line)
    earlier = first.setdefault(row.image, row)
    if earlier.patient != row.patient:
        problems.append(f"{row.image} has another patient on line {earlier.line}")
    if earlier.hand != row.hand:
        problems.append(f"{row.image} has hand {earlier.hand or '(none)'} on line {earlier.line}")
    return problems


def read_rows(path: Path, default_reader: str, errors: list[str], dicom: bool) -> list[TableRow]:
    """The table's rows; every bad row (and a bad header) goes to ``errors`` as
    ``file:line: what is wrong``."""
    name = path.name
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in reader.fieldnames or []]
        reader.fieldnames = header
        bad = [f"{name}:1: unknown column {c!r}" for c in header if c not in REQUIRED + OPTIONAL]
        bad += [f"{name}:1: no {c!r} column" for c in REQUIRED if c not in header]
        if bad:
            errors.extend(bad)
            return []
        rows: list[TableRow] = []
        first: dict[str, TableRow] = {}
        seen: dict[tuple[str, str, str], int] = {}
        for line, raw in enumerate(reader, start=2):
            if None in raw or any(v is None for v in raw.values()):
                errors.append(f"{name}:{line}: {len(raw)} cells do not match the header")
                continue
            if not any(v.strip() for v in raw.values()):
                continue
            row, problems = _parse(line, raw, default_reader, dicom)
            if row is not None:
                problems = _consistency(row, first, seen)
            errors.extend(f"{name}:{line}: {p}" for p in problems)
            if not problems and row is not None:
                rows.append(row)
    return rows


def label_of(row: TableRow, image_id: str, patient: str, hand: str) -> JointLabel:
    return JointLabel(
        image_id, patient, hand, row.joint, row.reader, row.jsn, row.erosion, row.x, row.y
    )


def _image_id(relative: str) -> str:
    return str(Path(relative).with_suffix("")).replace("/", "_").replace("\\", "_")


def plan_rascore(labels: Path, images: Path, default_reader: str) -> Plan:
    """The import of a rascore table and its folder of pictures (or DICOM files named by
    their file name). A row naming no file is a bad row; a file without rows is skipped."""
    plan = Plan("rascore")
    rows = read_rows(labels, default_reader, plan.errors, dicom=False)
    files = {
        p.relative_to(images).as_posix(): p
        for p in image_files(images, PICTURE_SUFFIXES + DICOM_SUFFIXES)
        if p.resolve() != labels.resolve()
    }
    ids: dict[str, str] = {}
    planned: set[str] = set()
    for row in rows:
        path = files.get(row.image.replace("\\", "/"))
        if path is None:
            plan.errors.append(f"{labels.name}:{row.line}: no image {row.image!r} in {images}")
            continue
        image_id = _image_id(row.image)
        if ids.setdefault(image_id, row.image) != row.image:
            plan.errors.append(
                f"{labels.name}:{row.line}: {row.image} and {ids[image_id]} would both be "
                f"image {image_id}"
            )
            continue
        if row.image not in planned:
            planned.add(row.image)
            dicom = path.suffix.lower() in DICOM_SUFFIXES
            plan.images.append(PlannedImage(image_id, path, row.patient, row.hand, dicom))
        plan.labels.append(label_of(row, image_id, row.patient, row.hand))
    for relative in sorted(set(files) - planned):
        plan.skip(relative, "no rows in the table")
    plan.source = {"format": "rascore", "labels": labels.name, "reader": default_reader}
    return plan
