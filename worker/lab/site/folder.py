"""A site data folder: a department's own labelled hand radiographs in one canonical layout.

Whatever a site brings (an RA2-DREAM table and JPEGs, DICOM files and a reader's scores, or
rascore's own table), ``rascore site import`` turns it into this, and training and validation
read only this::

    SITE/
      manifest.json   what is here, with a SHA-256 of every file and one digest of it all
      labels.csv      one row per joint, image and reader (LABEL_COLUMNS)
      extra.csv       scores of other areas (wrist, feet), kept for later (EXTRA_COLUMNS)
      images/         the pictures or DICOM files, as given

A joint a format does not score (RA2-DREAM has no JSN for the thumb IP) is written with an empty
cell and read as ``None``: "not labelled", never 0. Patients are the site's pseudonyms: a split
by patient needs them, and nothing here needs who they are.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from scoring.joints import JOINT_NAMES

FORMAT = "rascore-site/1"
MANIFEST = "manifest.json"
LABELS = "labels.csv"
EXTRA = "extra.csv"
IMAGES = "images"
LABEL_COLUMNS = ("image_id", "patient", "hand", "joint", "reader", "jsn", "erosion", "x", "y")
EXTRA_COLUMNS = ("image_id", "patient", "region", "site", "kind", "reader", "score")
HANDS = ("L", "R")
MAX_JSN = 4
MAX_EROSION = 5


class SiteFolderError(ValueError):
    """A site folder that is not one, or whose files do not match its manifest."""


@dataclass(frozen=True)
class SiteImage:
    image_id: str  #: unique in the folder, e.g. ``UAB001-LH``
    file: str  #: relative to the folder, e.g. ``images/UAB001-LH.jpg``
    sha256: str
    patient: str  #: the site's pseudonym
    hand: str  #: "L" or "R"
    pixel_spacing_mm: tuple[float, float] | None = None  #: (row, column), when known


@dataclass(frozen=True)
class JointLabel:
    image_id: str
    patient: str
    hand: str
    joint: str  #: one of :data:`scoring.joints.JOINT_NAMES`
    reader: str
    jsn: int | None  #: 0–4, None: not labelled
    erosion: int | None  #: 0–5, None: not labelled
    x: float | None = None  #: joint centre in pixels, when the site gives it
    y: float | None = None

    @property
    def label(self) -> str:
        """The scorer's label, e.g. ``L_MCP2``."""
        return f"{self.hand}_{self.joint}"


@dataclass(frozen=True)
class ExtraScore:
    """A score of an area rascore does not grade (wrist, foot), kept as given."""

    image_id: str
    patient: str
    region: str  #: e.g. ``wrist``, ``mtp``
    site: str  #: e.g. ``radius``, ``3``
    kind: str  #: "J" (narrowing) or "E" (erosion)
    reader: str
    score: int


@dataclass(frozen=True)
class SiteFolder:
    root: Path
    images: tuple[SiteImage, ...]
    labels: tuple[JointLabel, ...]
    extra: tuple[ExtraScore, ...]
    digest: str  #: SHA-256 over every file's hash: what a model card records
    source: dict[str, Any] = field(default_factory=dict)  #: the import's format and inputs

    def path(self, image: SiteImage) -> Path:
        return self.root / image.file

    def readers(self) -> list[str]:
        return sorted({label.reader for label in self.labels})

    def patients(self) -> list[str]:
        return sorted({image.patient for image in self.images})


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def folder_digest(files: dict[str, str]) -> str:
    """One digest of a folder's files (relative path → SHA-256), independent of their order."""
    lines = "".join(f"{name}\t{files[name]}\n" for name in sorted(files))
    return hashlib.sha256(lines.encode()).hexdigest()


def _cell(value: object) -> str:
    return "" if value is None else str(value)


def write_tables(root: Path, labels: Iterable[JointLabel], extra: Iterable[ExtraScore]) -> None:
    with open(root / LABELS, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(LABEL_COLUMNS)
        for label in labels:
            writer.writerow([_cell(v) for v in asdict(label).values()])
    with open(root / EXTRA, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(EXTRA_COLUMNS)
        for score in extra:
            writer.writerow([_cell(v) for v in asdict(score).values()])


def write_manifest(root: Path, images: Sequence[SiteImage], source: dict[str, Any]) -> str:
    """Write ``manifest.json`` for the images and tables already in ``root``; returns the
    folder's digest. Call it last: the manifest is what makes the folder a site folder."""
    files = {image.file: image.sha256 for image in images}
    files[LABELS] = sha256_file(root / LABELS)
    files[EXTRA] = sha256_file(root / EXTRA)
    digest = folder_digest(files)
    manifest = {
        "format": FORMAT,
        "digest": digest,
        "source": source,
        "tables": {LABELS: files[LABELS], EXTRA: files[EXTRA]},
        "images": [asdict(image) for image in images],
    }
    (root / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return digest


def _optional_int(text: str, top: int, what: str) -> int | None:
    if text.strip() == "":
        return None
    value = int(text)
    if not 0 <= value <= top:
        raise ValueError(f"{what} {value} outside 0–{top}")
    return value


def _optional_float(text: str) -> float | None:
    return None if text.strip() == "" else float(text)


def _read_labels(path: Path) -> tuple[JointLabel, ...]:
    labels = []
    with open(path, newline="") as f:
        for line, row in enumerate(csv.DictReader(f), start=2):
            try:
                if row["hand"] not in HANDS or row["joint"] not in JOINT_NAMES:
                    raise ValueError(f"no joint {row['hand']}_{row['joint']}")
                labels.append(
                    JointLabel(
                        image_id=row["image_id"],
                        patient=row["patient"],
                        hand=row["hand"],
                        joint=row["joint"],
                        reader=row["reader"],
                        jsn=_optional_int(row["jsn"], MAX_JSN, "JSN"),
                        erosion=_optional_int(row["erosion"], MAX_EROSION, "erosion"),
                        x=_optional_float(row["x"]),
                        y=_optional_float(row["y"]),
                    )
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise SiteFolderError(f"{path.name}:{line}: {exc}") from exc
    return tuple(labels)


def _read_extra(path: Path) -> tuple[ExtraScore, ...]:
    with open(path, newline="") as f:
        try:
            return tuple(
                ExtraScore(**{**row, "score": int(row["score"])})  # type: ignore[arg-type]
                for row in csv.DictReader(f)
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SiteFolderError(f"{path.name}: {exc}") from exc


def open_site(root: Path, verify: bool = True) -> SiteFolder:
    """The site folder at ``root``; with ``verify``, every file is checked against the manifest
    (a changed image or table raises :class:`SiteFolderError`, so a model card's digest always
    names exactly the data it was trained or validated on)."""
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise SiteFolderError(f"{root}: no readable {MANIFEST} ({exc})") from exc
    if manifest.get("format") != FORMAT:
        raise SiteFolderError(f"{root}: not a {FORMAT} folder")
    images = tuple(
        SiteImage(
            **{
                **entry,
                "pixel_spacing_mm": tuple(entry["pixel_spacing_mm"])
                if entry.get("pixel_spacing_mm")
                else None,
            }
        )
        for entry in manifest["images"]
    )
    files = {image.file: image.sha256 for image in images} | dict(manifest["tables"])
    if verify:
        for name, expected in files.items():
            if not (root / name).is_file() or sha256_file(root / name) != expected:
                raise SiteFolderError(f"{root / name}: missing or changed since the import")
    if folder_digest(files) != manifest["digest"]:
        raise SiteFolderError(f"{root}: manifest digest does not match its files")
    return SiteFolder(
        root=root,
        images=images,
        labels=_read_labels(root / LABELS),
        extra=_read_extra(root / EXTRA),
        digest=manifest["digest"],
        source=manifest.get("source", {}),
    )
