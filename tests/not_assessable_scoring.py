"""A scored job whose scorer declined to grade some joints, through the node's own code.

The scorer is replaced by one that returns the phantom's truth as its output with some joints
not assessable (the default model's abstentions depend on its training), so the tests can
check exactly what the database, the result objects, the API and the dashboard say of them.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest

from scoring.pipeline import ImageScore, ScoredJoint
from worker.db import migrate
from worker.db.engine import session_scope
from worker.db.models import Instance, InstanceStatus, Job, JobStatus, Study
from worker.jobs import build
from worker.jobs import score as jobs
from worker.node.store import Store
from worker.settings import Settings

#: label → reason: the joints the scorer does not grade
NOT_ASSESSABLE = {"R_PIP3": "model unsure", "L_MCP2": "unlike the training images"}
#: a joint not found at all
MISSING = ("L_PIP5", "not imaged")


@dataclass(frozen=True)
class ModelIdentity:
    """What the output builders need of a model bundle: who it is and how it detects."""

    name: str = "rascore-test-model"
    version: str = "9.9.9+test"
    device_uid: str = "2.25.161803398874989484820"
    detector_kind: str = "keypoints"


class FakeScorer:
    """Gives the truth of one phantom as its scores, with :data:`NOT_ASSESSABLE` joints left
    ungraded (their class probabilities kept, as the real scorer keeps them)."""

    def __init__(self, truth: dict[str, Any]) -> None:
        self.bundle = ModelIdentity()
        self.truth = truth

    def score(self, grey: np.ndarray, spacing_mm: float | None, laterality: str) -> ImageScore:
        joints = []
        for j in self.truth["joints"]:
            if j["label"] == MISSING[0]:
                continue
            joint = ScoredJoint(
                label=j["label"],
                joint_type=j["label"].split("_")[1].rstrip("12345"),
                box=tuple(j["box"]),  # type: ignore[arg-type]
                jsn=j["jsn"],
                erosion=j["erosion"],
                jsn_probs=tuple(0.9 if k == j["jsn"] else 0.025 for k in range(5)),
                erosion_probs=tuple(0.9 if k == j["erosion"] else 0.02 for k in range(6)),
                confidence=0.9,
                found_by="keypoints",
            )
            reason = NOT_ASSESSABLE.get(j["label"])
            if reason:
                joint = dataclasses.replace(
                    joint, jsn=None, erosion=None, assessable=False, reason=reason
                )
            joints.append(joint)
        return ImageScore(
            status="partial",
            joints=tuple(joints),
            hands=("R", "L"),
            missing=(MISSING[0],),
            unplaced=(),
            spacing_mm=spacing_mm or 0.15,
            spacing_assumed=spacing_mm is None,
            timings_ms={"detect": 1.0, "score": 1.0},
            missing_reasons={MISSING[0]: MISSING[1]},
        )


@dataclass(frozen=True)
class ScoredJob:
    settings: Settings
    instance_id: int
    job_id: int
    scorer: FakeScorer


def score_with_not_assessable(
    phantom_file: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> ScoredJob:
    """A fresh node database and store holding the phantom, scored and built by the node's
    task functions with the :class:`FakeScorer`."""
    settings = Settings(home=home)
    url = settings.effective_database_url
    migrate.upgrade(url)
    truth = json.loads((phantom_file.parent / "truth.json").read_text())["images"][0]
    scorer = FakeScorer(truth)
    monkeypatch.setattr(jobs, "_scorer", lambda _model_dir: scorer)
    store = Store(settings.effective_store_dir)
    ds = pydicom.dcmread(phantom_file)
    key = Store.new_image_key()
    store.write_dataset(key, ds)
    with session_scope(url) as session:
        study = Study(
            study_instance_uid=str(ds.StudyInstanceUID),
            patient_id=str(ds.PatientID),
            study_date=None,
        )
        instance = Instance(
            study=study,
            sop_instance_uid=str(ds.SOPInstanceUID),
            sop_class_uid=str(ds.SOPClassUID),
            sha256="0" * 64,
            transfer_syntax=str(ds.file_meta.TransferSyntaxUID),
            size=1,
            store_key=key,
            status=InstanceStatus.QUEUED,
        )
        job = Job(
            instance=instance,
            model_name=scorer.bundle.name,
            model_version=scorer.bundle.version,
            status=JobStatus.QUEUED,
        )
        session.add(job)
        session.flush()
        instance_id, job_id = instance.id, job.id
    outcome = jobs.score_job(settings, job_id, worker="test:1")
    assert outcome.status == "done", outcome
    build.build_results(settings, job_id)
    return ScoredJob(settings, instance_id, job_id, scorer)
