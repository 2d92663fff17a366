"""``rascore site import``: a site's labelled radiographs into a site data folder
(worker.lab.site.folder), all or nothing.

Every row and every image is checked first and every problem is collected (``file:line: what
is wrong``), so a site fixes its table in one round; if there is any, nothing is written. The
folder is then built in a hidden sibling and renamed into place, so a half-written folder never
stands where training or validation would read it. Pictures are copied byte for byte; DICOM
files are copied with the patient's identity replaced by the pseudonym. Logs at INFO carry
counts, never a patient's name or ID.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from dicom_io.reading import UnreadableImage, read_radiograph
from scoring.joints import JOINT_NAMES
from worker.lab.site.dicom_source import plan_dicom, write_deidentified
from worker.lab.site.folder import IMAGES, SiteImage, sha256_file, write_manifest, write_tables
from worker.lab.site.plan import Plan, PlannedImage, Skipped
from worker.lab.site.ra2dream import plan_ra2dream
from worker.lab.site.rascore_table import plan_rascore

log = logging.getLogger(__name__)
FORMATS = ("ra2dream", "rascore")


class SiteImportError(ValueError):
    """The import found bad rows or images (all of them are in ``errors``); nothing written."""

    def __init__(self, errors: list[str], skipped: list[Skipped]):
        super().__init__(f"{len(errors)} problem(s); nothing imported")
        self.errors = errors
        self.skipped = skipped


@dataclass(frozen=True)
class ImportSummary:
    out: str
    format: str
    images: int
    patients: int
    readers: list[str]
    labelled: dict[str, int]  #: joints labelled per kind ("jsn", "erosion")
    not_labelled: dict[str, int]  #: joints with an empty cell per kind
    per_joint: dict[str, dict[str, int]]  #: joint name → labelled per kind
    extra_scores: int
    skipped: list[dict[str, str]] = field(default_factory=list)
    digest: str = ""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def check_destination(out: Path) -> None:
    """The destination must not exist, or be an empty folder (an import never merges)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out} exists and is not an empty folder")


def _check_picture(path: Path) -> str | None:
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        return f"{path}: cannot be read ({exc.strerror})"
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None or image.size == 0:
        return f"{path}: not a readable JPEG or PNG image"
    return None


def check_images(plan: Plan, advance: Callable[[], None]) -> dict[str, tuple[float, float] | None]:
    """Decode every planned image (an unreadable one is a bad row in ``plan.errors``); the
    pixel spacing of each DICOM image, when its header has one."""
    spacing: dict[str, tuple[float, float] | None] = {}
    for image in plan.images:
        spacing[image.image_id] = None
        if image.dicom:
            try:
                spacing[image.image_id] = read_radiograph(image.source).pixel_spacing_mm
            except (OSError, UnreadableImage) as exc:
                plan.errors.append(f"{image.source}: {exc}")
        else:
            problem = _check_picture(image.source)
            if problem:
                plan.errors.append(problem)
        advance()
    return spacing


def _copy(image: PlannedImage, root: Path) -> str:
    suffix = ".dcm" if image.dicom else image.source.suffix.lower()
    name = f"{IMAGES}/{image.image_id}{suffix}"
    if image.dicom:
        try:
            write_deidentified(image.source, root / name, image.patient)
        except (OSError, UnreadableImage) as exc:
            raise SiteImportError([f"{image.source}: cannot be copied: {exc}"], []) from exc
        except Exception as exc:  # pydicom refuses to write a data set in many ways
            problem = f"{image.source}: cannot be rewritten: {type(exc).__name__}: {exc}"
            raise SiteImportError([problem], []) from exc
    else:
        shutil.copyfile(image.source, root / name)
    return name


def write_site(plan: Plan, spacing: dict[str, tuple[float, float] | None], out: Path) -> str:
    """Write the folder in a hidden sibling and rename it into place; returns its digest."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.importing-", dir=out.parent))
    try:
        (tmp / IMAGES).mkdir()
        images = []
        for image in plan.images:
            name = _copy(image, tmp)
            images.append(
                SiteImage(
                    image.image_id,
                    name,
                    sha256_file(tmp / name),
                    image.patient,
                    image.hand,
                    spacing.get(image.image_id),
                )
            )
        order = {joint: i for i, joint in enumerate(JOINT_NAMES)}
        labels = sorted(plan.labels, key=lambda x: (x.image_id, order[x.joint], x.reader))
        extra = sorted(plan.extra, key=lambda x: (x.image_id, x.region, x.kind, x.site, x.reader))
        write_tables(tmp, labels, extra)
        digest = write_manifest(tmp, images, plan.source)
        check_destination(out)
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return digest


def summarise(plan: Plan, out: Path, digest: str) -> ImportSummary:
    labelled = {"jsn": 0, "erosion": 0}
    missing = {"jsn": 0, "erosion": 0}
    per_joint = {joint: {"jsn": 0, "erosion": 0} for joint in JOINT_NAMES}
    for label in plan.labels:
        for kind, grade in (("jsn", label.jsn), ("erosion", label.erosion)):
            if grade is None:
                missing[kind] += 1
            else:
                labelled[kind] += 1
                per_joint[label.joint][kind] += 1
    return ImportSummary(
        out=str(out),
        format=plan.format,
        images=len(plan.images),
        patients=len({image.patient for image in plan.images}),
        readers=sorted({label.reader for label in plan.labels}),
        labelled=labelled,
        not_labelled=missing,
        per_joint=per_joint,
        extra_scores=len(plan.extra),
        skipped=[asdict(s) for s in plan.skipped],
        digest=digest,
    )


def make_plan(fmt: str, labels: Path, images: Path, reader: str, key: bytes | None = None) -> Plan:
    """The plan of one import; ``fmt`` "dicom" needs the pseudonym ``key``."""
    if fmt == "ra2dream":
        return plan_ra2dream(labels, images, reader)
    if fmt == "rascore":
        return plan_rascore(labels, images, reader)
    if fmt == "dicom" and key is not None:
        return plan_dicom(images, labels, key, reader)
    raise ValueError(f"unknown format {fmt!r}")


def import_site(
    fmt: str,
    labels: Path,
    images: Path,
    out: Path,
    reader: str = "reader1",
    key: bytes | None = None,
    advance: Callable[[], None] = lambda: None,
) -> ImportSummary:
    """Import ``labels`` and ``images`` in format ``fmt`` into the new site folder ``out``.
    Raises :class:`SiteImportError` with every problem when there is any (nothing written),
    ValueError when ``out`` is not new or empty."""
    check_destination(out)
    plan = make_plan(fmt, labels, images, reader, key)
    if not plan.images and not plan.errors:
        plan.errors.append(f"{labels.name}: nothing to import (no labelled image)")
    spacing = check_images(plan, advance)
    if plan.errors:
        log.info("site import refused: %d problem(s)", len(plan.errors))
        raise SiteImportError(plan.errors, plan.skipped)
    digest = write_site(plan, spacing, out)
    summary = summarise(plan, out, digest)
    log.info(
        "site import: %d images, %d patients, %d readers, %d skipped, digest %s",
        summary.images,
        summary.patients,
        len(summary.readers),
        len(summary.skipped),
        digest[:12],
    )
    return summary
