"""What becomes of an image the node took, and of its job, when something is wrong for good.

Issue 11, findings 6, 12, 14 and 15 and the typed failure reasons: a database error that will
not pass is refused with 0xC000 (a PACS retries 0xA700 forever), hostile text is cleaned before
it reaches PostgreSQL, a patient merge in the PACS is followed with an audit event, a model
whose card does not describe its artefacts is refused by ``serve``, ``worker`` and the task, and
a failed scoring or build is stored with a one-line ``<code>: <message>`` reason that
``/failures`` lists and ``/metrics`` counts. Real PostgreSQL, real associations, real models.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from markupsafe import escape
from not_assessable_scoring import FakeScorer
from prometheus_client import REGISTRY
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE
from servers import PostgresServer, free_port
from spooled import spooled
from sqlalchemy import select, text

from dicom_io.net import StorageSCP
from scoring.model import DEFAULT_MODEL_DIR
from worker.db import migrate, queries
from worker.db.engine import make_engine, session_scope
from worker.db.models import (
    AuditEvent,
    Instance,
    InstanceStatus,
    Job,
    JobAttempt,
    JobStatus,
    JointScoreRow,
    ResultObject,
    Study,
)
from worker.jobs import build
from worker.jobs import score as jobs
from worker.model_ref import ModelRef
from worker.node.receiving import Receiver
from worker.node.store import Store
from worker.settings import Settings

REPO = Path(__file__).resolve().parents[1]
REASON = re.compile(r"^[a-z0-9-]+: [^\n]+$")  #: "<reason code>: <message>", one line


def _pg_url(postgres: PostgresServer, tmp_path: Path) -> str:
    url = postgres.create_database(f"o_{hashlib.sha1(str(tmp_path).encode()).hexdigest()[:12]}")
    migrate.upgrade(url)
    return url


def _phantom(phantom_file: Path, **fields: Any) -> pydicom.Dataset:
    """The phantom as a new instance of a new study, with ``fields`` set."""
    ds = pydicom.dcmread(phantom_file)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    for keyword, value in fields.items():
        setattr(ds, keyword, value)
    return ds


# -- finding 6: permanent database errors --------------------------------------------------------


@dataclasses.dataclass
class Scp:
    scp: StorageSCP
    receiver: Receiver
    store: Path

    def send(self, ds: pydicom.Dataset) -> tuple[int, str]:
        """C-STORE over a real association: the status and its error comment."""
        ae = AE(ae_title="MODALITY")
        ae.add_requested_context(ds.SOPClassUID, ExplicitVRLittleEndian)
        assoc = ae.associate("127.0.0.1", self.scp.port, ae_title="RASCORE")
        assert assoc.is_established
        try:
            status = assoc.send_c_store(ds)
        finally:
            assoc.release()
        return int(status.Status), str(status.get("ErrorComment", ""))


@pytest.fixture
def pg_scp(postgres: PostgresServer, tmp_path: Path) -> Iterator[Scp]:
    """The node's receiver behind a real SCP, recording into a real PostgreSQL."""
    url = _pg_url(postgres, tmp_path)
    store = tmp_path / "store"
    receiver = Receiver(
        url, Store(store), ModelRef(tmp_path, "m", "1.0.0+test"), ["HAND"], lambda _: True
    )
    scp = StorageSCP("RASCORE", 0, receiver, spool_dir=tmp_path / "spool", host="127.0.0.1")
    scp.start()
    yield Scp(scp, receiver, store)
    scp.stop()
    make_engine(url).dispose()


@pytest.mark.filterwarnings("ignore:Invalid value for VR", "ignore:Found unknown escape")
def test_nul_and_control_characters_are_cleaned_before_postgresql(
    pg_scp: Scp, phantom_file: Path
) -> None:
    """PostgreSQL refuses NUL in text for good: it is stripped, as are control characters and
    lone surrogates, so the image is taken rather than retried forever."""
    ds = _phantom(
        phantom_file,
        PatientID="PAT\x00-6\x07",
        PatientName="Doe^Jane\x1b[31m",
        AccessionNumber="A\x00CC\x7f1",
        BodyPartExamined="HAND\x00",
    )
    status, comment = pg_scp.send(ds)
    assert status == 0x0000, comment
    with session_scope(pg_scp.receiver.database_url) as session:
        study = session.scalars(select(Study)).one()
        instance = session.scalars(select(Instance)).one()
        assert (study.patient_id, study.patient_name, study.accession_number) == (
            "PAT-6",
            "Doe^Jane[31m",
            "ACC1",
        )
        assert instance.body_part == "HAND" and instance.status == InstanceStatus.QUEUED


@pytest.mark.parametrize("how", ["constraint", "too-long"])
def test_a_permanent_database_error_is_refused_for_good_and_the_node_goes_on(
    pg_scp: Scp, phantom_file: Path, how: str
) -> None:
    """A value the database will never take gets 0xC000 with a one-line reason and no patient
    data in it; the next image is taken. (The schema is narrowed here to make PostgreSQL refuse
    for real: a CHECK constraint gives an IntegrityError that persists, a short column a
    DataError.)"""
    with make_engine(pg_scp.receiver.database_url).begin() as connection:
        if how == "constraint":
            connection.execute(
                text("ALTER TABLE studies ADD CONSTRAINT hostile CHECK (patient_id <> 'EVIL-1')")
            )
        else:
            connection.execute(
                text("ALTER TABLE studies ALTER COLUMN accession_number TYPE varchar(4)")
            )
    hostile = _phantom(phantom_file, PatientID="EVIL-1", AccessionNumber="ACC-123456")
    status, comment = pg_scp.send(hostile)
    assert status == 0xC000, (hex(status), comment)
    assert comment and "\n" not in comment and "EVIL" not in comment and "ACC-" not in comment
    assert not list(pg_scp.store.rglob("*.dcm")), "a refused image stays in the store"
    fine = _phantom(phantom_file, PatientID="GOOD-1", AccessionNumber="A1")
    assert pg_scp.send(fine)[0] == 0x0000
    with session_scope(pg_scp.receiver.database_url) as session:
        assert session.scalars(select(Study.patient_id)).all() == ["GOOD-1"]


# -- finding 14: a patient merge in the PACS -----------------------------------------------------


def test_a_patient_merge_updates_the_study_with_an_audit_event(
    phantom_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'rascore.db'}"
    migrate.upgrade(url)
    receiver = Receiver(
        url, Store(tmp_path / "store"), ModelRef(tmp_path, "m", "1"), ["HAND"], lambda _: True
    )
    first = _phantom(phantom_file, PatientID="OLD-PID-77", PatientName="Old^Name")
    assert receiver(spooled(tmp_path / "spool", first)) == 0x0000
    # the PACS merged the patient: the next image of the same study names the surviving one
    merged = _phantom(phantom_file, PatientID="NEW-PID-88", PatientName="New^Name")
    merged.StudyInstanceUID = first.StudyInstanceUID
    with caplog.at_level(logging.DEBUG, logger="worker"):
        assert receiver(spooled(tmp_path / "spool", merged)) == 0x0000
    # an image without a Patient ID (de-identified) is no merge: the study keeps its patient
    anonymous = _phantom(phantom_file, PatientID="", PatientName="")
    anonymous.StudyInstanceUID = first.StudyInstanceUID
    assert receiver(spooled(tmp_path / "spool", anonymous)) == 0x0000
    with session_scope(url) as session:
        study = session.scalars(select(Study)).one()
        assert (study.patient_id, study.patient_name) == ("NEW-PID-88", "New^Name")
        [event] = session.scalars(
            select(AuditEvent).where(AuditEvent.event == "patient_changed")
        ).all()
        assert event.detail["study_instance_uid"] == str(first.StudyInstanceUID)
        assert event.detail["old"] == {"patient_id": "OLD-PID-77", "patient_name": "Old^Name"}
        assert event.detail["new"] == {"patient_id": "NEW-PID-88", "patient_name": "New^Name"}
        assert event.instance_id is not None
    # said at INFO, without the patient's identity (that is for the audit trail)
    info = [r for r in caplog.records if r.levelno >= logging.INFO]
    said = " ".join(f"{r.getMessage()} {list(r.__dict__.values())}" for r in info)
    assert "PID-" not in said and "^Name" not in said
    assert any("patient" in r.getMessage() for r in info)


# -- finding 12: a model whose card does not describe its artefacts ------------------------------


def _model_copy(tmp_path: Path, tamper: str) -> Path:
    """A copy of the shipped model, tampered with."""
    model = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL_DIR, model)
    card_path = model / "card.json"
    card = json.loads(card_path.read_text())
    if tamper in ("weights", "rehashed"):
        weights = bytearray((model / "jsn.pt").read_bytes())
        weights[-100] ^= 0x01  # one bit of one weight file
        (model / "jsn.pt").write_bytes(bytes(weights))
    if tamper == "rehashed":  # the card's own hash made to match: the version still lies
        from scoring.model import content_hash

        card["content_hash"] = content_hash(model)
    if tamper == "version":  # same artefacts, a version they do not have
        card["version"] = "1.2.0+000000000000"
    if tamper == "device":
        card["device_uid"] = "2.25.1234"
    card_path.write_text(json.dumps(card))
    return model


def _run_node_command(args: list[str], env: dict[str, str], timeout: float) -> tuple[int, str]:
    """``python -m worker ARGS``; on a timeout the whole process group is stopped."""
    process = subprocess.Popen(
        [sys.executable, "-m", "worker", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
        return -1, "still running after the timeout"
    return process.returncode, stderr


@pytest.mark.parametrize(
    ("command", "tamper", "says"),
    [
        ("serve", "weights", "content hash"),
        ("serve", "rehashed", "claims version"),
        ("serve", "version", "claims version"),
        ("worker", "device", "claims device UID"),
    ],
)
def test_the_node_refuses_to_start_on_a_model_whose_card_does_not_match(
    tmp_path: Path, command: str, tamper: str, says: str
) -> None:
    model = _model_copy(tmp_path, tamper)
    env = {
        **os.environ,
        "RASCORE_HOME": str(tmp_path / "home"),
        "RASCORE_MODEL_DIR": str(model),
        "RASCORE_DICOM_PORT": str(free_port()),
        "RASCORE_API_PORT": str(free_port()),
        "RASCORE_WORKERS": "0",
        "RASCORE_BROKER_URL": "redis://127.0.0.1:1/0" if command == "worker" else "",
    }
    code, stderr = _run_node_command([command], env, timeout=60)
    assert code == 2, stderr[-2000:]
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and says in lines[0] and "Traceback" not in stderr, stderr
    assert not (tmp_path / "home" / "rascore.db").exists(), "nothing started"


# -- jobs: typed one-line reasons, failed builds -------------------------------------------------


def _node_db(tmp_path: Path, model_dir: Path | None = None) -> Settings:
    settings = Settings(home=tmp_path / "home", model_dir=model_dir)
    migrate.upgrade(settings.effective_database_url)
    return settings


def _queued_job(settings: Settings, ds: pydicom.Dataset, model_version: str) -> tuple[int, int]:
    """The instance filed in the store with a queued job, as the receiver leaves it."""
    key = Store.new_image_key()
    Store(settings.effective_store_dir).write_dataset(key, ds)
    with session_scope(settings.effective_database_url) as session:
        instance = Instance(
            study=Study(study_instance_uid=str(ds.StudyInstanceUID), patient_id="P-1"),
            sop_instance_uid=str(ds.SOPInstanceUID),
            sop_class_uid=str(ds.SOPClassUID),
            sha256=hashlib.sha256(str(ds.SOPInstanceUID).encode()).hexdigest(),
            transfer_syntax=str(ds.file_meta.TransferSyntaxUID),
            size=1,
            store_key=key,
            status=InstanceStatus.QUEUED,
        )
        job = Job(
            instance=instance,
            model_name="rascore-svdh-phantom",
            model_version=model_version,
            status=JobStatus.QUEUED,
        )
        session.add(job)
        session.flush()
        return instance.id, job.id


def _metric(name: str, reason: str) -> float:
    return REGISTRY.get_sample_value(name, {"reason": reason}) or 0.0


def _failures(settings: Settings) -> list[dict[str, Any]]:
    with session_scope(settings.effective_database_url) as session:
        return queries.failures(session)


def test_a_worker_whose_model_does_not_match_fails_the_job_with_the_reason(
    tmp_path: Path, phantom_file: Path
) -> None:
    """Not an exception that leaves the job queued (and queued again every 30 min)."""
    model = _model_copy(tmp_path, "rehashed")
    settings = _node_db(tmp_path, model)
    card = json.loads((model / "card.json").read_text())
    instance_id, job_id = _queued_job(settings, _phantom(phantom_file), card["version"])
    before = _metric("rascore_scoring_failed_total", "model-refused")
    outcome = jobs.score_job(settings, job_id, worker="test:1")
    assert outcome.status == "failed"
    with session_scope(settings.effective_database_url) as session:
        job = session.get_one(Job, job_id)
        assert job.status == JobStatus.FAILED
        assert REASON.match(job.reason) and job.reason.startswith("model-refused: ")
        assert "claims version" in job.reason
    [failure] = _failures(settings)
    assert (failure["kind"], failure["id"]) == ("scoring", instance_id)
    assert failure["reason"] == job.reason
    assert _metric("rascore_scoring_failed_total", "model-refused") == before + 1


def test_a_failed_scoring_is_stored_with_its_typed_one_line_reason(
    tmp_path: Path, phantom_file: Path
) -> None:
    """An image the reader refuses: ``<reason code>: <message>`` on the job and the instance,
    in /failures, and counted by its code."""
    settings = _node_db(tmp_path)
    ds = _phantom(phantom_file, SOPClassUID="1.2.840.10008.5.1.4.1.1.481.1")  # RT Image
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    instance_id, job_id = _queued_job(settings, ds, _default_version())
    before = _metric("rascore_scoring_failed_total", "sop-class")
    outcome = jobs.score_job(settings, job_id, worker="test:1")
    assert outcome.status == "failed"
    with session_scope(settings.effective_database_url) as session:
        job = session.get_one(Job, job_id)
        assert job.reason.startswith("sop-class: ") and REASON.match(job.reason), job.reason
        assert job.instance.reason == job.reason
        [attempt] = session.scalars(select(JobAttempt).where(JobAttempt.job_id == job_id)).all()
        assert (attempt.outcome, attempt.error) == ("failed", job.reason)
    [failure] = _failures(settings)
    assert (failure["kind"], failure["id"]) == ("scoring", instance_id)
    assert failure["reason"] == job.reason
    assert _metric("rascore_scoring_failed_total", "sop-class") == before + 1


def _default_version() -> str:
    return str(json.loads((DEFAULT_MODEL_DIR / "card.json").read_text())["version"])


def test_a_failed_build_is_recorded_listed_counted_and_can_be_retried(
    tmp_path: Path, phantom_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scores whose joint box lies outside the source image (a scorer's bug, or a source that
    changed): the SR cannot be made. The scores stand; the build's failure is on record with
    its one-line reason, in /failures and /metrics, and an operator's resend builds it again."""
    settings = _node_db(tmp_path)
    ds = _phantom(phantom_file)
    truth = json.loads((phantom_file.parent / "truth.json").read_text())["images"][0]
    bad = dict(truth["joints"][0], box=[int(ds.Columns) + 50, 10, 40, 40])
    scorer = FakeScorer({**truth, "joints": [bad, *truth["joints"][1:]]})
    monkeypatch.setattr(jobs, "_scorer", lambda _model_dir: scorer)
    instance_id, job_id = _queued_job(settings, ds, scorer.bundle.version)
    assert jobs.score_job(settings, job_id, worker="test:1").status == "done"
    counted = _samples("rascore_builds_failed_total")
    build.build_results(settings, job_id)

    with session_scope(settings.effective_database_url) as session:
        job = session.get_one(Job, job_id)
        assert job.status == JobStatus.DONE and job.score is not None, "the scores stand"
        assert job.instance.status == InstanceStatus.SCORED
        assert not job.results
        [attempt] = [a for a in job.attempts if a.task == "build"]
        assert attempt.outcome == "failed" and REASON.match(attempt.error), attempt.error
        reason = attempt.error
        assert "Traceback" not in reason and len(reason) < 600
    failures = _failures(settings)
    [failure] = [f for f in failures if f["kind"] == "build"]
    assert (failure["id"], failure["job_id"], failure["reason"]) == (instance_id, job_id, reason)
    code = reason.split(":", 1)[0]
    now = _samples("rascore_builds_failed_total")
    assert now.get(code, 0) == counted.get(code, 0) + 1, (code, now)

    # the HTTP API says the same: /api/v1/failures lists it, /metrics counts it by its code
    api, token = _api(settings)
    listed = api.get("/api/v1/failures", headers={"Authorization": f"Bearer {token}"}).json()
    assert [(f["id"], f["reason"]) for f in listed if f["kind"] == "build"] == [
        (instance_id, reason)
    ]
    exposed = api.get("/metrics").text
    assert f'rascore_builds_failed_total{{reason="{code}"}}' in exposed
    # and the dashboard's failures page, with the operator's resend button
    origin = {"Origin": str(api.base_url).rstrip("/")}
    assert api.post("/login", data={"token": token}, headers=origin).status_code < 400
    page = api.get("/failures").text
    assert str(escape(reason)) in page and "Resend" in page

    # the cause put right (a fixed release, here the box), an operator resends: built again
    with session_scope(settings.effective_database_url) as session:
        joint = session.scalars(
            select(JointScoreRow).where(JointScoreRow.label == bad["label"])
        ).one()
        joint.box_x = truth["joints"][0]["box"][0]
    answer = api.post(
        f"/api/v1/instances/{instance_id}/resend", headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 200, answer.text
    with session_scope(settings.effective_database_url) as session:
        assert session.get_one(Job, job_id).built_at is None, "due to be built again"
    build.build_results(settings, job_id)
    with session_scope(settings.effective_database_url) as session:
        kinds = set(session.scalars(select(ResultObject.kind).where(ResultObject.job_id == job_id)))
        assert kinds == {"sr", "sc", "gsps"}
        assert session.get_one(Job, job_id).built_at is not None
    assert not [f for f in _failures(settings) if f["kind"] == "build"]


def _api(settings: Settings) -> tuple[Any, str]:
    """The node's HTTP API in this process, and an operator's token."""
    from fastapi.testclient import TestClient

    from worker.api.app import create_app
    from worker.db.models import TokenRole
    from worker.db.tokens import create_token

    with session_scope(settings.effective_database_url) as session:
        token = create_token(session, "operator", TokenRole.OPERATOR)
    return TestClient(create_app(settings)), token


def _samples(name: str) -> dict[str, float]:
    """The values of a labelled counter by its ``reason`` label."""
    out: dict[str, float] = {}
    for metric in REGISTRY.collect():
        for sample in metric.samples:
            if sample.name == name:
                out[sample.labels.get("reason", "")] = sample.value
    return out


def test_a_build_whose_worker_keeps_dying_fails_after_the_attempt_cap(
    tmp_path: Path, phantom_file: Path
) -> None:
    """A build killed for memory or time leaves its attempt open and its job unbuilt; the
    sweeper queues it again. After ``max_job_attempts`` deaths it fails as too large (listed in
    /failures) instead of being rebuilt forever."""
    settings = _node_db(tmp_path)
    ds = _phantom(phantom_file)
    instance_id, job_id = _queued_job(settings, ds, _default_version())
    assert jobs.score_job(settings, job_id, worker="test:1").status == "done"
    url = settings.effective_database_url
    for n in range(settings.max_job_attempts):  # each one's process died mid-build
        with session_scope(url) as session:
            session.add(JobAttempt(job_id=job_id, task="build", worker=f"dead:{n}"))
    build.build_results(settings, job_id, worker="test:2")
    with session_scope(url) as session:
        job = session.get_one(Job, job_id)
        assert job.built_at is not None and not job.results
        assert job.reason.startswith("too-large: worker died 3 times"), job.reason
        outcomes = sorted(a.outcome for a in job.attempts if a.task == "build")
        assert outcomes == ["abandoned"] * 3 + ["failed"]
    [failure] = [f for f in _failures(settings) if f["kind"] == "build"]
    assert failure["id"] == instance_id and failure["reason"] == job.reason
