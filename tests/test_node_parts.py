"""The node's parts one at a time: migrations on SQLite and PostgreSQL, the append-only audit
table, the receiver's filing and routing, the store, the outbox backoff and the sweeper."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from pydicom.uid import SecondaryCaptureImageStorage
from servers import RedisServer
from spooled import spooled
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from dicom_io.net import CannotUnderstand, OutOfResources
from worker.db import migrate
from worker.db.engine import make_engine, session_scope
from worker.db.models import (
    AuditEvent,
    Base,
    ImageScoreRow,
    Instance,
    InstanceStatus,
    Job,
    JobStatus,
    JointScoreRow,
    Reception,
    Study,
    utcnow,
)
from worker.jobs.outbox import backoff_s
from worker.model_ref import ModelRef
from worker.node.receiving import Receiver
from worker.node.routing import route
from worker.node.store import Store
from worker.settings import Settings

# -- migrations ----------------------------------------------------------------------------------


def test_migrations_upgrade_match_the_models_and_downgrade(database_url: str) -> None:
    migrate.upgrade(database_url)
    assert migrate.current(database_url) == migrate.head()
    engine = make_engine(database_url)
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    migrate.downgrade(database_url, "base")
    assert migrate.current(database_url) is None
    with engine.connect() as connection:
        tables = set(
            connection.dialect.get_table_names(connection)  # type: ignore[attr-defined]
        )
    assert tables <= {"alembic_version"}
    migrate.upgrade(database_url)  # and up again on the emptied database
    engine.dispose()


def _insert_scored_image(connection, joints: int) -> int:  # type: ignore[no-untyped-def]
    """An image score with graded joints, written as the schema of revision 0002 has it."""
    now = utcnow()
    connection.execute(
        text("INSERT INTO studies (id, study_instance_uid, patient_id, patient_name, "
             "accession_number, created_at) VALUES (1, '1.2.3', 'P', 'N', 'A', :now)"),
        {"now": now},
    )  # fmt: skip
    connection.execute(
        text("INSERT INTO instances (id, study_id, series_instance_uid, sop_instance_uid, "
             "sop_class_uid, sha256, transfer_syntax, size, modality, body_part, laterality, "
             "store_key, status, reason, received_at) VALUES (1, 1, '1.2.3.1', '1.2.3.1.1', "
             "'1.2.840.10008.5.1.4.1.1.1', :sha, '1.2.840.10008.1.2.1', 1, 'CR', 'HAND', 'B', "
             "'images/x.dcm', 'scored', '', :now)"),
        {"sha": "0" * 64, "now": now},
    )  # fmt: skip
    connection.execute(
        text("INSERT INTO jobs (id, instance_id, model_name, model_version, status, reason, "
             "created_at) VALUES (1, 1, 'm', 'v', 'done', '', :now)"),
        {"now": now},
    )  # fmt: skip
    connection.execute(
        text("INSERT INTO image_scores (id, job_id, instance_id, model_name, model_version, "
             "model_device_uid, status, total_jsn, total_erosion, hands, missing, "
             "pixel_spacing_assumed, timings_ms, scored_at) VALUES (1, 1, 1, 'm', 'v', '2.25.1', "
             "'scored', :n, 0, '{}', '{}', false, '{}', :now)"),
        {"n": joints, "now": now},
    )  # fmt: skip
    for k in range(joints):
        connection.execute(
            text("INSERT INTO joint_scores (image_score_id, label, box_x, box_y, box_w, box_h, "
                 "jsn, erosion, jsn_probs, erosion_probs, found_by) "
                 "VALUES (1, :label, 0, 0, 1, 1, 1, 0, '{}', '{}', 'cascade')"),
            {"label": f"R_MCP{k + 1}"},
        )  # fmt: skip
    return 1


def test_migration_0003_keeps_graded_joints_and_drops_ungraded_ones_on_downgrade(
    database_url: str,
) -> None:
    """Rows scored before joints could be not assessable stay graded, and the image knows how
    many joints its totals cover; going back removes only what the old schema cannot hold."""
    migrate.upgrade(database_url, "0002")
    engine = make_engine(database_url)
    with engine.begin() as connection:
        _insert_scored_image(connection, joints=3)
    migrate.upgrade(database_url)
    with session_scope(database_url) as session:
        score = session.get_one(ImageScoreRow, 1)
        assert score.joints_scored == 3
        assert [(j.assessable, j.reason, j.jsn) for j in score.joints] == [(True, "", 1)] * 3
        session.add(
            JointScoreRow(
                image_score_id=1, label="R_PIP2", box_x=0, box_y=0, box_w=1, box_h=1,
                jsn=None, erosion=None, assessable=False, reason="model unsure",
                jsn_probs={"p": []}, erosion_probs={"p": []},
            )
        )  # fmt: skip
    with session_scope(database_url) as session:
        stored = session.scalars(select(JointScoreRow).where(JointScoreRow.label == "R_PIP2")).one()
        assert (stored.jsn, stored.erosion, stored.assessable) == (None, None, False)
        assert stored.reason == "model unsure"
    migrate.downgrade(database_url, "0002")
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT label, jsn FROM joint_scores ORDER BY label"))
        assert [tuple(r) for r in rows] == [("R_MCP1", 1), ("R_MCP2", 1), ("R_MCP3", 1)]
        assert connection.execute(text("SELECT total_jsn FROM image_scores")).scalar() == 3
    migrate.upgrade(database_url)
    engine.dispose()


def test_audit_events_are_append_only(database_url: str) -> None:
    migrate.upgrade(database_url)
    with session_scope(database_url) as session:
        session.add(AuditEvent(event="received", actor="TEST", detail={}))
    statements = ["UPDATE audit_events SET actor = 'someone else'", "DELETE FROM audit_events"]
    if database_url.startswith("postgresql"):
        statements.append("TRUNCATE audit_events")
    for statement in statements:
        with pytest.raises(DBAPIError, match="append-only"), session_scope(database_url) as s:
            s.execute(text(statement))
    with session_scope(database_url) as session:
        assert session.scalar(select(AuditEvent.actor)) == "TEST"


# -- receiving -----------------------------------------------------------------------------------


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[RedisServer]:
    """Debian's redis-server, with the Celery app pointed at it for the test."""
    from worker.jobs.celery_app import configure

    redis = RedisServer(tmp_path / "redis").start()
    configure(Settings(), broker_url=redis.url)
    yield redis
    redis.stop()
    configure(Settings())
    shutil.rmtree(tmp_path / "redis", ignore_errors=True)


def queued_jobs(redis: RedisServer) -> list[int]:
    """The job ids of the scoring messages waiting in Redis (Celery protocol 2, JSON)."""
    import base64
    import json

    import redis as redis_client

    raw = redis_client.Redis(port=redis.port).lrange("score", 0, -1)
    return [json.loads(base64.b64decode(json.loads(m)["body"]))[0][0] for m in raw]


@pytest.fixture
def receiver(tmp_path: Path, broker: RedisServer) -> tuple[Receiver, RedisServer]:
    """The node's receiver, publishing to a real Redis as in the node."""
    from worker.jobs.queueing import enqueue_score

    url = f"sqlite:///{tmp_path / 'rascore.db'}"
    migrate.upgrade(url)
    model = ModelRef(tmp_path, "rascore-svdh-phantom", "1.0.0+test")
    handler = Receiver(
        url, Store(tmp_path / "store"), model, ["HAND"], lambda job: enqueue_score(url, job)
    )
    return handler, broker


def test_receiver_files_records_and_queues_once(
    receiver: tuple[Receiver, list[int]], phantom_file: Path, tmp_path: Path
) -> None:
    handler, redis = receiver
    ds = pydicom.dcmread(phantom_file)
    assert handler(spooled(tmp_path / "spool", ds)) == 0x0000
    assert handler(spooled(tmp_path / "spool", ds)) == 0x0000  # sent again
    queued = queued_jobs(redis)
    assert len(queued) == 1
    url = handler.database_url
    with session_scope(url) as session:
        [instance] = session.scalars(select(Instance)).all()
        assert instance.status == InstanceStatus.QUEUED
        assert session.scalar(select(func.count(Reception.id))) == 2
        assert session.scalar(select(Reception.duplicate).order_by(Reception.id.desc())) is True
        [job] = session.scalars(select(Job)).all()
        assert (job.id, job.status, job.model_version) == (
            queued[0],
            JobStatus.QUEUED,
            "1.0.0+test",
        )
        stored = list((tmp_path / "store").rglob("*.dcm"))
        assert [p.relative_to(tmp_path / "store").as_posix() for p in stored] == [
            instance.store_key
        ]
        assert pydicom.dcmread(stored[0]).SOPInstanceUID == ds.SOPInstanceUID
        # patient data is kept for the audit queries, never in a file name
        study = session.scalars(select(Study)).one()
        assert study.patient_id == str(ds.PatientID)
        assert str(ds.PatientID) not in instance.store_key
    assert not list((tmp_path / "spool").iterdir())


def test_receiver_skips_what_is_not_a_hand(
    receiver: tuple[Receiver, list[int]], phantom_file: Path, tmp_path: Path
) -> None:
    handler, redis = receiver
    chest = pydicom.dcmread(phantom_file)
    chest.BodyPartExamined = "CHEST"
    chest.ProtocolName = chest.SeriesDescription = chest.StudyDescription = "Thorax PA"
    chest.SOPInstanceUID = pydicom.uid.generate_uid()
    sc = pydicom.dcmread(phantom_file)
    sc.SOPClassUID = SecondaryCaptureImageStorage
    sc.SOPInstanceUID = pydicom.uid.generate_uid()
    for ds in (chest, sc):
        assert handler(spooled(tmp_path / "spool", ds)) == 0x0000
    assert queued_jobs(redis) == []
    with session_scope(handler.database_url) as session:
        reasons = {i.sop_instance_uid: i.reason for i in session.scalars(select(Instance))}
        assert {i.status for i in session.scalars(select(Instance))} == {InstanceStatus.SKIPPED}
    assert "no hand" in reasons[str(chest.SOPInstanceUID)]
    assert "not a CR or DX" in reasons[str(sc.SOPInstanceUID)]


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
def test_receiver_refuses_uids_that_are_not_uids(
    receiver: tuple[Receiver, list[int]], phantom_file: Path, tmp_path: Path
) -> None:
    handler, redis = receiver
    ds = pydicom.dcmread(phantom_file)
    ds.StudyInstanceUID = "../../etc"
    with pytest.raises(CannotUnderstand, match="StudyInstanceUID"):
        handler(spooled(tmp_path / "spool", ds))
    assert not (tmp_path / "store").exists() or not list((tmp_path / "store").rglob("*.dcm"))
    assert queued_jobs(redis) == []


def test_receiver_without_a_database_refuses_with_out_of_resources(
    phantom_file: Path, tmp_path: Path
) -> None:
    from servers import free_port

    url = f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none?connect_timeout=2"
    model = ModelRef(tmp_path, "m", "v")
    handler = Receiver(url, Store(tmp_path / "store"), model, ["HAND"], lambda _: True)
    with pytest.raises(OutOfResources, match="database"):
        handler(spooled(tmp_path / "spool", pydicom.dcmread(phantom_file)))
    assert not list((tmp_path / "store").rglob("*.dcm")), "a refused image stays in the store"


@pytest.mark.parametrize(
    ("fields", "score"),
    [
        ({"BodyPartExamined": "HAND"}, True),
        ({"BodyPartExamined": "", "ProtocolName": "Hands PA both"}, True),
        ({"SeriesDescription": "R HAND 2 VIEWS"}, True),
        ({"BodyPartExamined": "CHEST", "StudyDescription": "Handgelenk?"}, False),
        ({"BodyPartExamined": "SHANDY"}, False),  # a word, not a substring
        ({"ViewPosition": "PA"}, False),  # it says something, and no hand
        ({}, True),  # a stripped header says nothing: the detector decides
        ({"BodyPartExamined": "", "SeriesDescription": "  "}, True),
    ],
)
def test_routing_by_header_words(fields: dict[str, str], score: bool) -> None:
    ds = pydicom.Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1"  # CR
    for keyword, value in fields.items():
        setattr(ds, keyword, value)
    assert route(ds, ["HAND", "HANDS"]).score is score


# -- store, backoff, sweeper ---------------------------------------------------------------------


def test_store_keys_never_leave_the_store(tmp_path: Path) -> None:
    store = Store(tmp_path)
    assert store.path(Store.new_image_key()).is_relative_to(tmp_path)
    for key in ("../x.dcm", "/etc/passwd", "images/../../x"):
        with pytest.raises(ValueError, match="leaves the store"):
            store.path(key)


def test_send_backoff_doubles_up_to_its_cap() -> None:
    settings = Settings(send_retry_initial_s=10, send_retry_max_s=60)
    assert [backoff_s(settings, n) for n in range(1, 6)] == [10, 20, 40, 60, 60]


def test_sweeper_queues_what_the_broker_lacks(tmp_path: Path, broker: RedisServer) -> None:
    """A job whose publication failed (broker down at the time) is put on the broker by the
    next sweep; a recently queued job is left alone unless everything is swept."""
    from worker.node.sweeper import sweep

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate.upgrade(url)
    with session_scope(url) as session:
        study = Study(study_instance_uid="1.2.3", study_date=None)
        for n, enqueued in enumerate([None, utcnow()]):
            instance = Instance(
                study=study,
                sop_instance_uid=f"1.2.3.{n}",
                sop_class_uid="1.2.840.10008.5.1.4.1.1.1",
                sha256="0" * 64,
                transfer_syntax="1.2.840.10008.1.2.1",
                size=1,
                store_key=f"images/{n}.dcm",
                status=InstanceStatus.QUEUED,
            )
            session.add(
                Job(
                    instance=instance,
                    model_name="m",
                    model_version="v",
                    status=JobStatus.QUEUED,
                    enqueued_at=enqueued,
                )
            )
    assert sweep(url).jobs == 1
    assert broker.queue_length("score") == 1
    assert sweep(url).jobs == 0  # now it has been published
    assert sweep(url, everything=True).jobs == 2  # start-up reconciliation
    assert broker.queue_length("score") == 3


# -- joints that are not assessable --------------------------------------------------------------


def test_scoring_stores_not_assessable_joints_and_builds_from_them(
    phantom_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, assert_dciodvfy_clean
) -> None:  # type: ignore[no-untyped-def]
    """The rows keep a joint the model would not grade, with no grade and its reason; the
    totals (per image and per hand) cover the others and say how many; the SR, SC and GSPS
    built from the rows say the same, and the audit event counts them."""
    from not_assessable_scoring import MISSING, NOT_ASSESSABLE, score_with_not_assessable

    from dicom_io.sr import read_sr
    from worker.db.models import AuditEventType, ImageScoreRow, JointScoreRow, ResultObject
    from worker.node.store import Store

    done = score_with_not_assessable(phantom_file, tmp_path / "home", monkeypatch)
    expected = done.scorer.score(np.zeros((1, 1)), 0.15, "B")
    graded = [j for j in expected.joints if j.assessable]
    url = done.settings.effective_database_url
    with session_scope(url) as session:
        score = session.scalars(select(ImageScoreRow)).one()
        assert (score.status, score.joints_scored, len(score.joints)) == ("partial", 17, 19)
        assert score.total_jsn == sum(j.jsn or 0 for j in graded) == expected.total_jsn
        assert score.total_erosion == expected.total_erosion
        assert score.hands["R"] == {
            "jsn": sum(j.jsn or 0 for j in graded if j.label[0] == "R"),
            "erosion": sum(j.erosion or 0 for j in graded if j.label[0] == "R"),
            "joints_scored": 9,
        }
        assert score.hands["L"]["joints_scored"] == 8
        assert score.missing == {"labels": [MISSING[0]], "reasons": {MISSING[0]: MISSING[1]}}
        rows = {j.label: j for j in session.scalars(select(JointScoreRow))}
        for label, reason in NOT_ASSESSABLE.items():
            row = rows[label]
            assert (row.jsn, row.erosion, row.assessable, row.reason) == (None, None, False, reason)
            assert len(row.jsn_probs["p"]) == 5
        assert all(r.assessable and r.reason == "" and r.jsn is not None for r in
                   rows.values() if r.label not in NOT_ASSESSABLE)  # fmt: skip
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.event == AuditEventType.SCORED)
        ).one()
        assert event.detail["joints_scored"] == 17
        assert event.detail["joints_expected"] == 20
        assert event.detail["not_assessable"] == 2
        results = {r.kind: r.store_key for r in session.scalars(select(ResultObject))}
        assert session.get_one(Instance, done.instance_id).reason == ""
    store = Store(done.settings.effective_store_dir)
    assert set(results) == {"sr", "sc", "gsps"}
    for key in results.values():
        assert_dciodvfy_clean(store.path(key))
    back = read_sr(pydicom.dcmread(store.path(results["sr"])))
    assert {j.label: j.reason for j in back.joints if not j.assessable} == NOT_ASSESSABLE
    assert back.joints_scored == 17 and back.total_jsn == expected.total_jsn


def test_demo_prints_n_a_with_the_reason(capsys: pytest.CaptureFixture[str]) -> None:
    from dicom_io.results import JointResult, ModelInfo, ScoringResult
    from worker.lab.demo import _print_scores

    probs = ((0.2,) * 5, (0.5, 0.1, 0.1, 0.1, 0.1, 0.1))
    result = ScoringResult(
        "1.2.3",
        (
            JointResult("R_PIP2", (0, 0, 5, 5), 2, 1, *probs),
            JointResult("R_PIP3", (9, 0, 5, 5), None, None, *probs, False, "model unsure"),
        ),
        ModelInfo("m", "1.0", "2.25.1"),
    )
    _print_scores(Path("x.dcm"), result, Path("x.png"))
    out = capsys.readouterr().out
    assert "R_PIP3   n/a (model unsure)" in out and "None" not in out
    assert "R hand totals: JSN 2, erosion 1 (1 of 10 joints scored)" in out
    assert "image totals: JSN 2, erosion 1 (1 of 10 joints scored)" in out


def test_the_receiver_reads_no_large_header_value(tmp_path: Path) -> None:
    """A 200 MB private element in an accepted data set is never read into the node's memory:
    the receiver's header leaves out any value over 64 KB and still has what it needs."""
    from pydicom.examples import ct

    from worker.node.receiving import _small_header

    ds = ct.copy()
    ds.add_new(0x00291010, "OB", b"\0" * (200 << 20))
    path = tmp_path / "large.dcm"
    ds.save_as(path)
    header = _small_header(path)
    assert 0x00291010 not in header
    assert header.SOPInstanceUID == ct.SOPInstanceUID and header.PatientID == ct.PatientID
    path.rename(tmp_path / "filed.dcm")  # the store moves the file; nothing is read lazily
    assert str(header.get("BodyPartExamined", "")) == str(ct.get("BodyPartExamined", ""))
