"""Scores to rows and rows to results: the one place that knows how a scorer's
:class:`~scoring.pipeline.ImageScore` is stored (:class:`~worker.db.models.ImageScoreRow`) and
how what is stored, or just scored, becomes the :class:`~dicom_io.results.ScoringResult` the
SR, SC and GSPS builders take.

A joint the model will not grade is never given a grade on the way: no JSN or erosion, and the
reason kept; the totals cover the assessable joints and say how many that is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pydicom

from dicom_io.pr import build_gsps
from dicom_io.results import JointResult, ModelInfo, ScoringResult
from dicom_io.sc import build_overlay_sc
from dicom_io.sr import build_sr
from worker.db.models import ImageScoreRow, JointScoreRow

if TYPE_CHECKING:
    from scoring.model.bundle import ModelBundle
    from scoring.pipeline import ImageScore, ScoredJoint

#: kind -> the dicom_io builder of that result object, in the order they are made and sent
BUILDERS: dict[str, Callable[..., pydicom.Dataset]] = {
    "sr": build_sr,
    "sc": build_overlay_sc,
    "gsps": build_gsps,
}


def joint_result(j: ScoredJoint) -> JointResult:
    """A scored joint as dicom_io describes it (no grades when not assessable)."""
    return JointResult(
        label=j.label,
        box=j.box,
        jsn=j.jsn if j.assessable else None,
        erosion=j.erosion if j.assessable else None,
        jsn_probs=j.jsn_probs,
        erosion_probs=j.erosion_probs,
        assessable=j.assessable,
        reason="" if j.assessable else j.reason,
    )


def scoring_result(bundle: ModelBundle, source_uid: str, score: ImageScore) -> ScoringResult:
    """A fresh score of the image ``source_uid`` as the builders take it."""
    return ScoringResult(
        source_sop_instance_uid=source_uid,
        joints=tuple(joint_result(j) for j in score.joints),
        model=ModelInfo(bundle.name, bundle.version, bundle.device_uid),
    )


def hand_totals(score: ImageScore, side: str) -> dict[str, int]:
    """A hand's totals over its assessable joints, and how many joints they cover."""
    graded = [j for j in score.joints if j.label[0] == side and j.assessable]
    return {
        "jsn": sum(j.jsn or 0 for j in graded),
        "erosion": sum(j.erosion or 0 for j in graded),
        "joints_scored": len(graded),
    }


def score_row(
    bundle: ModelBundle,
    job_id: int,
    instance_id: int,
    score: ImageScore,
    timings_ms: dict[str, Any],
) -> ImageScoreRow:
    """The row of an image's score (its joints are :func:`joint_rows`)."""
    return ImageScoreRow(
        job_id=job_id,
        instance_id=instance_id,
        model_name=bundle.name,
        model_version=bundle.version,
        model_device_uid=bundle.device_uid,
        status=score.status,
        total_jsn=score.total_jsn,
        total_erosion=score.total_erosion,
        joints_scored=score.joints_scored,
        hands={side: hand_totals(score, side) for side in score.hands},
        missing={
            "labels": list(score.missing),
            "reasons": {
                label: score.missing_reasons.get(label, "not found") for label in score.missing
            },
        },
        pixel_spacing_mm=score.spacing_mm,
        pixel_spacing_assumed=score.spacing_assumed,
        timings_ms=timings_ms,
    )


def joint_rows(image_score_id: int, score: ImageScore) -> list[JointScoreRow]:
    """One row per found joint of ``score``."""
    rows = []
    for j in score.joints:
        x, y, w, h = (int(v) for v in j.box)
        result = joint_result(j)
        rows.append(
            JointScoreRow(
                image_score_id=image_score_id,
                label=j.label,
                box_x=x,
                box_y=y,
                box_w=w,
                box_h=h,
                jsn=result.jsn,
                erosion=result.erosion,
                assessable=j.assessable,
                reason=result.reason,
                jsn_probs={"p": [float(p) for p in j.jsn_probs]},
                erosion_probs={"p": [float(p) for p in j.erosion_probs]},
                found_by=j.found_by,
            )
        )
    return rows


def stored_result(row: ImageScoreRow, source_uid: str) -> ScoringResult:
    """What was stored of a score, as the builders take it."""
    return ScoringResult(
        source_sop_instance_uid=source_uid,
        joints=tuple(
            JointResult(
                j.label,
                (j.box_x, j.box_y, j.box_w, j.box_h),
                j.jsn,
                j.erosion,
                tuple(j.jsn_probs["p"]),
                tuple(j.erosion_probs["p"]),
                assessable=j.assessable,
                reason=j.reason,
            )
            for j in row.joints
        ),
        model=ModelInfo(row.model_name, row.model_version, row.model_device_uid),
    )
