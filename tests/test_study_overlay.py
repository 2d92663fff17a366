"""The study overlay SC (the joints that changed since the previous study, prior and current
grades side by side) made by the real assembly path from a phantom patient's two visits; and
a retrieved prior's per-image results kept home unless RASCORE_PRIORS_SEND_RESULTS."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pydicom
import pytest
from spooled import spooled
from sqlalchemy import select

from dicom_io.reading import read_dicom, read_radiograph
from dicom_io.sc import overlay_grey
from dicom_io.sc.progress import (
    BETTER_COLOUR,
    MIXED_COLOUR,
    WORSE_COLOUR,
    joint_progress,
    previous_comparison,
    progress_layout,
    render_progress,
)
from dicom_io.study_results import hand_labels
from scoring.phantom import PhantomConfig
from worker.db import migrate
from worker.db.engine import session_scope
from worker.db.models import (
    AuditEvent,
    Delivery,
    ImageScoreRow,
    Instance,
    InstanceStatus,
    Job,
    JobStatus,
    JointScoreRow,
    ResultObject,
    Study,
    StudyReport,
)
from worker.jobs.build import build_results
from worker.jobs.outbox import ensure_deliveries
from worker.jobs.priors import PRIOR_RETRIEVE
from worker.jobs.study import assemble_due
from worker.jobs.study_content import study_result
from worker.jobs.study_overlay import STUDY_SC_KIND
from worker.lab.phantom_export import visit_folder, write_visit_image
from worker.model_ref import ModelRef
from worker.models_home import active_model_version
from worker.node.receiving import Receiver
from worker.node.store import Store
from worker.settings import Settings

SEED = 15
Grades = dict[str, tuple[int, int] | None]
#: visit 2 against visit 1 (every joint 1, 1 then): worse, better, mixed; R_IP not assessable
CHANGES: Grades = {"L_MCP2": (2, 2), "R_PIP3": (0, 1), "L_PIP4": (2, 0), "R_IP": None}
DIRECTIONS = {"L_MCP2": WORSE_COLOUR, "R_PIP3": BETTER_COLOUR, "L_PIP4": MIXED_COLOUR}


@pytest.fixture(scope="module")
def visits(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, dict[str, Any]]]:
    """One phantom patient (both hands on one image) at two visits, two years apart."""
    out = tmp_path_factory.mktemp("visits")
    records = [
        write_visit_image((SEED, 0, n, 2, 2.0, PhantomConfig(hands=2), str(out))) for n in (1, 2)
    ]
    return [(out / visit_folder(n) / r["file"], r) for n, r in zip((1, 2), records, strict=True)]


class Node:
    """A node's receiver, store and database, with scores stored as the scoring worker stores
    them (the joints' boxes and the grey copy of the overlay included)."""

    def __init__(self, tmp_path: Path, **settings: Any) -> None:
        url = f"sqlite:///{tmp_path / 'rascore.db'}"
        migrate.upgrade(url)
        self.settings = Settings(
            home=tmp_path / "home", database_url=url, destinations="PACS@127.0.0.1:1", **settings
        )
        self.url = url
        self.store = Store(self.settings.effective_store_dir)
        version = active_model_version(self.settings)
        model = ModelRef(tmp_path, "rascore-svdh-phantom", version)
        self.receiver = Receiver(url, self.store, model, ["HAND"], lambda _job: True)
        self.spool = tmp_path / "spool"

    def receive(self, path: Path) -> int:
        assert self.receiver(spooled(self.spool, pydicom.dcmread(path))) == 0
        uid = str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
        with session_scope(self.url) as session:
            return session.scalars(
                select(Instance.id).where(Instance.sop_instance_uid == uid)
            ).one()

    def score(self, instance_id: int, record: Mapping[str, Any], grades: Grades) -> int:
        """The job done with ``grades`` at the phantom's joint boxes; its id."""
        with session_scope(self.url) as session:
            instance = session.get_one(Instance, instance_id)
            job = session.scalars(select(Job).where(Job.instance_id == instance_id)).one()
            grey = overlay_grey(
                read_radiograph(read_dicom(self.store.path(instance.store_key))).pixels
            )
            grey_key = Store.overlay_grey_key(job.id)
            self.store.write_bytes(grey_key, cv2.imencode(".png", grey)[1].tobytes())
            graded = [v for v in grades.values() if v is not None]
            row = ImageScoreRow(
                job_id=job.id, instance_id=instance_id, model_name=job.model_name,
                model_version=job.model_version, model_device_uid="2.25.15", status="scored",
                total_jsn=sum(v[0] for v in graded), total_erosion=sum(v[1] for v in graded),
                joints_scored=len(graded), hands={}, missing={"labels": [], "reasons": {}},
                timings_ms={}, overlay_grey_key=grey_key,
            )  # fmt: skip
            session.add(row)
            session.flush()
            for joint in record["joints"]:
                value = grades[joint["label"]]
                x, y, w, h = joint["box"]
                session.add(
                    JointScoreRow(
                        image_score_id=row.id, label=joint["label"], box_x=x, box_y=y, box_w=w,
                        box_h=h, jsn=value[0] if value else None,
                        erosion=value[1] if value else None, assessable=value is not None,
                        reason="" if value else "model unsure",
                        jsn_probs={"p": [0.2] * 5}, erosion_probs={"p": [0.2] * 6},
                    )
                )  # fmt: skip
            job.status, job.finished_at = JobStatus.DONE, job.created_at
            instance.status = InstanceStatus.SCORED
            return job.id

    def report(self, study_uid: str) -> StudyReport:
        with session_scope(self.url) as session:
            return session.scalars(
                select(StudyReport)
                .join(Study)
                .where(Study.study_instance_uid == study_uid)
                .order_by(StudyReport.version.desc())
            ).first()  # type: ignore[return-value]

    def grey(self, sop_instance_uid: str) -> np.ndarray:
        """The grey copy scoring kept of an image."""
        with session_scope(self.url) as session:
            key = session.scalars(
                select(ImageScoreRow.overlay_grey_key)
                .join(Instance)
                .where(Instance.sop_instance_uid == sop_instance_uid)
            ).one()
        assert key is not None
        grey = cv2.imread(str(self.store.path(key)), cv2.IMREAD_GRAYSCALE)
        assert grey is not None
        return np.asarray(grey)

    def study_scs(self, report_id: int) -> list[ResultObject]:
        with session_scope(self.url) as session:
            return list(
                session.scalars(
                    select(ResultObject).where(
                        ResultObject.study_report_id == report_id,
                        ResultObject.kind == STUDY_SC_KIND,
                    )
                )
            )


def _later() -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=61)


def _first_visit() -> Grades:
    return {label: (1, 1) for side in ("R", "L") for label in hand_labels(side)}


def _two_visits(node: Node, visits: list[tuple[Path, dict[str, Any]]], strip: bool = False):  # type: ignore[no-untyped-def]
    """Both visits received, scored and assembled; the second's report and the deliveries
    due. ``strip``: the second source's pixels removed from the store before the assembly."""
    (path1, record1), (path2, record2) = visits
    node.score(node.receive(path1), record1, _first_visit())
    assert assemble_due(node.settings, _later()) == 1
    first = node.report(record1["study_instance_uid"])
    assert node.study_scs(first.id) == []  # no prior: no study overlay
    instance = node.receive(path2)
    node.score(instance, record2, _first_visit() | CHANGES)
    if strip:  # the build must draw on the kept grey copy and never decode the source
        with session_scope(node.url) as session:
            stored = node.store.path(session.get_one(Instance, instance).store_key)
        header = pydicom.dcmread(stored)
        del header.PixelData
        header.save_as(stored)
    sent: list[int] = []
    assert assemble_due(node.settings, _later(), sent.extend) == 1
    return node.report(record2["study_instance_uid"]), sent


def test_study_overlay_shows_the_changed_joints(  # type: ignore[no-untyped-def]
    tmp_path: Path, visits, assert_dciodvfy_clean
) -> None:
    node = Node(tmp_path)
    report, sent = _two_visits(node, visits)
    [sc_row] = node.study_scs(report.id)  # both hands on one image: one overlay
    with session_scope(node.url) as session:
        kinds = {session.get_one(Delivery, d).result.kind for d in sent}
    assert kinds == {"study", STUDY_SC_KIND}
    path = node.store.path(sc_row.store_key)
    assert_dciodvfy_clean(path)
    sc = pydicom.dcmread(path)
    source = read_dicom(visits[1][0], pixels=False)
    assert sc.StudyInstanceUID == source.StudyInstanceUID
    assert sc.SeriesInstanceUID != source.SeriesInstanceUID
    assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert sc.ReferencedImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert sc.BurnedInAnnotation == "YES"

    result = study_result(report.content)
    comparison = previous_comparison(result)
    assert comparison is not None
    boxes = {j["label"]: tuple(j["box"]) for j in visits[1][1]["joints"]}
    joints = joint_progress(result.hands, comparison, boxes)
    grey = node.grey(str(source.SOPInstanceUID))
    layout = progress_layout(source, result, comparison, joints, grey)
    pixels = sc.pixel_array
    assert np.array_equal(pixels, render_progress(source, result, comparison, joints, grey))
    cv2.imwrite(str(tmp_path / "study_sc.png"), cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))
    assert set(layout.labels) == set(DIRECTIONS)  # unchanged and not compared: no label
    for label, colour in DIRECTIONS.items():
        x0, y0, x1, y1 = layout.labels[label]
        bx0, by0, bx1, by1 = layout.boxes[label]
        gap = max(bx0 - x1, x0 - bx1, by0 - y1, y0 - by1, 0)
        assert gap < 0.05 * min(pixels.shape[:2]), label  # the label sits by its joint
        text = pixels[y0:y1, x0:x1].astype(int)
        near = np.abs(text - np.array(colour)).max(axis=2) < 40
        assert near.sum() > 20, label  # its grades drawn in the direction's colour
        bx = pixels[by0:by1, bx0:bx1].astype(int)
        assert (np.abs(bx - np.array(colour)).max(axis=2) < 40).sum() > 20, label


def test_study_overlay_drawn_on_the_grey_copy_without_decoding(  # type: ignore[no-untyped-def]
    tmp_path: Path, visits, assert_dciodvfy_clean
) -> None:
    node = Node(tmp_path)
    report, _ = _two_visits(node, visits, strip=True)
    [sc_row] = node.study_scs(report.id)
    assert_dciodvfy_clean(node.store.path(sc_row.store_key))


def test_a_retrieved_priors_results_stay_home_unless_asked(  # type: ignore[no-untyped-def]
    tmp_path: Path, visits
) -> None:
    node = Node(tmp_path)
    (old, record), (new, _) = visits
    prior_job = node.score(node.receive(old), record, _first_visit())
    with session_scope(node.url) as session:  # what worker.jobs.priors records of a move
        session.add(
            AuditEvent(
                event=PRIOR_RETRIEVE,
                actor="priors",
                detail={
                    "study_instance_uid": "1.2.3.4",
                    "prior_study_instance_uid": record["study_instance_uid"],
                    "outcome": "ok",
                    "completed": 1,
                },
            )
        )
    build_results(node.settings, prior_job)
    with session_scope(node.url) as session:
        results = session.scalars(select(ResultObject).where(ResultObject.job_id == prior_job))
        assert sorted(r.kind for r in results) == ["gsps", "sc", "sr"]
        assert session.scalars(select(Delivery)).all() == []
    sending = node.settings.model_copy(update={"priors_send_results": True})
    assert len(ensure_deliveries(sending, prior_job)) == 3

    current_job = node.score(node.receive(new), visits[1][1], _first_visit())
    build_results(node.settings, current_job)  # not a prior: its results go
    with session_scope(node.url) as session:
        assert len(session.scalars(select(Delivery)).all()) == 6
