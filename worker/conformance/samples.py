"""The objects the node creates, built at generation time from a tiny in-memory radiograph.

The document lists what these objects actually hold, so fixed UIDs, dates and a fixed model
make every build the same: nothing in the document depends on the clock or on random UIDs.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cache
from typing import Literal

import numpy as np
from pydicom.dataset import Dataset

from dicom_io.pr.gsps import build_gsps
from dicom_io.radiograph import RadiographSpec, StudyIdentity, build_radiograph
from dicom_io.results import EROSION_GRADES, JSN_GRADES, JointResult, ModelInfo, ScoringResult
from dicom_io.sc.build import build_overlay_sc
from dicom_io.sc.progress import build_progress_sc, joint_progress, previous_comparison
from dicom_io.sr.build import build_sr
from dicom_io.sr.study import build_study_sr
from dicom_io.study_results import Comparison, JointChange, ObjectRef, StudyResult, hand_labels
from worker.jobs.study_content import ScoredImage, hands

ROOT = "2.25.1616"
MODEL = ModelInfo("rascore-svdh", "1.0.0", f"{ROOT}.99")
SIDE: Literal["R"] = "R"
ROWS, COLUMNS = 256, 192
SR_CLASS = "1.2.840.10008.5.1.4.1.1.88.34"


@dataclass(frozen=True)
class Samples:
    """One of each created object, and the radiograph they derive from."""

    source: Dataset
    sr: Dataset
    sc: Dataset
    gsps: Dataset
    study_sr: Dataset
    study_sc: Dataset


def _source() -> Dataset:
    identity = StudyIdentity(
        patient_name="Doe^Jane", patient_id="P16", patient_birth_date="19600131",
        patient_sex="F", study_instance_uid=f"{ROOT}.1", study_id="1",
        accession_number="A16", study_date="20240102", study_time="093000",
        study_description="Hands PA",
    )  # fmt: skip
    yy, xx = np.mgrid[:ROWS, :COLUMNS]
    pixels = (400 + 2000 * ((yy - ROWS / 2) ** 2 + (xx - COLUMNS / 2) ** 2 < 3000)).astype(
        np.uint16
    )
    spec = RadiographSpec(
        pixels=pixels, bits_stored=12, photometric="MONOCHROME2", modality="CR",
        pixel_spacing_mm=0.15, laterality=SIDE, sop_instance_uid=f"{ROOT}.2",
        series_instance_uid=f"{ROOT}.3", series_number=1, instance_number=1,
        series_description="Hand PA", content_date="20240102", content_time="093512",
        software_version="1",
    )  # fmt: skip
    return build_radiograph(spec, identity)


def _one_hot(grade: int, grades: int) -> tuple[float, ...]:
    return tuple(1.0 if g == grade else 0.0 for g in range(grades))


def _result(source: Dataset) -> ScoringResult:
    """Two joints: one graded, one the model would not grade (both kinds of group)."""
    graded = JointResult(
        f"{SIDE}_MCP2", (40, 60, 20, 20), 1, 0, _one_hot(1, JSN_GRADES), _one_hot(0, EROSION_GRADES)
    )
    ungraded = JointResult(
        f"{SIDE}_PIP3", (80, 30, 20, 20), None, None, (), (), assessable=False,
        reason="model unsure",
    )  # fmt: skip
    return ScoringResult(str(source.SOPInstanceUID), (graded, ungraded), MODEL)


def _study_result(source: Dataset) -> StudyResult:
    ref = ObjectRef(str(source.SOPClassUID), str(source.SOPInstanceUID),
                    str(source.SeriesInstanceUID), str(source.StudyInstanceUID))  # fmt: skip
    grades = {label: (1, 0, "") for label in hand_labels(SIDE)}
    image = ScoredImage(ref, dt.datetime(2024, 1, 2, 9, 40, tzinfo=dt.UTC), grades)
    prior = ObjectRef(SR_CLASS, f"{ROOT}.0.9", f"{ROOT}.0.8", f"{ROOT}.0")
    change = Comparison(
        "previous", f"{ROOT}.0", dt.date(2023, 1, 2), prior, 365 / 365.25,
        (JointChange(f"{SIDE}_MCP2", 1, 0),), (),
    )  # fmt: skip
    first = Comparison("first", *list(change.__dict__.values())[1:])
    return StudyResult(
        study_instance_uid=str(source.StudyInstanceUID), study_date=dt.date(2024, 1, 2),
        version=1, model=MODEL, images=(ref,), hands=hands([image]),
        comparisons=(change, first), replaces=None, left_out_images=0,
    )  # fmt: skip


@cache
def samples() -> Samples:
    """Build each object once per process (a second or so)."""
    source = _source()
    result = _result(source)
    sr = build_sr(source, result, series_instance_uid=f"{ROOT}.4", sop_instance_uid=f"{ROOT}.5")
    sc = build_overlay_sc(
        source, result, series_instance_uid=f"{ROOT}.6", sop_instance_uid=f"{ROOT}.7"
    )
    gsps = build_gsps(
        source, result, series_instance_uid=f"{ROOT}.8", sop_instance_uid=f"{ROOT}.9",
        window=(1400.0, 2800.0, "HAND"),
    )  # fmt: skip
    study = _study_result(source)
    study_sr = build_study_sr(
        [source], study, series_instance_uid=f"{ROOT}.10", sop_instance_uid=f"{ROOT}.11"
    )
    comparison = previous_comparison(study)
    assert comparison is not None
    boxes = {j.label: j.box for j in result.joints}
    study_sc = build_progress_sc(
        source, study, comparison, joint_progress(study.hands, comparison, boxes),
        series_instance_uid=f"{ROOT}.12", sop_instance_uid=f"{ROOT}.13",
    )  # fmt: skip
    return Samples(source, sr, sc, gsps, study_sr, study_sc)
