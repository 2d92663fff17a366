"""Study assembly: both hands of a study in one report and one study SR after the quiet time,
a late image making version 2, a later study of the same patient carrying the progression;
the choice between images of one hand; the study SR read back; migration 0006."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import pydicom
import pytest
from radiographs import disc_on_ramp, hand_spec, study
from servers import RedisServer
from spooled import spooled
from sqlalchemy import select, text

from dicom_io.radiograph import build_radiograph
from dicom_io.results import ModelInfo
from dicom_io.sr.study import build_study_sr
from dicom_io.sr.study_read import read_study_sr
from dicom_io.study_results import (
    Comparison,
    JointChange,
    ObjectRef,
    StudyResult,
    hand_labels,
)
from worker.db import migrate
from worker.db.engine import make_engine, session_scope
from worker.db.models import (
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
from worker.jobs.study import assemble_due, assemble_study, due_studies
from worker.jobs.study_content import ScoredImage, choose, hands, study_result
from worker.model_ref import ModelRef
from worker.models_home import active_model_version
from worker.node.receiving import Receiver
from worker.node.store import Store
from worker.node.sweeper import sweep
from worker.settings import Settings

ROOT = "1.2.826.0.1.3680043.10.1339.15"
T0 = dt.datetime(2026, 1, 1, 9, 0, tzinfo=dt.UTC)
Grades = dict[str, tuple[int, int] | None]
SIDE_NUMBER = {"L": 1, "R": 2}


# -- the choice between images of one hand (pure) --------------------------------------------


def _image(uid: str, minutes: int, grades: Mapping[str, tuple[int, int] | None]) -> ScoredImage:
    ref = ObjectRef("1.2.840.10008.5.1.4.1.1.1", uid, "1.9", "1.8")
    joints = {k: (v[0], v[1], "") if v else (None, None, "model unsure") for k, v in grades.items()}
    return ScoredImage(ref, T0 + dt.timedelta(minutes=minutes), joints)


def _left(n_assessable: int, grade: int = 1) -> Grades:
    return {label: (grade, 0) if k < n_assessable else None
            for k, label in enumerate(hand_labels("L"))}  # fmt: skip


def test_the_image_with_most_assessable_joints_stands_for_the_hand() -> None:
    a, b = _image("1.5", 0, _left(9)), _image("1.4", 5, _left(8))
    chosen, others, why = choose("L", [b, a])
    assert (chosen, others) == (a, [b])
    assert why == "2 images of the left hand: 1.5 chosen (most assessable joints (9 of 10))"


def test_equal_joints_the_latest_then_the_first_uid() -> None:
    early, late = _image("1.1", 0, _left(10)), _image("1.2", 3, _left(10))
    assert choose("L", [early, late])[0] == late
    assert "received last" in choose("L", [early, late])[2]
    same = _image("1.0", 3, _left(10, grade=2))
    chosen, others, why = choose("L", [late, same])
    assert (chosen, others) == (same, [late]) and "first SOP Instance UID" in why
    assert choose("L", [early]) == (early, [], "")


def test_hands_and_totals_over_assessable_joints() -> None:
    right = {label: (2, 1) for label in hand_labels("R")[:7]}  # three joints not found
    result = hands([_image("1.1", 0, _left(8, grade=3)), _image("1.2", 0, right)])
    left, right_hand = result
    assert (left.jsn, left.erosion, left.joints_scored, left.not_assessable) == (24, 0, 8, 2)
    assert (right_hand.jsn, right_hand.erosion, right_hand.joints_scored) == (14, 7, 7)
    assert [j.reason for j in right_hand.joints[7:]] == ["not found"] * 3
    assert [j.reason for j in left.joints[8:]] == ["model unsure"] * 2
    assert right_hand.source == "1.2" and right_hand.others == () and right_hand.choice == ""


# -- the study SR, built and read back -------------------------------------------------------


def _header(uid_root: str, laterality: str, patient: str = "P15", date: str = "20240102"):  # type: ignore[no-untyped-def]
    identity = study(uid_root, "Doe^Jane", patient, "A15")
    identity = type(identity)(**{**identity.__dict__, "study_date": date})
    spec = hand_spec(
        uid_root,
        disc_on_ramp(64, 48, 4000),
        laterality=laterality,
        sop_instance_uid=f"{uid_root}.2.{SIDE_NUMBER[laterality]}",
        series_instance_uid=f"{uid_root}.3.{SIDE_NUMBER[laterality]}",
    )
    return build_radiograph(spec, identity)


def test_study_sr_is_clean_and_reads_back(tmp_path: Path, assert_dciodvfy_clean) -> None:  # type: ignore[no-untyped-def]
    left, right = _header(f"{ROOT}.1", "L"), _header(f"{ROOT}.1", "R")
    images = [ScoredImage(ObjectRef(str(h.SOPClassUID), str(h.SOPInstanceUID),
                                    str(h.SeriesInstanceUID), str(h.StudyInstanceUID)),
                          T0, g) for h, g in (
        (left, {k: (1, 2, "") for k in hand_labels("L")}),
        (right, {**{k: (0, 1, "") for k in hand_labels("R")[:9]},
                 "R_MCP5": (None, None, "model unsure")}),
    )]  # fmt: skip
    prior = ObjectRef("1.2.840.10008.5.1.4.1.1.88.34", f"{ROOT}.0.9", f"{ROOT}.0.8", f"{ROOT}.0")
    comparison = Comparison(
        "previous", f"{ROOT}.0", dt.date(2023, 1, 2), prior, 365 / 365.25,
        (JointChange("L_MCP2", 1, 0), JointChange("R_IP", 0, -1)), ("R_MCP5",),
    )  # fmt: skip
    result = StudyResult(
        study_instance_uid=f"{ROOT}.1.1",
        study_date=dt.date(2024, 1, 2),
        version=2,
        model=ModelInfo("rascore-svdh-phantom", "1.0.0+test", "2.25.15"),
        images=tuple(sorted((i.ref for i in images), key=lambda r: r.sop_instance_uid)),
        hands=hands(images),
        comparisons=(comparison, Comparison("first", *list(comparison.__dict__.values())[1:])),
        replaces=ObjectRef(prior.sop_class_uid, f"{ROOT}.1.9", f"{ROOT}.1.8", f"{ROOT}.1.1"),
        left_out_images=1,
    )
    sr = build_study_sr(
        [right, left], result, series_instance_uid=f"{ROOT}.1.8", sop_instance_uid=f"{ROOT}.1.7"
    )
    path = tmp_path / "study.dcm"
    sr.save_as(path, enforce_file_format=True)
    assert_dciodvfy_clean(path)
    back = pydicom.dcmread(path)
    assert back.VerificationFlag == "UNVERIFIED" and back.InstanceNumber == 2
    assert back.PredecessorDocumentsSequence[0].ReferencedSeriesSequence[0] \
        .ReferencedSOPSequence[0].ReferencedSOPInstanceUID == f"{ROOT}.1.9"  # fmt: skip
    assert str(back.PertinentOtherEvidenceSequence[0].StudyInstanceUID) == f"{ROOT}.0"
    assert read_study_sr(back) == result
    assert (result.jsn, result.erosion, result.joints_scored, result.not_assessable) == (
        10, 29, 19, 1,
    )  # fmt: skip


# -- the node: assembly in the database ------------------------------------------------------


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[RedisServer]:
    from worker.jobs.celery_app import configure

    redis = RedisServer(tmp_path / "redis").start()
    configure(Settings(), broker_url=redis.url)
    yield redis
    redis.stop()
    configure(Settings())
    shutil.rmtree(tmp_path / "redis", ignore_errors=True)


class Node:
    """The receiver and the store of a node, with scores stored as a worker stores them."""

    def __init__(self, tmp_path: Path, url: str) -> None:
        migrate.upgrade(url)
        self.settings = Settings(
            home=tmp_path / "home", database_url=url, destinations="PACS@127.0.0.1:1"
        )
        self.version = active_model_version(self.settings)
        self.store = Store(self.settings.effective_store_dir)
        model = ModelRef(tmp_path, "rascore-svdh-phantom", self.version)
        self.receiver = Receiver(url, self.store, model, ["HAND"], lambda _job: True)
        self.spool = tmp_path / "spool"

    def receive(self, ds: pydicom.Dataset) -> int:
        assert self.receiver(spooled(self.spool, ds)) == 0
        with session_scope(self.settings.effective_database_url) as session:
            return session.scalars(
                select(Instance.id).where(Instance.sop_instance_uid == str(ds.SOPInstanceUID))
            ).one()

    def score(self, instance_id: int, grades: Grades) -> None:
        """The job done with these grades (None: not assessable), as scoring stores it."""
        with session_scope(self.settings.effective_database_url) as session:
            job = session.scalars(select(Job).where(Job.instance_id == instance_id)).one()
            job.status, job.finished_at = JobStatus.DONE, job.created_at
            graded = {k: v for k, v in grades.items() if v is not None}
            row = ImageScoreRow(
                job_id=job.id, instance_id=instance_id, model_name=job.model_name,
                model_version=job.model_version, model_device_uid="2.25.15", status="scored",
                total_jsn=sum(v[0] for v in graded.values()),
                total_erosion=sum(v[1] for v in graded.values()), joints_scored=len(graded),
                hands={}, missing={"labels": [], "reasons": {}}, timings_ms={},
            )  # fmt: skip
            session.add(row)
            session.flush()
            for label, value in grades.items():
                session.add(
                    JointScoreRow(
                        image_score_id=row.id, label=label, box_x=1, box_y=1, box_w=4, box_h=4,
                        jsn=value[0] if value else None, erosion=value[1] if value else None,
                        assessable=value is not None, reason="" if value else "model unsure",
                        jsn_probs={"p": [0.2] * 5}, erosion_probs={"p": [0.2] * 6},
                    )
                )  # fmt: skip
            session.get_one(Instance, instance_id).status = InstanceStatus.SCORED

    def reports(self, uid: str) -> list[StudyReport]:
        with session_scope(self.settings.effective_database_url) as session:
            return list(
                session.scalars(
                    select(StudyReport)
                    .join(Study)
                    .where(Study.study_instance_uid == uid)
                    .order_by(StudyReport.version)
                )
            )


def _hand_grades(side: str, jsn: int, erosion: int, unsure: int = 0) -> Grades:
    labels = hand_labels(side)
    return {k: (jsn, erosion) if n < len(labels) - unsure else None for n, k in enumerate(labels)}


def _later(seconds: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)


def test_a_study_is_assembled_reopened_and_compared_with_the_earlier_one(  # type: ignore[no-untyped-def]
    tmp_path: Path, database_url: str, broker: RedisServer, assert_dciodvfy_clean
) -> None:
    node = Node(tmp_path, database_url)
    url = node.settings.effective_database_url
    first = f"{ROOT}.2"
    left = node.receive(_header(first, "L", date="20240102"))
    right = node.receive(_header(first, "R", date="20240102"))
    node.score(left, _hand_grades("L", 1, 0, unsure=1))
    with session_scope(url) as session:  # one image waits to be scored: not due
        assert due_studies(session, _later(61), 60) == []
    node.score(right, _hand_grades("R", 2, 1))
    assert assemble_due(node.settings, _later(30)) == 0  # not quiet yet
    sent: list[int] = []
    assert assemble_due(node.settings, _later(61), sent.extend) == 1
    [v1] = node.reports(f"{first}.1")
    content = v1.content
    assert (v1.version, v1.model_version, v1.replaces_id) == (1, node.version, None)
    assert content["totals"] == {"jsn": 29, "erosion": 10, "total": 39, "joints_scored": 19,
                                 "not_assessable": 1}  # fmt: skip
    assert content["hands"]["L"]["joints"]["L_MCP5"] == {
        "jsn": None, "erosion": None, "assessable": False, "reason": "model unsure",
        "source": f"{first}.2.1",
    }  # fmt: skip
    assert content["hands"]["R"]["source"] == f"{first}.2.2" and content["progression"] is None
    with session_scope(url) as session:
        delivery = session.get_one(Delivery, sent[0])
        assert (delivery.result.kind, delivery.result.job_id) == ("study", None)
        assert delivery.result.sop_instance_uid == v1.sop_instance_uid
    path = node.store.path(v1.store_key)
    assert_dciodvfy_clean(path)
    assert read_study_sr(pydicom.dcmread(path)) == study_result(content)
    assert assemble_due(node.settings, _later(61)) == 0  # nothing new

    # a late image of the left hand, all ten joints assessable: version 2 replaces version 1
    late = _header(first, "L", date="20240102")
    late.SOPInstanceUID = f"{first}.2.3"
    node.score(node.receive(late), _hand_grades("L", 2, 0))
    assert sweep(url, now=_later(61), settings=node.settings).studies == 1
    [_, v2] = node.reports(f"{first}.1")
    assert (v2.version, v2.replaces_id) == (2, v1.id)
    left_hand = v2.content["hands"]["L"]
    assert (left_hand["source"], left_hand["others"]) == (f"{first}.2.3", [f"{first}.2.1"])
    assert "most assessable joints (10 of 10)" in left_hand["choice"]
    assert v2.content["replaces"]["sop_instance_uid"] == v1.sop_instance_uid
    sr2 = pydicom.dcmread(node.store.path(v2.store_key))
    assert_dciodvfy_clean(node.store.path(v2.store_key))
    assert read_study_sr(sr2) == study_result(v2.content)
    assert read_study_sr(sr2).replaces.sop_instance_uid == v1.sop_instance_uid  # type: ignore[union-attr]

    # the same patient a year later: its report carries the progression against version 2
    second = f"{ROOT}.3"
    left2 = node.receive(_header(second, "L", date="20250102"))
    right2 = node.receive(_header(second, "R", date="20250102"))
    node.score(left2, {**_hand_grades("L", 3, 1), "L_IP": None})
    node.score(right2, _hand_grades("R", 2, 2))
    assert assemble_due(node.settings, _later(61)) == 1
    [v3] = node.reports(f"{second}.1")
    previous = v3.content["progression"]["previous"]
    assert previous == v3.content["progression"]["first"] | {"against": "previous"}
    assert previous["prior_report"]["sop_instance_uid"] == v2.sop_instance_uid
    assert previous["years"] == pytest.approx(366 / 365.25)  # 2024 is a leap year
    # left: nine joints 2,0 -> 3,1 (L_IP now not assessable); right: ten joints 2,1 -> 2,2
    assert (previous["jsn"]["change"], previous["erosion"]["change"]) == (9, 19)
    assert previous["total"] == {"change": 28, "per_year": round(28 * 365.25 / 366, 6)}
    assert (previous["joints_compared"], previous["left_out"]) == (19, ["L_IP"])
    path3 = node.store.path(v3.store_key)
    assert_dciodvfy_clean(path3)
    back = read_study_sr(pydicom.dcmread(path3))
    assert back == study_result(v3.content)
    assert back.comparisons[0].prior_report.sop_instance_uid == v2.sop_instance_uid
    assert np.isclose(back.comparisons[0].per_year(28) or 0, 28 * 365.25 / 366)


def test_an_earlier_visit_assembled_late_reopens_the_later_one(
    tmp_path: Path, database_url: str
) -> None:
    node = Node(tmp_path, database_url)
    later, earlier = f"{ROOT}.4", f"{ROOT}.5"
    node.score(node.receive(_header(later, "L", date="20250601")), _hand_grades("L", 2, 2))
    assert assemble_due(node.settings, _later(61)) == 1
    node.score(node.receive(_header(earlier, "L", date="20230601")), _hand_grades("L", 1, 1))
    assert assemble_due(node.settings, _later(61)) == 1  # the earlier visit ...
    assert assemble_due(node.settings, _later(61)) == 1  # ... re-opens the later one
    [_, v2] = node.reports(f"{later}.1")
    assert v2.content["progression"]["previous"]["total"]["change"] == 20


def test_nothing_scored_by_the_active_model_makes_no_report(
    tmp_path: Path, database_url: str
) -> None:
    node = Node(tmp_path, database_url)
    uid = f"{ROOT}.6"
    instance = node.receive(_header(uid, "R"))
    node.score(instance, _hand_grades("R", 1, 1))
    with session_scope(database_url) as session:
        job = session.scalars(select(Job).where(Job.instance_id == instance)).one()
        job.model_version = "0.0.0+another"
        session.get_one(Study, session.get_one(Instance, instance).study_id).last_image_at = (
            dt.datetime.now(dt.UTC) - dt.timedelta(seconds=120)
        )
    with session_scope(database_url) as session:
        study_id = session.scalars(
            select(Study.id).where(Study.study_instance_uid == f"{uid}.1")
        ).one()
    assert assemble_study(node.settings, study_id) is None
    assert node.reports(f"{uid}.1") == []
    with session_scope(database_url) as session:
        assert due_studies(session, _later(61), 60) == []  # marked assembled: not tried again


# -- migration 0006 ----------------------------------------------------------------------------


def test_migration_0006_keeps_results_and_removes_study_objects_going_down(
    database_url: str,
) -> None:
    migrate.upgrade(database_url, "0005")
    engine = make_engine(database_url)
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO studies (id, study_instance_uid, patient_id, patient_name, "
                "accession_number, created_at) VALUES (1, '1.2', 'P', 'N', 'A', :now)"
            ),
            {"now": now},
        )
        c.execute(
            text(
                "INSERT INTO instances (id, study_id, series_instance_uid, "
                "sop_instance_uid, sop_class_uid, sha256, transfer_syntax, size, modality, "
                "body_part, laterality, store_key, status, reason, received_at) VALUES "
                "(1, 1, '1.2.3', '1.2.3.4', '1.2.840.10008.5.1.4.1.1.1', 'x', '1.2', 1, "
                "'CR', 'HAND', 'L', 'images/x.dcm', 'scored', '', :now)"
            ),
            {"now": now},
        )
        c.execute(
            text(
                "INSERT INTO jobs (id, instance_id, model_name, model_version, status, "
                "reason, created_at) VALUES (1, 1, 'm', 'v', 'done', '', :now)"
            ),
            {"now": now},
        )
        c.execute(
            text(
                "INSERT INTO result_objects (id, job_id, kind, sop_class_uid, "
                "sop_instance_uid, store_key, created_at) VALUES "
                "(1, 1, 'sr', '1.2.840.10008.5.1.4.1.1.88.34', '1.5', 'r/1.dcm', :now)"
            ),
            {"now": now},
        )
        c.execute(
            text(
                "INSERT INTO deliveries (result_id, destination, status, attempts, "
                "next_attempt_at, last_status, last_error) VALUES "
                "(1, 'P@h:1', 'sent', 1, :now, '0000', '')"
            ),
            {"now": now},
        )
    migrate.upgrade(database_url)
    with session_scope(database_url) as session:
        assert session.get_one(ResultObject, 1).job_id == 1
        study_row = session.get_one(Study, 1)
        assert (study_row.last_image_at, study_row.report_version) == (None, 0)
        report = StudyReport(
            study_id=1,
            version=1,
            model_version="v",
            sop_instance_uid="1.6",
            series_instance_uid="1.7",
            store_key="studies/1.dcm",
            content={},
        )
        session.add(report)
        session.flush()
        session.add(ResultObject(id=2, job_id=None, study_report_id=report.id, kind="study",
                                 sop_class_uid="1.2.840.10008.5.1.4.1.1.88.34",
                                 sop_instance_uid="1.6", store_key="studies/1.dcm"))  # fmt: skip
        session.flush()
        session.add(Delivery(result_id=2, destination="P@h:1", status="pending"))
    migrate.downgrade(database_url, "0005")
    with engine.connect() as c:
        assert c.execute(text("SELECT id, job_id FROM result_objects")).all() == [(1, 1)]
        assert c.execute(text("SELECT result_id FROM deliveries")).all() == [(1,)]
    migrate.upgrade(database_url)
    engine.dispose()
