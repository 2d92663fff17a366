"""The node end to end, with real servers: dcmtk's storescu as the modality, ``rascore serve``
(SCP, Celery workers, Redis), SQLite or PostgreSQL, and Orthanc as the PACS that receives the
SR, the overlay SC and the GSPS — plus the faults a department will meet."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.uid import JPEG2000Lossless, SecondaryCaptureImageStorage
from servers import (
    NodeProcess,
    Orthanc,
    PostgresServer,
    RedisServer,
    free_port,
    storescu,
    wait_for,
)
from sqlalchemy import func, select

from scoring.model import ModelBundle
from worker.db.engine import session_scope
from worker.db.models import (
    AuditEvent,
    Delivery,
    DeliveryStatus,
    ImageScoreRow,
    Instance,
    InstanceStatus,
    Job,
    JobAttempt,
    JobStatus,
    Reception,
)

SR_STORAGE = "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
GSPS_STORAGE = "1.2.840.10008.5.1.4.1.1.11.1"
PHANTOM_SEED = 4242  # never used by the model's recipe


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Six phantom radiographs (one study each), as a modality would send them."""
    from scoring.phantom import PhantomConfig, generate_image
    from worker.lab.phantom_export import write_image

    out = tmp_path_factory.mktemp("node-phantoms")
    files = []
    for i in range(6):
        config = PhantomConfig(hands=1 + i % 2)
        record = write_image(PHANTOM_SEED, generate_image(PHANTOM_SEED, i, config), out)
        files.append(out / record["file"])
    return files


@pytest.fixture
def orthanc(tmp_path: Path) -> Iterator[Orthanc]:
    server = Orthanc(tmp_path / "orthanc").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


def _node(tmp_path: Path, name: str, **env: str) -> NodeProcess:
    return NodeProcess(tmp_path / name, {f"RASCORE_{k.upper()}": v for k, v in env.items()})


def _count(url: str, query: Any) -> int:
    with session_scope(url) as session:
        return int(session.scalar(query) or 0)


def _results_in(orthanc: Orthanc, study_uid: str) -> dict[str, int]:
    """SOP classes of what the PACS holds in one study, counted."""
    counts: dict[str, int] = {}
    for study in orthanc.get("/studies"):
        tags = orthanc.get(f"/studies/{study}")["MainDicomTags"]
        if tags.get("StudyInstanceUID") != study_uid:
            continue
        for instance in orthanc.get(f"/studies/{study}/instances"):
            sop_class = orthanc.get(f"/instances/{instance['ID']}/simplified-tags")["SOPClassUID"]
            counts[sop_class] = counts.get(sop_class, 0) + 1
    return counts


def _wait_delivered(orthanc: Orthanc, files: list[Path], timeout: float = 120) -> None:
    """Until the PACS holds, in the study of every file, its SR, SC and GSPS."""
    studies = [str(pydicom.dcmread(f, stop_before_pixels=True).StudyInstanceUID) for f in files]

    def complete() -> bool:
        return all(
            {SR_STORAGE, GSPS_STORAGE, SecondaryCaptureImageStorage}
            <= set(_results_in(orthanc, uid))
            for uid in studies
        )

    wait_for(complete, timeout, "results at the PACS", every=1.0)


def _assert_once(url: str, n_instances: int) -> None:
    """Exactly one score, one set of results and one 'scored' event per instance."""
    # the PACS may hold an object a moment before its sender has recorded the answer
    unsent = select(func.count(Delivery.id)).where(Delivery.status != DeliveryStatus.SENT)
    wait_for(lambda: _count(url, unsent) == 0, 30, "every delivery recorded as sent", every=0.5)
    with session_scope(url) as session:
        assert session.scalar(select(func.count(Instance.id))) == n_instances
        assert session.scalar(select(func.count(ImageScoreRow.id))) == n_instances
        scored = session.scalars(select(AuditEvent).where(AuditEvent.event == "scored")).all()
        assert sorted(e.instance_id for e in scored) == sorted(
            session.scalars(select(Instance.id)).all()
        )
        per_job = session.execute(
            select(Job.id, func.count(Delivery.id))
            .join(Job.results)
            .join(Delivery, isouter=True)
            .group_by(Job.id)
        ).all()
        assert len(per_job) == n_instances
        assert all(count == 3 for _, count in per_job), per_job
        assert (
            session.scalar(
                select(func.count(Delivery.id)).where(Delivery.status != DeliveryStatus.SENT)
            )
            == 0
        )


# -- the round trip ------------------------------------------------------------------------------


def test_round_trip_on_embedded_defaults(
    tmp_path: Path, orthanc: Orthanc, phantoms: list[Path], assert_dciodvfy_clean: Any
) -> None:
    """SQLite + the embedded Redis: an image sent by storescu comes back to the PACS, scored,
    as SR + SC + GSPS in the same study; a resent image is recorded but not scored again."""
    node = _node(tmp_path, "node", destinations=orthanc.destination).start()
    try:
        sent = phantoms[:2]
        output = storescu(node.port, *sent)
        assert output.count("Received Store Response (Success)") == 2, output
        _wait_delivered(orthanc, sent)
        _assert_once(node.database_url, 2)

        # the same image again: a second reception, no second job, nothing new at the PACS
        storescu(node.port, sent[0])
        wait_for(
            lambda: _count(node.database_url, select(func.count(Reception.id))) == 3, 30, "resend"
        )
        time.sleep(3)  # time enough for a wrongly queued job to show
        _assert_once(node.database_url, 2)
        assert len(orthanc.get("/instances")) == 2 * 3  # SR, SC and GSPS of each image
        with session_scope(node.database_url) as session:
            events = [e.event for e in session.scalars(select(AuditEvent).order_by(AuditEvent.id))]
            assert events.count("duplicate") == 1
            assert {"received", "queued", "scored", "built", "sent"} <= set(events)
            joints = session.scalars(select(ImageScoreRow)).all()
            default = ModelBundle.load()
            assert all(s.model_version == default.version for s in joints)
    finally:
        node.stop()
    # what the PACS got back is valid DICOM
    for instance in orthanc.get("/instances"):
        path = tmp_path / f"{instance}.dcm"
        path.write_bytes(orthanc.file(instance))
        assert_dciodvfy_clean(path)


def test_round_trip_on_postgres_and_redis_with_a_worker_killed_mid_task(
    tmp_path: Path,
    orthanc: Orthanc,
    phantoms: list[Path],
    postgres: PostgresServer,
    redis_server: RedisServer,
) -> None:
    """Production settings; the pool process scoring an image is killed with SIGKILL: the
    message comes back (acks_late, reject_on_worker_lost) and the image is scored once."""
    url = postgres.create_database("killed")
    node = _node(
        tmp_path,
        "node",
        destinations=orthanc.destination,
        database_url=url,
        broker_url=redis_server.url,
        workers="1",
    ).start()
    try:
        sent = phantoms[:3]
        storescu(node.port, *sent)

        def running_attempt() -> JobAttempt | None:
            with session_scope(url) as session:
                return session.scalar(
                    select(JobAttempt).where(JobAttempt.finished_at.is_(None)).limit(1)
                )

        attempt = wait_for(running_attempt, 60, "a scoring task to start", every=0.02)
        pid = int(attempt.worker.rsplit(":", 1)[1])
        os.kill(pid, signal.SIGKILL)
        _wait_delivered(orthanc, sent)
        _assert_once(url, 3)
        with session_scope(url) as session:
            outcomes = session.scalars(
                select(JobAttempt.outcome).where(JobAttempt.job_id == attempt.job_id)
            ).all()
        assert "abandoned" in outcomes and "done" in outcomes, outcomes
    finally:
        node.stop()


# -- faults --------------------------------------------------------------------------------------


def test_redis_restarted_while_jobs_wait_then_two_workers_share_the_work(
    tmp_path: Path,
    orthanc: Orthanc,
    phantoms: list[Path],
    postgres: PostgresServer,
    redis_server: RedisServer,
) -> None:
    """Jobs wait in Redis (no worker runs); Redis restarts; then two `rascore worker`
    processes that share only the broker, the database and the store do all the work."""
    url = postgres.create_database("restart")
    store = tmp_path / "shared-store"
    common = {
        "RASCORE_DATABASE_URL": url,
        "RASCORE_BROKER_URL": redis_server.url,
        "RASCORE_STORE_DIR": str(store),
        "RASCORE_DESTINATIONS": orthanc.destination,
    }
    node = NodeProcess(tmp_path / "node", {**common, "RASCORE_WORKERS": "0"}).start()
    workers: list[subprocess.Popen[bytes]] = []
    try:
        sent = phantoms
        storescu(node.port, *sent)
        wait_for(lambda: redis_server.queue_length("score") == len(sent), 30, "jobs in Redis")
        redis_server.restart()
        assert redis_server.queue_length("score") == len(sent)
        for i in range(2):
            home = tmp_path / f"worker-{i}"
            home.mkdir()
            workers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "worker", "worker", "--concurrency", "1"],
                    env={**os.environ, **common, "RASCORE_HOME": str(home)},
                    cwd=home,
                    stdout=open(home / "worker.log", "wb"),  # noqa: SIM115
                    stderr=subprocess.STDOUT,
                )
            )
        _wait_delivered(orthanc, sent, timeout=180)
        _assert_once(url, len(sent))
        with session_scope(url) as session:
            names = {
                a.worker.split("@")[0]
                for a in session.scalars(select(JobAttempt).where(JobAttempt.outcome == "done"))
            }
        assert len(names) == 2, f"one worker did everything: {names}"
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            try:
                w.wait(60)
            except subprocess.TimeoutExpired:
                w.kill()
        node.stop()


def test_destination_down_then_back(tmp_path: Path, phantoms: list[Path]) -> None:
    """The PACS is down: deliveries wait with backoff and say why; when it is back they go."""
    pacs = Orthanc(tmp_path / "orthanc")
    node = _node(tmp_path, "node", destinations=pacs.destination, send_retry_initial_s="1").start()
    try:
        storescu(node.port, phantoms[0])

        def failing() -> bool:
            with session_scope(node.database_url) as session:
                rows = session.scalars(select(Delivery)).all()
                return len(rows) == 3 and all(d.attempts >= 2 for d in rows)

        wait_for(failing, 90, "failed delivery attempts")
        listed = subprocess.run(
            [sys.executable, "-m", "worker", "outbox", "list", "--json"],
            env=node.env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert '"status": "pending"' in listed.stdout
        assert "Connection refused" in listed.stdout
        pacs.start()
        _wait_delivered(pacs, phantoms[:1], timeout=90)
        _assert_once(node.database_url, 1)
    finally:
        node.stop()
        pacs.stop()


def test_node_restarted_with_work_in_the_spool(
    tmp_path: Path, orthanc: Orthanc, phantoms: list[Path]
) -> None:
    """Images acknowledged by a node that stopped before scoring them are scored, once, by
    the next start."""
    home = tmp_path / "node"
    first = NodeProcess(
        home, {"RASCORE_WORKERS": "0", "RASCORE_DESTINATIONS": orthanc.destination}
    ).start()
    storescu(first.port, *phantoms[:2])
    first.stop()
    assert _count(first.database_url, select(func.count(ImageScoreRow.id))) == 0
    second = NodeProcess(
        home,
        {
            "RASCORE_DICOM_PORT": str(free_port()),
            "RASCORE_DESTINATIONS": orthanc.destination,
        },
    ).start()
    try:
        _wait_delivered(orthanc, phantoms[:2])
        _assert_once(second.database_url, 2)
    finally:
        second.stop()


# -- bad input -----------------------------------------------------------------------------------


def _send(port: int, ds: pydicom.Dataset, aet: str = "GOODSCU") -> int | None:
    """C-STORE one data set with pynetdicom; the status, or None if no association."""
    from pynetdicom import AE, build_context

    ae = AE(ae_title=aet)
    ae.requested_contexts = [build_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)]
    assoc = ae.associate("127.0.0.1", port, ae_title="RASCORE")
    if not assoc.is_established:
        return None
    try:
        if not assoc.accepted_contexts:
            return None
        response = assoc.send_c_store(ds)
        return int(response.Status) if "Status" in response else None
    finally:
        assoc.release()


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
def test_bad_input_gets_the_right_status_and_the_node_goes_on(
    tmp_path: Path, orthanc: Orthanc, phantoms: list[Path]
) -> None:
    import socket

    from pydicom.uid import UID

    node = _node(
        tmp_path, "node", destinations=orthanc.destination, allowed_aets="GOODSCU,STORESCU"
    ).start()
    try:
        good = pydicom.dcmread(phantoms[1])

        # garbage on the socket
        with socket.create_connection(("127.0.0.1", node.port)) as s:
            s.sendall(os.urandom(4096))
        # an unknown calling AE title: association rejected
        assert "Association Rejected" in storescu(node.port, phantoms[0], aet="STRANGER")
        # a SOP Instance UID built to escape the spool: refused, nothing written outside
        hostile = pydicom.dcmread(phantoms[1])
        hostile.SOPInstanceUID = UID("../../../../tmp/rascore-owned")
        hostile.file_meta.MediaStorageSOPInstanceUID = hostile.SOPInstanceUID
        assert _send(node.port, hostile) == 0xC000
        assert not Path("/tmp/rascore-owned").exists()
        # pixel data cut short: accepted (it is DICOM), then failed with the reason
        truncated = pydicom.dcmread(phantoms[2])
        truncated.PixelData = truncated.PixelData[: len(truncated.PixelData) // 3]
        assert _send(node.port, truncated) == 0x0000
        # no pixel data at all: accepted, then failed with the reason
        empty = pydicom.dcmread(phantoms[3])
        del empty.PixelData
        assert _send(node.port, empty) == 0x0000
        # a SOP class that is not a radiograph at all (MR): no presentation context for it
        mr = pydicom.dcmread(phantoms[5])
        mr.SOPClassUID = mr.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
        assert _send(node.port, mr) is None
        # a secondary capture: accepted and recorded as skipped, never scored
        storescu(node.port, phantoms[4])  # (a real image, to compare with below)
        sc = pydicom.dcmread(phantoms[5])
        sc.SOPClassUID = SecondaryCaptureImageStorage
        sc.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
        sc.SOPInstanceUID = pydicom.uid.generate_uid()
        sc.file_meta.MediaStorageSOPInstanceUID = sc.SOPInstanceUID
        assert _send(node.port, sc) == 0x0000
        # a JPEG 2000 codestream of 16000² behind a header of 100²: refused on arrival
        from test_decode_bombs import j2k_codestream, radiograph, with_frame

        bomb = with_frame(radiograph(), JPEG2000Lossless, j2k_codestream(16000, 16000))
        assert _send(node.port, bomb) == 0xC000
        # a header stripped to the UIDs and the pixel module (a de-identification tool's, a
        # digitiser's): nothing says what it shows, so it is scored and all three come back
        stripped = pydicom.dcmread(phantoms[0])  # (refused above, with the stranger)
        keep = {"SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID",
                "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit", "PixelData",
                "PixelRepresentation", "SamplesPerPixel", "PhotometricInterpretation"}  # fmt: skip
        for element in list(stripped):
            if element.keyword not in keep:
                del stripped[element.tag]
        stripped_path = tmp_path / "stripped.dcm"
        stripped.save_as(stripped_path, enforce_file_format=True)
        assert _send(node.port, stripped) == 0x0000

        # and the next good image is scored as ever
        assert _send(node.port, good) == 0x0000
        _wait_delivered(orthanc, [phantoms[1], phantoms[4], stripped_path])
        url = node.database_url

        def settled() -> bool:
            with session_scope(url) as session:
                return not session.scalars(
                    select(Job).where(Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]))
                ).all()

        wait_for(settled, 60, "every job to end")
        with session_scope(url) as session:
            by_uid = {i.sop_instance_uid: i for i in session.scalars(select(Instance))}
            assert by_uid[str(truncated.SOPInstanceUID)].status == InstanceStatus.FAILED
            assert "pixel" in by_uid[str(truncated.SOPInstanceUID)].reason.lower()
            assert by_uid[str(empty.SOPInstanceUID)].status == InstanceStatus.FAILED
            assert "pixel" in by_uid[str(empty.SOPInstanceUID)].reason.lower()
            assert by_uid[str(sc.SOPInstanceUID)].status == InstanceStatus.SKIPPED
            assert by_uid[str(good.SOPInstanceUID)].status == InstanceStatus.SCORED
            assert by_uid[str(stripped.SOPInstanceUID)].status == InstanceStatus.SCORED
            assert str(bomb.SOPInstanceUID) not in by_uid
            assert "../" not in "".join(i.store_key for i in by_uid.values())
            assert str(mr.SOPInstanceUID) not in by_uid
        assert node.process is not None and node.process.poll() is None
    finally:
        node.stop()
