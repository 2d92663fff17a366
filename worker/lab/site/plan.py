"""What an import means to write, before anything is written: the images with where they come
from, the joint labels, the extra scores, and every problem found on the way.

Each input format (``ra2dream``, ``rascore_table``, ``dicom_source``) turns its files into a
:class:`Plan`; the importer checks the images and writes the folder only when the plan has no
errors, so a bad row anywhere means nothing is imported and every bad row is reported at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worker.lab.site.folder import ExtraScore, JointLabel

#: Picture files an import takes as they are; DICOM files are rewritten without the patient's
#: identity (worker.lab.site.dicom_source).
PICTURE_SUFFIXES = (".jpg", ".jpeg", ".png")
DICOM_SUFFIXES = (".dcm",)


@dataclass(frozen=True)
class PlannedImage:
    image_id: str
    source: Path
    patient: str  #: the folder's pseudonym, never a DICOM Patient ID
    hand: str  #: "L" or "R"
    dicom: bool = False  #: rewritten without the patient's identity, not copied


@dataclass(frozen=True)
class Skipped:
    """A file or table entry left out on purpose (not an error): a foot, a hand without an
    image, an image without labels."""

    file: str
    why: str


@dataclass
class Plan:
    format: str
    images: list[PlannedImage] = field(default_factory=list)
    labels: list[JointLabel] = field(default_factory=list)
    extra: list[ExtraScore] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  #: ``file:line: what is wrong``
    skipped: list[Skipped] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)  #: for the manifest

    def skip(self, file: str, why: str) -> None:
        self.skipped.append(Skipped(file, why))


def parse_grade(text: str | None, top: int) -> int | None:
    """A cell's grade: empty is "not labelled" (None); otherwise a whole number 0..``top``
    ("2.0", as spreadsheets write it, is 2). Raises ValueError saying what is wrong."""
    text = (text or "").strip()
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number") from None
    if not math.isfinite(value) or value != int(value):
        raise ValueError(f"{text!r} is not a whole number")
    grade = int(value)
    if not 0 <= grade <= top:
        raise ValueError(f"{grade} is outside 0–{top}")
    return grade


def parse_coordinate(text: str | None) -> float | None:
    text = (text or "").strip()
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{text!r} is not a pixel position")
    return value


def image_files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """The files under ``folder`` with one of ``suffixes`` (any case), hidden ones left out."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix.lower() in suffixes
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
