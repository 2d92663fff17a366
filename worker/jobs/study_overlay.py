"""The study overlays: per hand image of an assembled study that has a previous one, a
Secondary Capture of the joints whose grades changed (:mod:`dicom_io.sc.progress`), sent
through the outbox like the study SR.

Each is drawn on the grey copy scoring kept of the image (the source is decoded only when the
copy is missing), with the joint boxes of the image's score. The objects are recorded under the
study's report (``result_objects.study_report_id``, kind ``study-sc``); their UIDs derive from
the study, the report version, the model and the source, so a repeat makes the same objects.
A study overlay that cannot be made is logged and left out: the report and its SR stand.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from pydicom import Dataset
from pydicom.uid import generate_uid
from sqlalchemy import select

from dicom_io.reading import read_dicom
from dicom_io.sc.progress import Box, build_progress_sc, joint_progress, previous_comparison
from dicom_io.study_results import StudyHand, StudyResult
from worker.db.engine import session_scope
from worker.db.models import Instance, Job, JobStatus, ResultObject
from worker.jobs.outbox import ensure_object_deliveries
from worker.node.store import Store
from worker.settings import Settings

log = logging.getLogger(__name__)

STUDY_SC_KIND = "study-sc"


@dataclass(frozen=True)
class _Image:
    """What scoring kept of one hand image: its joint boxes and the grey copy, if any."""

    boxes: dict[str, Box]
    grey_path: Path | None
    source_path: Path


def study_overlays(
    settings: Settings,
    study_id: int,
    report_id: int,
    result: StudyResult,
    headers: Mapping[str, Dataset],
) -> list[int]:
    """Make and record the study overlays of report ``report_id`` (none without a previous
    study); the ids of the deliveries due now. ``headers``: the hands' source headers by SOP
    Instance UID (no pixels needed when the grey copy is there)."""
    comparison = previous_comparison(result)
    if comparison is None:
        return []
    store = Store(settings.effective_store_dir)
    due: list[int] = []
    for source_uid, on_image in _hands_by_image(result).items():
        try:
            image = _scored_image(settings, study_id, source_uid, result.model.version)
            if image is None:
                continue
            header = headers[source_uid]
            grey = _grey(image.grey_path)
            if grey is None:  # no copy kept (scored before it was): decode the source
                header = read_dicom(image.source_path)
            joints = joint_progress(on_image, comparison, image.boxes)
            series_uid, sop_uid = _uids(result, source_uid)
            sc = build_progress_sc(
                header, result, comparison, joints, grey=grey,
                series_instance_uid=series_uid, sop_instance_uid=sop_uid,
            )  # fmt: skip
            sides = "".join(h.side for h in on_image)
            key = f"studies/{study_id // 1000:06d}/{study_id}/v{result.version}-sc-{sides}.dcm"
            store.write_dataset(key, sc)
            result_id = _record(settings, report_id, sc, key)
            due.extend(ensure_object_deliveries(settings, result_id))
        except Exception:  # the report stands without it; the log says why
            log.exception("study overlay not made", extra={"study_id": study_id})
    return due


def _hands_by_image(result: StudyResult) -> dict[str, list[StudyHand]]:
    """The hands of the study by the image chosen for them (both hands on one image: one)."""
    images: dict[str, list[StudyHand]] = {}
    for hand in result.hands:
        images.setdefault(hand.source, []).append(hand)
    return images


def _uids(result: StudyResult, source_uid: str) -> tuple[str, str]:
    study = result.study_instance_uid
    series = generate_uid(entropy_srcs=[study, "study-sc-series"])
    sop = generate_uid(
        entropy_srcs=[study, str(result.version), result.model.version, source_uid, "study-sc"]
    )
    return str(series), str(sop)


def _scored_image(
    settings: Settings, study_id: int, source_uid: str, model_version: str
) -> _Image | None:
    """The image's joint boxes and grey copy from its score by ``model_version``."""
    store = Store(settings.effective_store_dir)
    with session_scope(settings.effective_database_url) as session:
        job = session.scalars(
            select(Job)
            .join(Instance)
            .where(
                Instance.study_id == study_id,
                Instance.sop_instance_uid == source_uid,
                Job.model_version == model_version,
                Job.status == JobStatus.DONE,
            )
            .order_by(Job.id)
        ).first()
        if job is None or job.score is None:
            return None
        boxes = {j.label: (j.box_x, j.box_y, j.box_w, j.box_h) for j in job.score.joints}
        key = job.score.overlay_grey_key
        source = store.path(job.instance.store_key)
        return _Image(boxes, store.path(key) if key else None, source)


def _grey(path: Path | None) -> np.ndarray | None:
    if path is None:
        return None
    grey = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if grey is None:
        log.warning("overlay grey copy unreadable: decoding", extra={"path": str(path)})
    return grey


def _record(settings: Settings, report_id: int, sc: Dataset, key: str) -> int:
    """The overlay's result object (the one already there, for a repeat)."""
    uid = str(sc.SOPInstanceUID)
    with session_scope(settings.effective_database_url) as session:
        known = session.scalars(
            select(ResultObject.id).where(ResultObject.sop_instance_uid == uid)
        ).first()
        if known is not None:
            return known
        row = ResultObject(
            job_id=None,
            study_report_id=report_id,
            kind=STUDY_SC_KIND,
            sop_class_uid=str(sc.SOPClassUID),
            sop_instance_uid=uid,
            store_key=key,
        )
        session.add(row)
        session.flush()
        return row.id
