"""Models as versions: bundles installed in RASCORE_HOME, one active; the node scores with the
active one (and follows an activation while it runs); ``rascore rescore`` scores a window of
stored images again with another model, and every score keeps naming its model."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import NodeProcess, PostgresServer, RedisServer, storescu, wait_for
from sqlalchemy import func, select

from scoring.model import DEFAULT_MODEL_DIR, content_hash, device_uid, identify, model_version
from worker import models_home
from worker.db import migrate
from worker.db.engine import session_scope
from worker.db.models import AuditEvent, ImageScoreRow, Instance, Job, JobStatus
from worker.settings import Settings

REPO = Path(__file__).resolve().parents[1]
PHANTOM_SEED = 5151


def make_bundle(folder: Path, variant: str) -> Path:
    """A second model, cheaply: the shipped one with a note added to settings.json (hashed
    with the weights), its card restated for the new hash: a different version, same answers."""
    shutil.copytree(DEFAULT_MODEL_DIR, folder)
    settings = json.loads((folder / "settings.json").read_text())
    settings["variant"] = variant
    (folder / "settings.json").write_text(json.dumps(settings, indent=1))
    card = json.loads((folder / "card.json").read_text())
    digest = content_hash(folder)
    card["content_hash"] = digest
    card["version"] = model_version(card["version"].split("+")[0], digest)
    card["device_uid"] = device_uid(digest)
    card["site_data"] = {"digest": "ab" * 32}  # as `rascore train --site` records it
    (folder / "card.json").write_text(json.dumps(card))
    return folder


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("bundles") / "v2", "test-v2")


def rascore(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        env={**os.environ, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def ok_json(env: dict[str, str], *args: str) -> Any:
    done = rascore(env, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# -- install, list, show, activate ----------------------------------------------------------------


def test_install_list_show_activate_round_trip(tmp_path: Path, bundle: Path) -> None:
    home = tmp_path / "home"
    env = {"RASCORE_HOME": str(home)}
    home.mkdir()
    migrate.upgrade(Settings(home=home).effective_database_url)  # so activation is audited
    default = identify().version
    v2 = identify(bundle).version
    assert v2 != default

    listed = ok_json(env, "model", "list")
    assert [(m["version"], m["builtin"], m["active"]) for m in listed] == [(default, True, True)]

    assert ok_json(env, "model", "install", str(bundle)) == {"version": v2, "installed": True}
    assert ok_json(env, "model", "install", str(bundle)) == {"version": v2, "installed": False}
    listed = ok_json(env, "model", "list")
    assert [(m["version"], m["active"]) for m in listed] == [(default, True), (v2, False)]
    second = listed[1]
    assert second["name"] == "rascore-svdh-phantom" and second["detector"] == "keypoints"
    assert second["trained_on"] == "ab" * 32 and second["installed_at"]
    assert Path(second["directory"]) == home.resolve() / "models" / v2

    activated = ok_json(env, "model", "activate", v2)
    assert activated == {"version": v2, "name": "rascore-svdh-phantom", "previous": default,
                         "audited": True}  # fmt: skip
    assert (home / "models" / "active").read_text().strip() == v2
    assert [m["active"] for m in ok_json(env, "model", "list")] == [False, True]
    shown = ok_json(env, "model", "show", v2)
    assert shown["version"] == v2 and shown["active"] and shown["card"]["version"] == v2
    assert models_home.active_model_dir(Settings(home=home)) == home.resolve() / "models" / v2

    ok_json(env, "model", "activate", default)  # back to the shipped model
    assert [m["active"] for m in ok_json(env, "model", "list")] == [True, False]
    assert models_home.active_model_dir(Settings(home=home)) == DEFAULT_MODEL_DIR
    with session_scope(Settings(home=home).effective_database_url) as session:
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.event == "model_activated").order_by(AuditEvent.id)
        ).all()
        assert [(e.detail["version"], e.detail["previous"]) for e in events] == [
            (v2, default),
            (default, v2),
        ]
        assert all(e.actor.startswith("cli:") for e in events)


def test_activating_a_tampered_or_unknown_bundle_exits_2_and_changes_nothing(
    tmp_path: Path, bundle: Path
) -> None:
    home = tmp_path / "home"
    env = {"RASCORE_HOME": str(home)}
    v2 = identify(bundle).version
    ok_json(env, "model", "install", str(bundle))
    weights = home / "models" / v2 / "jsn.pt"
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0x01  # one bit of one weight
    weights.write_bytes(bytes(data))

    for args in (("activate", v2), ("show", v2), ("activate", "9.9.9+000000000000")):
        done = rascore(env, "model", *args)
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert done.returncode == 2 and len(lines) == 1, done.stderr
        assert "Traceback" not in done.stderr
    assert "do not match the card" in rascore(env, "model", "activate", v2).stderr
    assert not (home / "models" / "active").exists()
    assert models_home.active_model_dir(Settings(home=home)) is None  # the shipped model

    # a tampered source is not installed at all
    source = make_bundle(tmp_path / "v3", "test-v3")
    (source / "erosion.pt").write_bytes(b"not weights")
    done = rascore(env, "model", "install", str(source))
    assert done.returncode == 2 and "do not match" in done.stderr
    assert sorted(p.name for p in (home / "models").iterdir()) == [v2]


def test_workers_score_a_job_with_the_model_it_names(tmp_path: Path, bundle: Path) -> None:
    """What a worker loads for a job: the installed bundle of the job's version, whatever is
    active; a version not installed falls back to the active one; RASCORE_MODEL_DIR pins."""
    home = tmp_path / "home"
    identity, _ = models_home.install(home, bundle)
    settings = Settings(home=home)
    default = identify().version
    installed = home.resolve() / "models" / identity.version
    assert models_home.settings_for_version(settings, identity.version).model_dir == installed
    assert models_home.settings_for_version(settings, default).model_dir is None
    assert models_home.settings_for_version(settings, "0.0.1+0123456789ab").model_dir is None
    models_home.activate(home, identity.version)
    assert models_home.settings_for_version(settings, default).model_dir is None
    assert models_home.settings_for_version(settings, "0.0.1+0123456789ab").model_dir == installed
    pinned = Settings(home=home, model_dir=DEFAULT_MODEL_DIR)
    assert models_home.settings_for_version(pinned, identity.version) is pinned
    assert models_home.active_model_version(settings) == identity.version


# -- the node ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    from scoring.phantom import PhantomConfig, generate_image
    from worker.lab.phantom_export import write_image

    out = tmp_path_factory.mktemp("model-phantoms")
    files = []
    for i in range(2):
        record = write_image(PHANTOM_SEED, generate_image(PHANTOM_SEED, i, PhantomConfig()), out)
        files.append(out / record["file"])
    return files


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """PostgreSQL and Redis: (database URL, broker URL)."""
    postgres = PostgresServer().start()
    redis = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield postgres.create_database("models"), redis.url
    finally:
        redis.stop()
        postgres.stop()


def _scores(url: str) -> list[tuple[int, str]]:
    with session_scope(url) as session:
        rows = session.execute(
            select(ImageScoreRow.instance_id, ImageScoreRow.model_version).order_by(
                ImageScoreRow.id
            )
        ).all()
        return [(int(i), str(v)) for i, v in rows]


def _all_done(url: str, jobs: int) -> bool:
    with session_scope(url) as session:
        done = session.scalar(select(func.count(Job.id)).where(Job.status == JobStatus.DONE))
        return int(done or 0) == jobs


def test_the_node_scores_with_the_active_model_and_rescores_a_window(
    tmp_path: Path, bundle: Path, phantoms: list[Path], servers: tuple[str, str]
) -> None:
    database_url, broker_url = servers
    home = tmp_path / "node"
    v2 = models_home.install(home, bundle)[0].version
    models_home.activate(home, v2)  # before the node starts: it scores with v2
    default = identify().version
    node = NodeProcess(
        home,
        {"RASCORE_DATABASE_URL": database_url, "RASCORE_BROKER_URL": broker_url,
         "RASCORE_WORKERS": "1"},
    ).start()  # fmt: skip
    env = node.env
    url = node.database_url
    try:
        storescu(node.port, phantoms[0])
        wait_for(lambda: _all_done(url, 1), 120, "the first image scored", every=0.5)
        [(first, version)] = _scores(url)
        assert version == v2

        # activated while the node runs: the next image is queued for, and scored by, it
        done = rascore(env, "model", "activate", default)
        assert done.returncode == 0, done.stderr
        # no waiting: whichever receiver process takes the next image reads the active model
        storescu(node.port, phantoms[1])
        wait_for(lambda: _all_done(url, 2), 120, "the second image scored", every=0.5)
        assert "now queueing new images" in node.log()
        second = next(i for i, v in _scores(url) if i != first)
        assert _scores(url)[1] == (second, default)

        # the window: the first image gets a job of the active model; the second has one
        since = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()
        summary = ok_json(env, "rescore", "--since", since)
        assert summary["model"]["version"] == default
        assert [j["instance_id"] for j in summary["jobs"]] == [first]
        assert summary["unchanged"] == [second] and summary["published"] is True
        wait_for(lambda: _all_done(url, 3), 120, "the first image scored again", every=0.5)
        today = dt.datetime.now(dt.UTC).date().isoformat()
        again = ok_json(env, "rescore", "--since", today, "--until", today)
        assert again["jobs"] == [] and sorted(again["unchanged"]) == sorted([first, second])
        none = ok_json(env, "rescore", "--since", "2000-01-01", "--until", "2000-01-02")
        assert none["jobs"] == [] and none["unchanged"] == []
        bad = rascore(env, "rescore", "--since", "yesterday")
        assert bad.returncode == 2 and "ISO" in bad.stderr
    finally:
        node.stop()

    # both scores of the first image stay, each naming its model
    assert sorted(v for i, v in _scores(url) if i == first) == sorted([v2, default])
    with session_scope(url) as session:
        assert session.scalar(select(func.count(Instance.id))) == 2
    _check_api_and_dashboard(Settings(home=home, database_url=database_url), first, v2, default)


def _check_api_and_dashboard(settings: Settings, instance_id: int, old: str, active: str) -> None:
    from fastapi.testclient import TestClient

    from worker.api.app import create_app
    from worker.db import tokens
    from worker.db.models import TokenRole

    with session_scope(settings.effective_database_url) as session:
        token = tokens.create_token(session, "auditor", TokenRole.READ)
    client = TestClient(create_app(settings))
    detail = client.get(
        f"/api/v1/instances/{instance_id}", headers={"Authorization": f"Bearer {token}"}
    ).json()
    assert detail["active_model_version"] == active
    assert [(s["model"]["version"], s["active_model"]) for s in detail["scores"]] == [
        (old, False),
        (active, True),
    ]
    assert {j["model_version"] for j in detail["jobs"]} == {old, active}

    login = client.post("/login", data={"token": token}, headers={"Origin": "http://testserver"})
    assert login.status_code == 200
    page = client.get(f"/instances/{instance_id}").text
    table = page.split('id="scores-by-model"')[1].split("</table>")[0]
    assert table.index(active) < table.index(old)  # newest first
    assert table.count("(active)") == 1 and f"{active} <strong>(active)" in table
    assert f"(model {active}," in page  # the joints shown are the active model's
