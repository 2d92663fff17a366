"""The RA2-DREAM label table and image naming (DESIGN.md, "The RA2-DREAM label format").

One CSV row per patient (and reader, when a ``Reader`` column is there), one image per hand or
foot named ``{Patient_ID}-{LH|RH|LF|RF}.jpg``. The hand joints become joint labels
(``mcp_E__ip`` the thumb IP's erosion, ``pip_*__k`` PIPk, ``mcp_*__k`` MCPk); the thumb IP has
no narrowing column, so its JSN is "not labelled", never 0. Wrist and foot scores go to
extra.csv as given. ``Overall_*`` are checked against the sums of the columns: a table whose
totals disagree with its cells has a mistake somewhere, and a row with one is refused.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from scoring.joints import JOINT_NAMES
from worker.lab.site.folder import MAX_EROSION, MAX_JSN, ExtraScore, JointLabel
from worker.lab.site.plan import DICOM_SUFFIXES, PICTURE_SUFFIXES, Plan, PlannedImage, parse_grade

HAND_CODES = ("LH", "RH")
FOOT_CODES = ("LF", "RF")
WRIST_E = ("mc1", "mul", "nav", "lunate", "radius", "ulna")
WRIST_J = ("cmc3", "cmc4", "cmc5", "mna", "capnlun", "radcar")
FOOT_SITES = ("ip", "1", "2", "3", "4", "5")
#: Sharp/van der Heijde: a foot joint's erosion counts both of its bones, up to 10
MAX_FOOT_EROSION = 10
TOTALS = ("Overall_Tol", "Overall_erosion", "Overall_narrowing")
READER_COLUMN = "Reader"
NAME = re.compile(r"^(?P<patient>.+)-(?P<part>LH|RH|LF|RF)(?P<suffix>\.[A-Za-z]+)$")


@dataclass(frozen=True)
class Column:
    """What one score column of the table means."""

    part: str  #: LH, RH, LF or RF
    kind: str  #: "E" erosion, "J" narrowing
    region: str  #: "hand" (a scored joint), "wrist" or "mtp"
    site: str  #: the joint name for hands (``MCP2``), else the challenge's (``radius``, ``3``)
    top: int


def _hand_columns(code: str) -> list[tuple[str, Column]]:
    e, j = MAX_EROSION, MAX_JSN
    erosion = [(f"{code}_mcp_E__ip", Column(code, "E", "hand", "IP", e))]
    erosion += [(f"{code}_pip_E__{k}", Column(code, "E", "hand", f"PIP{k}", e)) for k in "2345"]
    erosion += [(f"{code}_mcp_E__{k}", Column(code, "E", "hand", f"MCP{k}", e)) for k in "12345"]
    erosion += [(f"{code}_wrist_E__{s}", Column(code, "E", "wrist", s, e)) for s in WRIST_E]
    narrowing = [(f"{code}_pip_J__{k}", Column(code, "J", "hand", f"PIP{k}", j)) for k in "2345"]
    narrowing += [(f"{code}_mcp_J__{k}", Column(code, "J", "hand", f"MCP{k}", j)) for k in "12345"]
    narrowing += [(f"{code}_wrist_J__{s}", Column(code, "J", "wrist", s, j)) for s in WRIST_J]
    return erosion + narrowing


def _foot_columns(code: str) -> list[tuple[str, Column]]:
    return [
        (f"{code}_mtp_E__{s}", Column(code, "E", "mtp", s, MAX_FOOT_EROSION)) for s in FOOT_SITES
    ] + [(f"{code}_mtp_J__{s}", Column(code, "J", "mtp", s, MAX_JSN)) for s in FOOT_SITES]


#: Every score column, in the challenge's order.
SCORE_COLUMNS: dict[str, Column] = dict(
    [c for code in HAND_CODES for c in _hand_columns(code)]
    + [c for code in FOOT_CODES for c in _foot_columns(code)]
)
#: The table's header, exactly: what ``rascore phantom --format ra2dream`` writes.
COLUMNS: tuple[str, ...] = ("Patient_ID", *TOTALS, *SCORE_COLUMNS)


@dataclass(frozen=True)
class Ra2DreamRow:
    line: int
    patient: str
    reader: str
    scores: dict[str, int | None]  #: score column → grade (None: empty)


def _check_header(header: list[str], name: str) -> list[str]:
    known = set(COLUMNS) | {READER_COLUMN}
    errors = [f"{name}:1: unknown column {c!r}" for c in header if c not in known]
    errors += [
        f"{name}:1: column {c!r} appears twice" for c in sorted(set(header)) if header.count(c) > 1
    ]
    if "Patient_ID" not in header:
        errors.append(f"{name}:1: no Patient_ID column")
    return errors


def _totals_errors(row: dict[str, str], scores: dict[str, int | None]) -> list[str]:
    """Overall_* against the sums of the cells (hands, wrists and feet together)."""
    sums = {
        "Overall_erosion": sum(v or 0 for c, v in scores.items() if SCORE_COLUMNS[c].kind == "E"),
        "Overall_narrowing": sum(v or 0 for c, v in scores.items() if SCORE_COLUMNS[c].kind == "J"),
    }
    sums["Overall_Tol"] = sums["Overall_erosion"] + sums["Overall_narrowing"]
    errors = []
    for total in TOTALS:
        text = (row.get(total) or "").strip()
        if not text:
            continue
        try:
            given = float(text)
        except ValueError:
            errors.append(f"{total}: {text!r} is not a number")
            continue
        if abs(given - sums[total]) > 1e-6:
            errors.append(f"{total} is {text} but its columns add up to {sums[total]}")
    return errors


def _parse_row(row: dict[str, str]) -> tuple[dict[str, int | None], list[str]]:
    scores: dict[str, int | None] = {}
    errors = []
    for column, spec in SCORE_COLUMNS.items():
        if column not in row:
            continue
        try:
            scores[column] = parse_grade(row[column], spec.top)
        except ValueError as exc:
            errors.append(f"{column}: {exc}")
    if not errors:
        errors = _totals_errors(row, scores)
    return scores, errors


def read_table(
    path: Path, default_reader: str, errors: list[str], patients: set[str]
) -> list[Ra2DreamRow]:
    """The table's good rows; every bad row (and a bad header) is added to ``errors`` as
    ``file:line: what is wrong``, and every patient named, good row or bad, to ``patients``
    (so that their images are checked too)."""
    name = path.name
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        header_errors = _check_header(header, name)
        if header_errors:
            errors.extend(header_errors)
            return []
        rows: list[Ra2DreamRow] = []
        seen: dict[tuple[str, str], int] = {}
        for line, cells in enumerate(reader, start=2):
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(header):
                errors.append(f"{name}:{line}: {len(cells)} cells, the header has {len(header)}")
                continue
            row = dict(zip(header, cells, strict=True))
            patient = row["Patient_ID"].strip()
            if patient:
                patients.add(patient)
            who = (row.get(READER_COLUMN) or "").strip() or default_reader
            problems = [] if patient else ["no Patient_ID"]
            if (patient, who) in seen:
                problems.append(
                    f"patient {patient} (reader {who}) already has line {seen[patient, who]}"
                )
            seen.setdefault((patient, who), line)
            scores, cell_problems = _parse_row(row)
            problems += cell_problems
            errors.extend(f"{name}:{line}: {p}" for p in problems)
            if not problems:
                rows.append(Ra2DreamRow(line, patient, who, scores))
    return rows


def _scan_images(folder: Path, labels: Path, plan: Plan) -> dict[tuple[str, str], Path]:
    """(Patient_ID, part) → image file; a foot or a name out of the scheme is skipped."""
    found: dict[tuple[str, str], Path] = {}
    suffixes = PICTURE_SUFFIXES + DICOM_SUFFIXES
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file() or path.resolve() == labels.resolve():
            continue
        match = NAME.match(path.name)
        if match is None or match["suffix"].lower() not in suffixes:
            plan.skip(path.name, "not named {Patient_ID}-{LH|RH}.jpg/.png/.dcm")
            continue
        key = (match["patient"], match["part"])
        if key[1] in FOOT_CODES:
            plan.skip(path.name, "a foot: rascore scores hands (its scores go to extra.csv)")
        elif key in found:
            plan.errors.append(f"{path}: a second image of {key[0]}-{key[1]} ({found[key].name})")
        else:
            found[key] = path
    return found


def _hand_labels(row: Ra2DreamRow, code: str, image_id: str) -> list[JointLabel]:
    hand = code[0]
    per_joint: dict[str, dict[str, int | None]] = {}
    for column, grade in row.scores.items():
        spec = SCORE_COLUMNS[column]
        if spec.part == code and spec.region == "hand":
            per_joint.setdefault(spec.site, {})[spec.kind] = grade
    return [
        JointLabel(
            image_id,
            row.patient,
            hand,
            joint,
            row.reader,
            per_joint.get(joint, {}).get("J"),
            per_joint.get(joint, {}).get("E"),
        )
        for joint in JOINT_NAMES
    ]


def _extra(row: Ra2DreamRow) -> list[ExtraScore]:
    return [
        ExtraScore(
            f"{row.patient}-{spec.part}",
            row.patient,
            spec.region,
            spec.site,
            spec.kind,
            row.reader,
            grade,
        )
        for column, grade in row.scores.items()
        if (spec := SCORE_COLUMNS[column]).region != "hand" and grade is not None
    ]


def plan_ra2dream(labels: Path, images: Path, default_reader: str) -> Plan:
    """The import of an RA2-DREAM table and its image folder. A hand in the table without an
    image is not imported, an image without a row neither; both are reported as skipped."""
    plan = Plan("ra2dream")
    patients: set[str] = set()
    rows = read_table(labels, default_reader, plan.errors, patients)
    files = _scan_images(images, labels, plan)
    for (patient, _part), path in sorted(files.items()):
        if patient not in patients:
            plan.skip(path.name, "no row in the table")
    for patient in sorted(patients):
        ours = [row for row in rows if row.patient == patient]
        taken = False
        for code in HAND_CODES:
            found = files.get((patient, code))
            if found is None:
                plan.skip(f"{patient}-{code}", "in the table, but no image of this hand")
                continue
            taken = True
            image_id = f"{patient}-{code}"
            dicom = found.suffix.lower() in DICOM_SUFFIXES
            plan.images.append(PlannedImage(image_id, found, patient, code[0], dicom))
            for row in ours:
                plan.labels.extend(_hand_labels(row, code, image_id))
        if taken:
            for row in ours:
                plan.extra.extend(_extra(row))
    plan.source = {"format": "ra2dream", "labels": labels.name, "reader": default_reader}
    return plan
