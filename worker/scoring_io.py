"""Scoring a DICOM file: dicom_io reads it, scoring scores it, and the result goes to JSON or to
the DICOM result objects (:func:`write_results`). Used by ``rascore score``, ``rascore
evaluate`` and the node; the row and result mapping itself is :mod:`worker.jobs.mapping`.

A joint the model will not grade goes everywhere as not assessable with its reason, never as a
grade: null JSN and erosion in the JSON, "Not assessable" in the SR, "n/a" on the overlay; the
totals cover the assessable joints and always say how many that is.
"""

from __future__ import annotations

import functools
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom

from dicom_io.encoding import write_file
from dicom_io.reading import GreyscaleImage, read_radiograph
from dicom_io.results import ScoringResult, SourceHeaderError
from dicom_io.source_header import sop_instance_uid
from scoring.pipeline import ImageScore, ScoredJoint, Scorer
from worker.jobs import mapping


@dataclass(frozen=True)
class ScoredFile:
    dataset: pydicom.Dataset
    image: GreyscaleImage
    score: ImageScore
    timings_ms: dict[str, float]


def score_dataset(scorer: Scorer, dataset: pydicom.Dataset) -> ScoredFile:
    start = time.perf_counter()
    image = read_radiograph(dataset)
    read_ms = (time.perf_counter() - start) * 1e3
    spacing = image.pixel_spacing_mm[1] if image.pixel_spacing_mm else None
    score = scorer.score(image.pixels, spacing, image.laterality)
    timings = {"read": round(read_ms, 2), **score.timings_ms}
    timings["total"] = round(sum(timings.values()), 2)
    return ScoredFile(dataset, image, score, timings)


def score_file(scorer: Scorer, path: Path) -> ScoredFile:
    start = time.perf_counter()
    dataset = pydicom.dcmread(path)
    parse_ms = (time.perf_counter() - start) * 1e3
    scored = score_dataset(scorer, dataset)
    timings = {"parse": round(parse_ms, 2), **scored.timings_ms}
    timings["total"] = round(timings["total"] + parse_ms, 2)
    return ScoredFile(scored.dataset, scored.image, scored.score, timings)


def scoring_result(scorer: Scorer, scored: ScoredFile) -> ScoringResult:
    """The plain structure dicom_io builds the SR, the overlay SC and the GSPS from."""
    # the file meta's when the data set has none; SourceHeaderError when neither has one
    source_uid = sop_instance_uid(scored.dataset)
    return mapping.scoring_result(scorer.bundle, source_uid, scored.score)


def write_results(scorer: Scorer, scored: ScoredFile, out: Path) -> list[Path]:
    """Write ``{kind}_{source SOP UID hash}.dcm`` for SR, SC and GSPS; returns their paths.

    Names never come straight from a UID in the file (a hostile UID could hold anything).
    """
    result = scoring_result(scorer, scored)
    source = scored.dataset
    key = hashlib.sha256(str(source.SOPInstanceUID).encode()).hexdigest()[:16]
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    inputs = builder_inputs(scored.image)
    for kind, make in mapping.BUILDERS.items():
        build = functools.partial(make, **inputs.get(kind, {}))  # decoded once, when scored
        path = out / f"{kind}_{key}.dcm"
        write_file(build(source, result), path)
        paths.append(path)
    return paths


def builder_inputs(image: GreyscaleImage) -> dict[str, dict[str, Any]]:
    """What the SC and GSPS builders take from the image as scoring read it, so that they do
    not decode the source again: the grey image, and the window it was read with."""
    window = (float(image.window[0]), float(image.window[1]), image.window_explanation)
    return {"sc": {"grey": image.pixels}, "gsps": {"window": window}}


def _sop_instance_uid_or_empty(dataset: pydicom.Dataset) -> str:
    try:
        return sop_instance_uid(dataset)
    except SourceHeaderError:
        return ""


def status_text(score: ImageScore) -> str:
    """The scorer's status, explained where a bare phrase would not say enough."""
    if score.status == "no hand found":
        return "no hand found: no joint of a hand was detected in this image"
    if score.status == "too few assessable joints":
        return (
            f"too few assessable joints: the model graded {score.joints_scored} of the "
            f"{score.joints_expected} expected joints (the others were not found or not "
            f"assessable), so the totals cover too little of the hand to stand for it"
        )
    return score.status


def note(scorer: Scorer, score: ImageScore) -> str:
    """What a reader of the scores must know: the model, not for diagnosis, what the totals
    leave out."""
    bundle = scorer.bundle
    text = (
        f"NOT FOR DIAGNOSTIC USE: scores by {bundle.name} {bundle.version}, a research model "
        f"not validated on patients (see its model card)."
    )
    left_out = len(score.joints) - score.joints_scored
    if left_out:
        text += (
            f" {left_out} joint{'s' if left_out != 1 else ''} not assessable "
            f"{'are' if left_out != 1 else 'is'} reported with the reason and left out of "
            f"the totals."
        )
    return text


def joint_json(j: ScoredJoint) -> dict[str, Any]:
    """One joint of ``rascore score --json``: null grades and a reason when not assessable."""
    return {
        "label": j.label,
        "box": list(j.box),
        "jsn": j.jsn if j.assessable else None,
        "erosion": j.erosion if j.assessable else None,
        "assessable": j.assessable,
        "reason": None if j.assessable else j.reason,
        "jsn_probs": list(j.jsn_probs),
        "erosion_probs": list(j.erosion_probs),
        "found_by": j.found_by,
    }


def as_json(scorer: Scorer, scored: ScoredFile) -> dict[str, Any]:
    """``rascore score --json`` (DESIGN.md, Contracts)."""
    score = scored.score
    out: dict[str, Any] = {
        "sop_instance_uid": _sop_instance_uid_or_empty(scored.dataset),
        "status": status_text(score),
        "model": {
            "name": scorer.bundle.name,
            "version": scorer.bundle.version,
            "device_uid": scorer.bundle.device_uid,
        },
        "joints": [joint_json(j) for j in score.joints],
        # over the assessable joints only: joints_scored says how many that is
        "totals": {
            "jsn": score.total_jsn,
            "erosion": score.total_erosion,
            "joints_scored": score.joints_scored,
            "joints_expected": score.joints_expected,
        },
        "hands": list(score.hands),
        "missing": list(score.missing),
        "missing_reasons": {
            label: score.missing_reasons.get(label, "not found") for label in score.missing
        },
        "pixel_spacing_mm": score.spacing_mm,
        "pixel_spacing_assumed": score.spacing_assumed,
        "pixel_spacing_source": (
            "file"
            if not score.spacing_assumed
            else "estimated from the hand"
            if scorer.bundle.detector_kind == "keypoints" and score.joints
            else "assumed"
        ),
        "detector": scorer.bundle.detector_kind,
        "timings_ms": scored.timings_ms,
        "note": note(scorer, score),
    }
    return out
