"""Scoring a DICOM file: dicom_io reads it, scoring scores it, and the result goes to JSON or to
the DICOM result objects. Used by ``rascore score``, ``rascore evaluate`` and the node."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom

from dicom_io.reading import GreyscaleImage, read_radiograph
from dicom_io.results import JointResult, ModelInfo, ScoringResult
from scoring.pipeline import ImageScore, Scorer


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
    bundle = scorer.bundle
    return ScoringResult(
        source_sop_instance_uid=str(scored.dataset.SOPInstanceUID),
        joints=tuple(
            JointResult(j.label, j.box, j.jsn, j.erosion, j.jsn_probs, j.erosion_probs)
            for j in scored.score.joints
        ),
        model=ModelInfo(bundle.name, bundle.version, bundle.device_uid),
    )


def as_json(scorer: Scorer, scored: ScoredFile) -> dict[str, Any]:
    """``rascore score --json`` (DESIGN.md, Contracts)."""
    score = scored.score
    out: dict[str, Any] = {
        "sop_instance_uid": str(scored.dataset.get("SOPInstanceUID", "")),
        "status": score.status,
        "model": {
            "name": scorer.bundle.name,
            "version": scorer.bundle.version,
            "device_uid": scorer.bundle.device_uid,
        },
        "joints": [
            {
                "label": j.label,
                "box": list(j.box),
                "jsn": j.jsn,
                "erosion": j.erosion,
                "jsn_probs": list(j.jsn_probs),
                "erosion_probs": list(j.erosion_probs),
                "found_by": j.found_by,
            }
            for j in score.joints
        ],
        "totals": {"jsn": score.total_jsn, "erosion": score.total_erosion},
        "hands": list(score.hands),
        "missing": list(score.missing),
        "pixel_spacing_mm": score.spacing_mm,
        "pixel_spacing_assumed": score.spacing_assumed,
        "timings_ms": scored.timings_ms,
        "note": "NOT FOR DIAGNOSTIC USE: model trained on synthetic phantoms.",
    }
    if score.status == "no hand found":
        out["status"] = "no hand found: no joint of a hand was detected in this image"
    return out
