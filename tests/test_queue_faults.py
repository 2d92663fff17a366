"""The job queue under faults (issue 11, findings 2b, 7, 8 and 9), with real parts: ``rascore
serve``, Celery workers, Redis, SQLite and pynetdicom as the modality.

- a pool child that keeps dying on an image ends the job ``failed`` after a few attempts
  instead of looping for ever;
- a message the broker lost is published again within about a minute (here: seconds);
- a store outage longer than the in-task retries delays an acknowledged image, never fails it;
- a black-holed broker never hangs a C-STORE: the image is filed and acknowledged anyway.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pydicom
import pytest
import redis as redis_client
from servers import POSTGRES_BIN, NodeProcess, PostgresServer, RedisServer, free_port, wait_for
from sqlalchemy import select

from worker.db import migrate
from worker.db.engine import session_scope
from worker.db.models import (
    AuditEvent,
    ImageScoreRow,
    Instance,
    InstanceStatus,
    Job,
    JobAttempt,
    JobStatus,
    Study,
    utcnow,
)
from worker.settings import Settings

PHANTOM_SEED = 4343


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    from scoring.phantom import PhantomConfig, generate_image
    from worker.lab.phantom_export import write_image

    out = tmp_path_factory.mktemp("queue-phantoms")
    files = []
    for i in range(2):
        record = write_image(PHANTOM_SEED, generate_image(PHANTOM_SEED, i, PhantomConfig()), out)
        files.append(out / record["file"])
    return files


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


def _node(home: Path, env: dict[str, str] | None = None, **settings: str) -> NodeProcess:
    """``rascore serve`` without its HTTP API (not what these tests are about)."""
    return NodeProcess(home, {"RASCORE_API_PORT": "0", **(env or {}), **_env(**settings)})


def _env(**env: str) -> dict[str, str]:
    return {f"RASCORE_{k.upper()}": v for k, v in env.items()}


def _send(port: int, path: Path, timeout: float = 30) -> int | None:
    """C-STORE one file with pynetdicom; its status, or None when none came back."""
    from pynetdicom import AE, build_context

    ds = pydicom.dcmread(path)
    ae = AE(ae_title="MODALITY")
    ae.dimse_timeout = timeout
    ae.acse_timeout = timeout
    ae.requested_contexts = [build_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)]
    assoc = ae.associate("127.0.0.1", port, ae_title="RASCORE")
    assert assoc.is_established
    try:
        response = assoc.send_c_store(ds)
        return int(response.Status) if "Status" in response else None
    finally:
        if assoc.is_established:
            assoc.release()


def _job(url: str) -> Job | None:
    with session_scope(url) as session:
        return session.scalar(select(Job).order_by(Job.id).limit(1))


def _attempts(url: str) -> list[JobAttempt]:
    with session_scope(url) as session:
        return list(session.scalars(select(JobAttempt).order_by(JobAttempt.id)))


def _queued_job_ids(redis: RedisServer) -> list[int]:
    raw: list[bytes] = redis_client.Redis(port=redis.port).lrange("score", 0, -1)  # type: ignore[assignment]
    return [json.loads(base64.b64decode(json.loads(m)["body"]))[0][0] for m in raw]


def _extra_worker(home: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``rascore worker`` on the score queue, as on a second machine."""
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "worker.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "worker", "worker", "--queues", "score", "--concurrency", "1"],
            env={**os.environ, **env, "RASCORE_HOME": str(home)},
            cwd=home,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop_worker(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


# -- finding 9: a black-holed broker -------------------------------------------------------------


def test_a_black_holed_broker_never_hangs_a_c_store(tmp_path: Path, phantoms: list[Path]) -> None:
    """The broker accepts TCP connections and never answers: the C-STORE is still answered
    Success within a few seconds (the image is filed; the sweeper publishes it later)."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(64)  # the kernel completes the handshakes; nobody ever reads or writes
    url = f"redis://127.0.0.1:{hole.getsockname()[1]}/0"
    node = _node(tmp_path / "node", broker_url=url, workers="0").start()
    try:
        for path in phantoms:
            started = time.monotonic()
            status = _send(node.port, path, timeout=30)
            took = time.monotonic() - started
            assert status == 0x0000, (status, took)
            assert took < 8, f"C-STORE took {took:.1f} s with a black-holed broker"
        job = _job(node.database_url)
        assert job is not None and job.status == JobStatus.QUEUED
        assert job.enqueued_at is None  # not on the broker: the sweeper owes it
    finally:
        node.stop()
        hole.close()


# -- finding 7: a message the broker lost ----------------------------------------------------------


def _job_row(session: Any, n: int, enqueued_s_ago: float | None) -> Job:
    import datetime as dt

    study = session.scalar(select(Study)) or Study(study_instance_uid="1.2.3", study_date=None)
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
    enqueued = None if enqueued_s_ago is None else utcnow() - dt.timedelta(seconds=enqueued_s_ago)
    job = Job(
        instance=instance,
        model_name="m",
        model_version="v",
        status=JobStatus.QUEUED,
        enqueued_at=enqueued,
    )
    session.add(job)
    session.flush()
    return job


@pytest.fixture
def celery_on(redis_server: RedisServer) -> Iterator[RedisServer]:
    from worker.jobs.celery_app import configure

    configure(Settings(), broker_url=redis_server.url)
    yield redis_server
    configure(Settings())


def test_reconcile_publishes_only_what_the_broker_lost(tmp_path: Path, celery_on: Any) -> None:
    """Queued jobs older than the grace: one whose message waits in the queue, one whose
    message a live worker holds (unacked), one whose message was lost, one held 'unacked' for
    longer than any live worker holds a message (its worker died); plus one lost job still
    within its grace. Only the lost and the orphaned ones are published again."""
    from worker.jobs.queueing import enqueue_score
    from worker.node.sweeper import reconcile

    redis = celery_on
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate.upgrade(url)
    with session_scope(url) as session:
        ids = [_job_row(session, n, None).id for n in range(5)]
    waiting, held, lost, orphaned, recent = ids
    for job_id in ids:
        assert enqueue_score(url, job_id)
    client = redis_client.Redis(port=redis.port)
    messages: dict[int, bytes] = {}
    while (raw := cast(bytes | None, client.rpop("score"))) is not None:
        messages[json.loads(base64.b64decode(json.loads(raw)["body"]))[0][0]] = raw
    assert sorted(messages) == sorted(ids)
    client.lpush("score", messages[waiting])
    # what kombu's Redis transport keeps for a delivered, not yet acknowledged message
    for job, tag, delivered in ((held, "tag-held", time.time()), (orphaned, "tag-old", 1.0)):
        payload = json.dumps([json.loads(messages[job]), "", "score"])
        client.hset("unacked", tag, payload)
        client.zadd("unacked_index", {tag: delivered})
    with session_scope(url) as session:
        old = utcnow().replace(year=2000)
        for row in session.scalars(select(Job).where(Job.id != recent)):
            row.enqueued_at = old

    assert reconcile(url, after_s=60, hold_s=900) == 2
    assert sorted(_queued_job_ids(redis)) == sorted([waiting, lost, orphaned])
    assert reconcile(url, after_s=60, hold_s=900) == 0  # just published: within the grace


def test_reconcile_survives_a_broker_that_is_down(tmp_path: Path) -> None:
    from worker.jobs.celery_app import configure
    from worker.node.sweeper import reconcile

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate.upgrade(url)
    with session_scope(url) as session:
        _job_row(session, 0, 3600)
    configure(Settings(), broker_url=f"redis://127.0.0.1:{free_port()}/0")
    try:
        started = time.monotonic()
        assert reconcile(url, after_s=60, hold_s=900) == 0
        assert time.monotonic() - started < 10
    finally:
        configure(Settings())


def test_a_job_the_broker_lost_is_published_again_and_scored(
    tmp_path: Path, phantoms: list[Path], redis_server: RedisServer
) -> None:
    """The message is deleted from Redis behind the node's back (an AOF that lost its last
    second, a broker without persistence): the node publishes the job again within its
    reconciliation grace, and a worker scores it."""
    store = tmp_path / "node" / "store"
    env = _env(broker_url=redis_server.url, reconcile_after_s="3", store_dir=str(store))
    node = _node(tmp_path / "node", env, workers="0").start()
    worker = None
    try:
        assert _send(node.port, phantoms[0]) == 0x0000
        wait_for(lambda: redis_server.queue_length("score") == 1, 20, "the job on the broker")
        redis_client.Redis(port=redis_server.port).flushall()
        job = _job(node.database_url)
        assert job is not None
        wait_for(lambda: _queued_job_ids(redis_server) == [job.id], 30, "the job published again")
        worker = _extra_worker(
            tmp_path / "worker", {**env, "RASCORE_DATABASE_URL": node.database_url}
        )

        def done() -> bool:
            found = _job(node.database_url)
            return found is not None and found.status == JobStatus.DONE

        wait_for(done, 90, "the job scored", every=0.5)
    finally:
        if worker is not None:
            _stop_worker(worker)
        node.stop()


# -- finding 8: an outage longer than the in-task retries ------------------------------------------


def test_a_store_outage_longer_than_the_retries_delays_and_never_fails(
    tmp_path: Path, phantoms: list[Path], redis_server: RedisServer
) -> None:
    """The store goes away (an NFS mount gone: the folder is not a folder) after the image was
    acknowledged, for longer than the worker's in-task retries last: the job waits (the
    sweeper publishes it again), and is scored once the store is back."""
    store = tmp_path / "node" / "store"
    env = _env(
        broker_url=redis_server.url,
        store_dir=str(store),
        max_task_retries="2",
        task_retry_initial_s="0.5",
        task_retry_max_s="1",
        reconcile_after_s="2",
    )
    node = _node(tmp_path / "node", env, workers="0").start()
    url = node.database_url
    worker = None
    away = tmp_path / "store-away"
    try:
        assert _send(node.port, phantoms[0]) == 0x0000
        store.rename(away)
        store.write_bytes(b"")  # NotADirectoryError for every read: the store is unavailable
        worker = _extra_worker(tmp_path / "worker", {**env, "RASCORE_DATABASE_URL": url})

        def tried_often_or_failed() -> bool:
            job = _job(url)
            retries = [a for a in _attempts(url) if a.outcome == "retry"]
            return (job is not None and job.status == JobStatus.FAILED) or len(retries) >= 6

        wait_for(tried_often_or_failed, 90, "six tries against the missing store", every=0.5)
        job = _job(url)
        assert job is not None and job.status != JobStatus.FAILED, job and job.reason
        store.unlink()
        away.rename(store)

        def done() -> bool:
            found = _job(url)
            return found is not None and found.status in (JobStatus.DONE, JobStatus.FAILED)

        wait_for(done, 60, "the job to end", every=0.5)
        job = _job(url)
        assert job is not None and job.status == JobStatus.DONE, job and job.reason
        with session_scope(url) as session:
            assert session.scalar(select(ImageScoreRow.id)) is not None
            events = list(session.scalars(select(AuditEvent.event)))
            assert "failed" not in events
            instance = session.scalar(select(Instance))
            assert instance is not None and instance.status == InstanceStatus.SCORED
    finally:
        if store.is_file():
            store.unlink()
        if away.exists() and not store.exists():
            away.rename(store)
        if worker is not None:
            _stop_worker(worker)
        node.stop()
        shutil.rmtree(tmp_path / "worker", ignore_errors=True)


def _pg_ctl(server: PostgresServer, action: str) -> None:
    """Stop or start a test cluster in place (its data kept), as an outage would."""
    options = f"-p {server.port} -h 127.0.0.1 -k {server.directory} -c fsync=off"
    server._run(
        str(POSTGRES_BIN / "pg_ctl"), "-D", str(server.data), "-w", "-m", "fast", "-l",
        str(server.directory / "postgres.log"), "-o", options, action,
    )  # fmt: skip


def test_a_database_outage_longer_than_the_retries_delays_and_never_fails(
    tmp_path: Path, phantoms: list[Path], redis_server: RedisServer
) -> None:
    """PostgreSQL stops after the image was acknowledged, for longer than the worker's in-task
    retries last: the job is left unfinished, and once the database is back the sweeper
    publishes it again and it is scored."""
    postgres = PostgresServer().start()
    try:
        url = postgres.create_database("outage")
        store = tmp_path / "node" / "store"
        env = _env(
            broker_url=redis_server.url,
            database_url=url,
            store_dir=str(store),
            max_task_retries="2",
            task_retry_initial_s="0.5",
            task_retry_max_s="1",
            reconcile_after_s="2",
        )
        node = _node(tmp_path / "node", env, workers="0").start()
        worker = None
        try:
            assert _send(node.port, phantoms[1]) == 0x0000
            _pg_ctl(postgres, "stop")
            worker = _extra_worker(tmp_path / "worker", env)
            log = tmp_path / "worker" / "worker.log"
            wait_for(
                lambda: log.read_text(errors="replace").count("retry: Retry in") >= 2,
                90,
                "the worker to retry against the stopped database",
                every=0.5,
            )
            time.sleep(8)  # the outage outlasts every retry (and the 2 + 4 s of the old policy)
            _pg_ctl(postgres, "start")

            def ended() -> Job | None:
                job = _job(url)
                ended = job is not None and job.status in (JobStatus.DONE, JobStatus.FAILED)
                return job if ended else None

            job = wait_for(ended, 60, "the job to end", every=0.5)
            assert job.status == JobStatus.DONE, job.reason
        finally:
            if worker is not None:
                _stop_worker(worker)
            node.stop()
    finally:
        postgres.stop()


# -- finding 2b: a pool child that keeps dying ---------------------------------------------------


def test_a_job_whose_worker_keeps_dying_fails_after_the_attempt_cap(
    tmp_path: Path, phantoms: list[Path]
) -> None:
    """Each time a pool child starts scoring the image it is killed (as the kernel's OOM killer
    would): after RASCORE_MAX_JOB_ATTEMPTS deaths the next delivery fails the job with a reason
    that says so, instead of scoring (or dying) for ever."""
    node = _node(
        tmp_path / "node", workers="1", max_job_attempts="2", reconcile_after_s="3"
    ).start()
    url = node.database_url
    killed: list[int] = []
    try:
        assert _send(node.port, phantoms[1]) == 0x0000

        def open_attempt() -> JobAttempt | None:
            return next(
                (a for a in _attempts(url) if a.finished_at is None and a.id not in killed), None
            )

        for _ in range(2):
            attempt = wait_for(open_attempt, 90, "a scoring attempt to start", every=0.02)
            os.kill(int(attempt.worker.rsplit(":", 1)[1]), signal.SIGKILL)
            killed.append(attempt.id)

        def ended() -> Job | None:
            job = _job(url)
            return (
                job
                if job is not None and job.status in (JobStatus.DONE, JobStatus.FAILED)
                else None
            )

        job = wait_for(ended, 90, "the job to end", every=0.2)
        assert job.status == JobStatus.FAILED, "scored after its workers died twice"
        assert "worker died 2 times" in job.reason and "too large" in job.reason, job.reason
        assert len(_attempts(url)) == 2  # no third start
        with session_scope(url) as session:
            instance = session.scalar(select(Instance))
            assert instance is not None and instance.status == InstanceStatus.FAILED
    finally:
        node.stop()


@pytest.mark.parametrize(
    ("soft", "hard", "expected"),
    [
        ("0.3", "60", "too-large: "),  # interrupted: the task fails the job itself
        ("0", "0.5", "too-large: scoring took longer than 0.5 s"),  # killed: the parent does
    ],
    ids=["soft", "hard"],
)
def test_a_job_past_its_time_limit_fails_as_too_large(
    tmp_path: Path, phantoms: list[Path], soft: str, hard: str, expected: str
) -> None:
    """A pool child past the soft time limit is interrupted, past the hard one killed; either
    way the job fails at once with a reason that says the image is too large."""
    node = _node(
        tmp_path / "node", workers="1", task_soft_time_limit_s=soft, task_time_limit_s=hard
    ).start()
    url = node.database_url
    try:
        assert _send(node.port, phantoms[0]) == 0x0000

        def ended() -> Job | None:
            job = _job(url)
            ended = job is not None and job.status in (JobStatus.DONE, JobStatus.FAILED)
            return job if ended else None

        job = wait_for(ended, 60, "the job to end", every=0.2)
        assert job.status == JobStatus.FAILED and job.reason.startswith(expected), job.reason
        assert all(a.finished_at is not None for a in _attempts(url))
    finally:
        node.stop()


def test_a_pool_child_past_its_memory_cap_is_replaced(tmp_path: Path, phantoms: list[Path]) -> None:
    """A pool child that grew past RASCORE_WORKER_MAX_MEMORY_MB is replaced after its task
    (here every child: 1 MB), so one huge image does not leave a bloated worker behind."""
    node = _node(tmp_path / "node", workers="1", worker_max_memory_mb="1").start()
    url = node.database_url
    try:
        for path in phantoms:
            assert _send(node.port, path) == 0x0000

        def both_done() -> bool:
            with session_scope(url) as session:
                statuses = list(session.scalars(select(Job.status)))
            return statuses == [JobStatus.DONE] * 2

        wait_for(both_done, 90, "both jobs scored", every=0.5)
        pids = {a.worker.rsplit(":", 1)[1] for a in _attempts(url) if a.task == "score"}
        assert len(pids) == 2, "one pool child scored both images"
    finally:
        node.stop()


def test_worker_limits_come_from_the_settings() -> None:
    """Pool children get a soft and a hard time limit and a memory cap (KiB, as Celery wants)."""
    from worker.jobs.celery_app import configure

    settings = Settings(task_soft_time_limit_s=100, task_time_limit_s=130, worker_max_memory_mb=512)
    try:
        app = configure(settings)
        assert app.conf.task_soft_time_limit == 100
        assert app.conf.task_time_limit == 130
        assert app.conf.worker_max_memory_per_child == 512 * 1024
        # a soft limit not below the hard one would delay the hard one: none then
        app = configure(Settings(task_soft_time_limit_s=200, task_time_limit_s=130))
        assert app.conf.task_soft_time_limit is None
        assert app.conf.task_time_limit == 130
    finally:
        configure(Settings())
