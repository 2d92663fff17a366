"""``rascore validate --site DIR``: the model on a site's own labelled radiographs, against
each of its readers, and reader against reader where a joint was read twice.

Each image takes the road it would take at the node: a JPEG/PNG as a scanned film
(:func:`worker.lab.real_images.read_picture`), a DICOM file through :mod:`dicom_io.reading`;
the site's hand is told to the scorer as the laterality (one hand per image, and the labels are
named by it). Predicted joints
are matched to the site's labels by name (``L_MCP2``): a site's labels may carry no position.

A joint the model did not grade (not assessable, or not found) is left out of every agreement
figure and counted in ``abstention``; a joint a reader did not label (an empty cell) is left
out for that reader, never read as 0. The figures are the site's evidence, for the site: this
module says nothing about whether they are good enough.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import combinations
from typing import TYPE_CHECKING, Any

from dicom_io.reading import GreyscaleImage, UnreadableImage, read_radiograph
from scoring.evaluation.agreement import Paired, compare, grade_counts
from scoring.joints import joint_type
from worker.lab.real_images import IMAGE_SUFFIXES, read_picture
from worker.lab.site.folder import MAX_EROSION, MAX_JSN, SiteFolder, SiteImage

if TYPE_CHECKING:
    from scoring.pipeline import Scorer

MODEL = "model"
KINDS = {"jsn": MAX_JSN + 1, "erosion": MAX_EROSION + 1}
NOTICE = (
    "These figures are for the site's own validation of the model. The model is not for "
    "diagnostic use; a model trained on phantoms is not validated on patients."
)
FORMAT = "rascore-site-validation/1"

Key = tuple[int, str]  #: (image index, label)
Pair = tuple[int | None, int | None]  #: (JSN, erosion), either None where not given
Grades = dict[Key, Pair]


@dataclass
class ModelReads:
    """What the model said of the site's images, in the shape of a reader's grades."""

    grades: Grades = field(default_factory=dict)
    #: (image index, label) → why the model gave no grade ("model unsure", "not found", ...)
    ungraded: dict[tuple[int, str], str] = field(default_factory=dict)
    status: Counter[str] = field(default_factory=Counter)
    seconds: list[float] = field(default_factory=list)


def read_image(site: SiteFolder, image: SiteImage) -> GreyscaleImage:
    """The image as the node would read it: a picture as a scanned film, else as DICOM."""
    path = site.path(image)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return read_picture(path, image.hand)
    return read_radiograph(path)


def _spacing(image: SiteImage, grey: GreyscaleImage) -> float | None:
    if grey.pixel_spacing_mm:
        return grey.pixel_spacing_mm[1]
    return image.pixel_spacing_mm[1] if image.pixel_spacing_mm else None


def score_site(
    scorer: Scorer, site: SiteFolder, advance: Callable[[], None] | None = None
) -> ModelReads:
    """Score every image of the site once; an unreadable image is counted, not fatal."""
    reads = ModelReads()
    for index, image in enumerate(site.images):
        start = time.perf_counter()
        try:
            grey = read_image(site, image)
        except (UnreadableImage, OSError, ValueError):
            reads.status["unreadable"] += 1
            for label in _labelled_joints(site, index):
                reads.ungraded[(index, label)] = "image unreadable"
            if advance:
                advance()
            continue
        # the site's hand, not the file's laterality: the labels are named by the site's
        score = scorer.score(grey.pixels, _spacing(image, grey), image.hand)
        reads.seconds.append(time.perf_counter() - start)
        reads.status[score.status] += 1
        for joint in score.joints:
            key = (index, joint.label)
            if joint.assessable and joint.jsn is not None and joint.erosion is not None:
                reads.grades[key] = (joint.jsn, joint.erosion)
            else:
                reads.ungraded[key] = joint.reason or "not assessable"
        for label in _labelled_joints(site, index):
            if (index, label) not in reads.grades and (index, label) not in reads.ungraded:
                reads.ungraded[(index, label)] = score.missing_reasons.get(label, "not found")
        if advance:
            advance()
    return reads


def _labelled_joints(site: SiteFolder, index: int) -> list[str]:
    image_id = site.images[index].image_id
    return sorted({label.label for label in site.labels if label.image_id == image_id})


def reader_grades(site: SiteFolder) -> dict[str, Grades]:
    """Each reader's grades; a row of an image not in the manifest is ignored."""
    index = {image.image_id: i for i, image in enumerate(site.images)}
    out: dict[str, Grades] = {}
    for label in site.labels:
        if label.image_id in index:
            out.setdefault(label.reader, {})[(index[label.image_id], label.label)] = (
                label.jsn,
                label.erosion,
            )
    return out


def paired(reference: Mapping[Key, Pair], compared: Mapping[Key, Pair], kind: str) -> Paired:
    """The joints both sides graded for ``kind``, in a fixed order."""
    k = 0 if kind == "jsn" else 1
    rows = []
    for key in sorted(reference.keys() & compared.keys()):
        ref, comp = reference[key][k], compared[key][k]
        if ref is not None and comp is not None:
            rows.append((key[0], joint_type(key[1].split("_", 1)[1]), ref, comp))
    return Paired.of(rows, KINDS[kind])


def abstention(site: SiteFolder, readers: dict[str, Grades], reads: ModelReads) -> dict[str, Any]:
    """Of the joints some reader labelled, how many the model graded and why not the others."""
    labelled = {
        key
        for grades in readers.values()
        for key, (jsn, erosion) in grades.items()
        if jsn is not None or erosion is not None
    }
    reasons = Counter(reads.ungraded[key] for key in labelled if key not in reads.grades)
    per_type: dict[str, list[int]] = {}
    for key in labelled:
        counts = per_type.setdefault(joint_type(key[1].split("_", 1)[1]), [0, 0])
        counts[1] += 1
        counts[0] += key not in reads.grades
    left_out = sum(reasons.values())
    return {
        "labelled_joints": len(labelled),
        "graded": len(labelled) - left_out,
        "left_out": left_out,
        "rate": left_out / len(labelled) if labelled else float("nan"),
        "reasons": dict(sorted(reasons.items())),
        "per_type": {
            t: {"left_out": c[0], "labelled": c[1], "rate": c[0] / c[1]}
            for t, c in sorted(per_type.items())
        },
    }


def distributions(raters: dict[str, Grades]) -> dict[str, dict[str, list[int]]]:
    """Each rater's grades over the joints every rater graded (the paper's Fig. 3E, 3G): on
    a common set of joints the bars differ only where the raters do."""
    out: dict[str, dict[str, list[int]]] = {}
    for kind, classes in KINDS.items():
        k = 0 if kind == "jsn" else 1
        common = set.intersection(
            *({key for key, g in grades.items() if g[k] is not None} for grades in raters.values())
        )
        out[kind] = {
            name: grade_counts([grades[key][k] for key in common], classes)  # type: ignore[misc]
            for name, grades in raters.items()
        }
    return out


def comparisons(
    readers: dict[str, Grades], model: Grades, draws: int, seed: int
) -> list[dict[str, Any]]:
    """The model against each reader, then each pair of readers."""
    pairs = [(reader, MODEL) for reader in readers]
    pairs += list(combinations(readers, 2))
    everyone = {**readers, MODEL: model}
    out = []
    for reference, compared in pairs:
        block: dict[str, Any] = {"reference": reference, "compared": compared}
        for kind in KINDS:
            block[kind] = compare(
                paired(everyone[reference], everyone[compared], kind), draws, seed
            )
        out.append(block)
    return out


def json_ready(value: Any) -> Any:
    """NaN (a figure with too few joints) as null: strict JSON, and "–" in the report."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    return value


LEFT_OUT_WHY = "the model was trained or tuned on them (its card's split)"


def held_out(site: SiteFolder, card: Mapping[str, Any]) -> tuple[SiteFolder, list[str]]:
    """The site without the patients the model learnt from, and those patients.

    A model made by ``rascore train --site`` names its training and validation patients in its
    card; validating it on them would report how well it remembers them. Its test patients,
    and every patient of a site it never saw, stay."""
    split = card.get("split") or {}
    seen = set(split.get("train", [])) | set(split.get("validation", []))
    left_out = [patient for patient in site.patients() if patient in seen]
    if not left_out:
        return site, []
    kept = dataclasses.replace(
        site,
        images=tuple(i for i in site.images if i.patient not in seen),
        labels=tuple(label for label in site.labels if label.patient not in seen),
        extra=tuple(e for e in site.extra if e.patient not in seen),
    )
    if not kept.images:
        raise ValueError(
            f"the model was trained or tuned on all {len(left_out)} patients of this site: "
            "validate it on patients it has not seen"
        )
    return kept, left_out


def validate_site(
    scorer: Scorer,
    site: SiteFolder,
    draws: int = 1000,
    seed: int = 0,
    advance: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Every figure of ``rascore validate --json``: header, abstention, comparisons."""
    site, left_out = held_out(site, scorer.bundle.card)
    readers = reader_grades(site)
    if not readers:
        raise ValueError("the site folder has no labels")
    if MODEL in readers:
        raise ValueError(f"a reader is named {MODEL!r}; rename it in labels.csv")
    reads = score_site(scorer, site, advance)
    figures = {
        "format": FORMAT,
        "notice": NOTICE,
        "model": {"name": scorer.bundle.name, "version": scorer.bundle.version},
        "site": {
            "digest": site.digest,
            "images": len(site.images),
            "patients": len(site.patients()),
            "readers": {
                name: sum(1 for g in grades.values() if g != (None, None))
                for name, grades in readers.items()
            },
            "image_status": dict(sorted(reads.status.items())),
            "left_out_patients": len(left_out),
            "left_out_why": LEFT_OUT_WHY if left_out else "",
        },
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "bootstrap": {"draws": draws, "seed": seed, "over": "images"},
        "seconds_per_image": sum(reads.seconds) / len(reads.seconds) if reads.seconds else None,
        "abstention": abstention(site, readers, reads),
        "distributions": distributions({MODEL: reads.grades, **readers}),
        "comparisons": comparisons(readers, reads.grades, draws, seed),
    }
    ready: dict[str, Any] = json_ready(figures)
    return ready
