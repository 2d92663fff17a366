"""Issue 11, findings 5, 10 and 13: the HTTP API and dashboard under load and attack.

- 5: ``/healthz``, ``/login`` and GET routes never hold SQLite's write lock while they read or
  render; a flood of them leaves the SCP's C-STOREs their 0x0000.
- 10: CSV exports stream, page by key (no OFFSET, no COUNT per page).
- 13: dashboard sessions live on the server, expire, end at logout and with their token;
  dashboard POSTs check Origin; CSV cells cannot carry formulas.

In-process tests drive the real app (FastAPI's TestClient) on a real, migrated SQLite file;
the flood test runs ``rascore serve`` and a pynetdicom SCU.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from fastapi.testclient import TestClient
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid
from servers import NodeProcess, free_port
from sqlalchemy import event, insert, select, update

from worker.api.app import create_app
from worker.db import migrate, tokens
from worker.db.engine import engine_for, session_scope
from worker.db.models import (
    AuditEvent,
    ImageScoreRow,
    Instance,
    InstanceStatus,
    Job,
    JobStatus,
    JointScoreRow,
    Reception,
    ResultObject,
    Study,
    TokenRole,
)
from worker.settings import Settings

ORIGIN = {"Origin": "http://testserver"}


# -- helpers -----------------------------------------------------------------------------------


def _sc_file(path: Path, size: int = 2400) -> None:
    """An RGB Secondary Capture big enough that rendering it as PNG takes a while."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = (
        meta.MediaStorageSOPClassUID,
        meta.MediaStorageSOPInstanceUID,
    )
    ds.Rows = ds.Columns = size
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    rng = np.random.default_rng(5)
    ds.PixelData = rng.integers(0, 255, (size, size, 3), dtype=np.uint8).tobytes()
    ds.save_as(path, enforce_file_format=True)


def _fill(
    url: str,
    store: Path,
    patients: list[str],
    *,
    calling_ae: str = "MODALITY",
    joints: int = 2,
    overlay: bool = False,
) -> list[int]:
    """One scored instance per entry of ``patients`` (a study each), written in bulk; returns
    the instance ids. With ``overlay`` the first instance gets an SC result file."""
    now = dt.datetime.now(dt.UTC)
    n = len(patients)
    with session_scope(url) as s:
        first = (s.scalar(select(Study.id).order_by(Study.id.desc()).limit(1)) or 0) + 1
        ids = list(range(first, first + n))
        s.execute(
            insert(Study),
            [
                {"id": i, "study_instance_uid": generate_uid(), "patient_id": p}
                for i, p in zip(ids, patients, strict=True)
            ],
        )
        s.execute(
            insert(Instance),
            [
                {
                    "id": i, "study_id": i, "sop_instance_uid": generate_uid(),
                    "sop_class_uid": "1.2.840.10008.5.1.4.1.1.1.1", "sha256": f"{i:064x}",
                    "transfer_syntax": ExplicitVRLittleEndian, "size": 1,
                    "store_key": f"instances/{i}.dcm", "status": InstanceStatus.SCORED,
                    "received_at": now,
                }
                for i in ids
            ],
        )  # fmt: skip
        s.execute(
            insert(Reception),
            [
                {"instance_id": i, "calling_ae_title": calling_ae, "calling_host": "127.0.0.1",
                 "called_ae_title": "RASCORE", "received_at": now}
                for i in ids
            ],
        )  # fmt: skip
        s.execute(
            insert(Job),
            [
                {"id": i, "instance_id": i, "model_name": "m", "model_version": "1.0",
                 "status": JobStatus.DONE, "created_at": now, "built_at": now}
                for i in ids
            ],
        )  # fmt: skip
        s.execute(
            insert(ImageScoreRow),
            [
                {
                    "id": i, "job_id": i, "instance_id": i, "model_name": "m",
                    "model_version": "1.0", "model_device_uid": "2.25.1", "status": "ok",
                    "total_jsn": joints, "total_erosion": 0, "joints_scored": joints,
                    "hands": {"L": {}}, "missing": {"labels": []}, "timings_ms": {},
                    "scored_at": now,
                }
                for i in ids
            ],
        )  # fmt: skip
        labels = ["L_PIP2", "L_PIP3", "L_PIP4", "L_PIP5", "L_IP"][:joints]
        s.execute(
            insert(JointScoreRow),
            [
                {
                    "image_score_id": i, "label": label, "box_x": 1, "box_y": 2, "box_w": 3,
                    "box_h": 4, "jsn": 1, "erosion": 0, "assessable": True, "reason": "",
                    "jsn_probs": {"p": [0, 1, 0, 0, 0]},
                    "erosion_probs": {"p": [1, 0, 0, 0, 0, 0]}, "found_by": "test",
                }
                for i in ids
                for label in labels
            ],
        )  # fmt: skip
        if overlay:
            key = f"results/{ids[0]}-sc.dcm"
            (store / key).parent.mkdir(parents=True, exist_ok=True)
            _sc_file(store / key)
            s.add(
                ResultObject(
                    job_id=ids[0],
                    kind="sc",
                    sop_class_uid=SecondaryCaptureImageStorage,
                    sop_instance_uid=generate_uid(),
                    store_key=key,
                )
            )
    return ids


@dataclass
class Api:
    settings: Settings
    url: str
    client: TestClient
    tokens: dict[str, str] = field(default_factory=dict)

    def bearer(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"}

    def login(self, name: str) -> str:
        """Log in through the form; returns the cookie's value."""
        response = self.client.post(
            "/login", data={"token": self.tokens[name]}, headers=ORIGIN, follow_redirects=False
        )
        assert response.status_code == 303, response.text
        cookie = response.cookies.get(COOKIE)
        assert cookie
        return cookie


COOKIE = "rascore_session"


def _api(home: Path, **overrides: Any) -> Api:
    settings = Settings(home=home, api_port=0, **overrides)
    url = settings.effective_database_url
    migrate.upgrade(url)
    api = Api(settings, url, TestClient(create_app(settings)))
    with session_scope(url) as s:
        api.tokens["reader"] = tokens.create_token(s, "reader", TokenRole.READ)
        api.tokens["admin"] = tokens.create_token(s, "admin", TokenRole.OPERATOR)
    return api


@pytest.fixture
def api(tmp_path: Path) -> Api:
    return _api(tmp_path / "home")


class Transactions:
    """Every transaction the app's engine runs, with its statements: (mode, [statements])."""

    def __init__(self, url: str) -> None:
        self.engine = engine_for(url)
        self.done: list[tuple[str, list[str]]] = []
        self._open: dict[int, tuple[str, list[str]]] = {}
        self._lock = threading.Lock()
        self.params: list[Any] = []  #: of each statement, in the order they ran

    def _begin(self, conn: Any) -> None:
        mode = "read" if conn.get_execution_options().get("rascore_read_only") else "write"
        with self._lock:
            self._open[id(conn.connection.dbapi_connection)] = (mode, [])

    def _statement(self, conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        with self._lock:
            found = self._open.get(id(conn.connection.dbapi_connection))
            if found is not None and not statement.startswith("BEGIN"):
                found[1].append(" ".join(statement.split()))
                self.params.append(params)

    def _end(self, conn: Any) -> None:
        with self._lock:
            found = self._open.pop(id(conn.connection.dbapi_connection), None)
            if found is not None:
                self.done.append(found)

    def __enter__(self) -> Transactions:
        event.listen(self.engine, "begin", self._begin)
        event.listen(self.engine, "before_cursor_execute", self._statement)
        event.listen(self.engine, "commit", self._end)
        event.listen(self.engine, "rollback", self._end)
        return self

    def __exit__(self, *_: Any) -> None:
        event.remove(self.engine, "begin", self._begin)
        event.remove(self.engine, "before_cursor_execute", self._statement)
        event.remove(self.engine, "commit", self._end)
        event.remove(self.engine, "rollback", self._end)

    @property
    def writes(self) -> list[list[str]]:
        return [statements for mode, statements in self.done if mode == "write"]

    @property
    def statements(self) -> list[str]:
        return [s for _, statements in self.done for s in statements]


# -- finding 5: read-only sessions -------------------------------------------------------------


def test_health_and_login_take_no_write_transaction(api: Api) -> None:
    with Transactions(api.url) as seen:
        assert api.client.get("/healthz").status_code in (200, 503)
        assert api.client.get("/login").status_code == 200
        wrong = api.client.post("/login", data={"token": "rsc_wrong"}, headers=ORIGIN)
        assert "not valid" in wrong.text
    assert seen.done, "the health check reads the database"
    assert seen.writes == []


def test_get_routes_read_in_read_only_sessions_and_audit_in_a_short_write(api: Api) -> None:
    """Every write transaction a GET makes is the audit insert alone (or the session's touch):
    no SELECT inside it, so no read and no rendering ever holds the write lock."""
    [first, *_] = _fill(api.url, api.settings.effective_store_dir, ["P1", "P2"], overlay=True)
    cookie = api.login("reader")
    api.client.cookies.set(COOKIE, cookie)
    bearer = api.bearer("reader")
    gets = [
        "/api/v1/instances", "/api/v1/studies", f"/api/v1/instances/{first}",
        f"/api/v1/instances/{first}/overlay.png", "/api/v1/patients/P1/scores",
        "/api/v1/audit", "/api/v1/failures", "/api/v1/export/scores.csv",
        "/api/v1/export/audit.csv",
    ]  # fmt: skip
    with Transactions(api.url) as seen:
        for path in gets:
            response = api.client.get(path, headers=bearer)
            assert response.status_code == 200, (path, response.text)
        for path in ("/", f"/instances/{first}", "/failures"):
            assert api.client.get(path).status_code == 200, path
    assert len(seen.writes) >= len(gets) + 3  # each audited
    for statements in seen.writes:
        assert statements and all(
            s.startswith(("INSERT INTO audit_events", "UPDATE dashboard_sessions"))
            for s in statements
        ), statements
    assert any("FROM result_objects" in s for s in seen.statements)  # read, outside a write


DX = pydicom.uid.UID("1.2.840.10008.5.1.4.1.1.1.1")  #: DX for presentation
ALLOWED_IN_A_GET = ("INSERT INTO audit_events", "UPDATE dashboard_sessions")


def _hold_write_lock(db: Path, seconds: float) -> threading.Thread:
    """Another process's writer: BEGIN IMMEDIATE on the file, held for ``seconds``."""
    ready = threading.Event()

    def hold() -> None:
        con = sqlite3.connect(db, isolation_level=None, timeout=10)
        con.execute("BEGIN IMMEDIATE")
        ready.set()
        time.sleep(seconds)
        con.execute("ROLLBACK")
        con.close()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert ready.wait(10)
    return thread


def _get(url: str, headers: dict[str, str] | None = None, timeout: float = 30) -> int:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def _post(url: str, data: bytes, headers: dict[str, str], timeout: float = 30) -> int:
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def _dx_dataset(i: int) -> pydicom.Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DX
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = (
        meta.MediaStorageSOPClassUID,
        meta.MediaStorageSOPInstanceUID,
    )
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID, ds.PatientName, ds.Modality = f"FLOOD-{i}", "Flood^Test", "DX"
    ds.BodyPartExamined = "CHEST"  # filed and skipped: no scoring needed here
    ds.Rows = ds.Columns = 64
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = np.full((64, 64), i % 4000, dtype=np.uint16).tobytes()
    return ds


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NodeProcess, str, int]]:
    """``rascore serve`` on SQLite with no scoring workers, one instance with an overlay."""
    api_port = free_port()
    home = tmp_path_factory.mktemp("flood-node")
    process = NodeProcess(home, {"RASCORE_API_PORT": str(api_port), "RASCORE_WORKERS": "0"})
    process.start()
    try:
        store = home / "store"
        [first] = _fill(process.database_url, store, ["P-OVERLAY"], overlay=True)
        yield process, f"http://127.0.0.1:{api_port}", first
    finally:
        process.stop()


def test_health_and_login_answer_while_another_writer_holds_the_lock(
    served: tuple[NodeProcess, str, int],
) -> None:
    process, base, _ = served
    holder = _hold_write_lock(process.home / "rascore.db", 6)
    started = time.monotonic()
    try:
        assert _get(f"{base}/healthz", timeout=4) in (200, 503)
        assert _get(f"{base}/login", timeout=4) == 200
        headers = {"Origin": base, "Content-Type": "application/x-www-form-urlencoded"}
        assert _post(f"{base}/login", b"token=rsc_wrong", headers, timeout=4) == 200
    finally:
        holder.join()
    assert time.monotonic() - started < 8


def test_a_flood_of_gets_leaves_c_stores_their_success(
    served: tuple[NodeProcess, str, int],
) -> None:
    """Eight threads flood health, login, queries, the overlay and the dashboard while a
    PACS sends twelve images: each C-STORE gets 0x0000 within 5 s."""
    from pynetdicom import AE

    process, base, first = served
    with session_scope(process.database_url) as s:
        token = tokens.create_token(s, f"flood-{time.monotonic_ns()}", TokenRole.READ)
    bearer = {"Authorization": f"Bearer {token}"}
    paths = [
        ("/healthz", {}), ("/login", {}), ("/api/v1/instances", bearer),
        (f"/api/v1/instances/{first}/overlay.png", bearer), (f"/api/v1/instances/{first}", bearer),
        ("/api/v1/audit?limit=500", bearer),
    ]  # fmt: skip
    stop = threading.Event()
    answered: list[int] = []

    def flood(k: int) -> None:
        while not stop.is_set():
            path, headers = paths[k % len(paths)]
            k += 1
            try:
                answered.append(_get(base + path, headers, timeout=60))
            except OSError:
                answered.append(0)

    threads = [threading.Thread(target=flood, args=(k,), daemon=True) for k in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    ae = AE(ae_title="FLOODSCU")
    ae.add_requested_context("1.2.840.10008.5.1.4.1.1.1.1", ExplicitVRLittleEndian)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 60
    timings: list[tuple[int, float]] = []
    try:
        for i in range(12):
            assoc = ae.associate("127.0.0.1", process.port, ae_title="RASCORE")
            assert assoc.is_established
            started = time.monotonic()
            status = assoc.send_c_store(_dx_dataset(i))
            timings.append((int(status.Status), time.monotonic() - started))
            assoc.release()
    finally:
        stop.set()
        for thread in threads:
            thread.join(70)
    assert len(answered) > 20 and answered.count(200) > len(answered) // 2, answered[:50]
    assert [code for code, _ in timings] == [0] * 12, timings
    print("C-STORE seconds", [round(t, 2) for _, t in timings], "GETs answered", len(answered))
    assert max(seconds for _, seconds in timings) < 5.0, timings


# -- finding 10: streamed exports with keyset paging --------------------------------------------


def _skipping_selects(seen: Transactions) -> list[str]:
    """The SELECTs, with any that count or skip rows (SQLite always writes ``OFFSET ?``: its
    value must be 0); returns the SELECTs."""
    statements = [s for _, found in seen.done for s in found]
    assert len(statements) == len(seen.params)
    selects = []
    for statement, params in zip(statements, seen.params, strict=True):
        if statement.startswith("SELECT"):
            selects.append(statement)
            assert "count(" not in statement.lower(), statement
            if " OFFSET ?" in statement:
                assert params[-1] == 0, (statement, params)
    return selects


class Chunks:
    """ASGI wrapper that records each body message the app sends."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.sizes: list[int] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def recording(message: Any) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                self.sizes.append(len(message["body"]))
            await send(message)

        await self.app(scope, receive, recording)


def test_exports_stream_in_pages_by_key(tmp_path: Path) -> None:
    from worker.db import queries

    api = _api(tmp_path / "home")
    n = 2 * queries.MAX_PAGE + 100
    ids = _fill(api.url, api.settings.effective_store_dir, [f"P{i % 7}" for i in range(n)])
    chunks = Chunks(api.client.app)
    client = TestClient(chunks)
    with Transactions(api.url) as seen:
        body = client.get("/api/v1/export/scores.csv", headers=api.bearer("reader")).text
    rows = list(csv.DictReader(io.StringIO(body)))
    assert {(int(r["instance_id"]), r["label"]) for r in rows} == {
        (i, label) for i in ids for label in ("L_PIP2", "L_PIP3")
    }
    assert len(rows) == 2 * n
    assert [int(r["instance_id"]) for r in rows[::2]] == sorted(ids, reverse=True)  # newest first
    selects = _skipping_selects(seen)
    pages = n // queries.MAX_PAGE + 1
    assert len(selects) <= 2 * (pages + 1) + 4, len(selects)  # a page and its joints, each
    assert len(chunks.sizes) >= pages and max(chunks.sizes) < len(body.encode()) / 2

    with session_scope(api.url) as s:  # an audit trail of more than two pages
        s.execute(
            insert(AuditEvent),
            [{"event": "queried", "actor": "x", "detail": {"n": i}} for i in range(n)],
        )
    chunks.sizes.clear()
    with Transactions(api.url) as seen:
        body = client.get("/api/v1/export/audit.csv", headers=api.bearer("reader")).text
    audit = list(csv.DictReader(io.StringIO(body)))
    with session_scope(api.url) as s:
        every = list(s.scalars(select(AuditEvent.id).order_by(AuditEvent.id.desc())))
    assert [int(r["id"]) for r in audit] == every  # this export's own row first
    selects = _skipping_selects(seen)
    assert len(chunks.sizes) >= pages and max(chunks.sizes) < len(body.encode()) / 2


# -- finding 13: sessions, Origin, CSV injection ------------------------------------------------


def _session_row(api: Api, cookie: str) -> Any:
    from worker.db.models import DashboardSession

    with session_scope(api.url) as s:
        return s.get(DashboardSession, hashlib.sha256(cookie.encode()).hexdigest())


def _page_status(api: Api, cookie: str, path: str = "/") -> int:
    client = TestClient(api.client.app)
    client.cookies.set(COOKIE, cookie)
    return int(client.get(path, follow_redirects=False).status_code)


def test_cookie_holds_a_session_secret_not_the_token(api: Api) -> None:
    cookie = api.login("reader")
    assert api.tokens["reader"] not in cookie and not cookie.startswith(tokens.PREFIX)
    row = _session_row(api, cookie)
    assert row is not None and row.token_name == "reader" and row.role == TokenRole.READ
    assert row.revoked_at is None
    lifetime = row.expires_at - row.created_at
    assert dt.timedelta(hours=11.9) < lifetime <= dt.timedelta(hours=12)
    assert _page_status(api, cookie) == 200
    # the raw token in the cookie is no session
    assert _page_status(api, api.tokens["reader"]) == 303


def test_logout_revokes_the_session_on_the_server(api: Api) -> None:
    cookie = api.login("reader")
    api.client.cookies.set(COOKIE, cookie)
    assert api.client.post("/logout", headers=ORIGIN, follow_redirects=False).status_code == 303
    assert _session_row(api, cookie).revoked_at is not None
    assert _page_status(api, cookie) == 303  # a copy of the cookie is worth nothing now
    assert _page_status(api, cookie, "/api/v1/instances") == 401


def test_sessions_expire_when_idle_and_at_their_absolute_limit(api: Api) -> None:
    from worker.db.models import DashboardSession

    idle, old = api.login("reader"), api.login("reader")
    assert _page_status(api, idle) == 200 and _page_status(api, old) == 200
    now = dt.datetime.now(dt.UTC)
    with session_scope(api.url) as s:
        s.execute(
            update(DashboardSession)
            .where(DashboardSession.id == hashlib.sha256(idle.encode()).hexdigest())
            .values(last_seen_at=now - dt.timedelta(minutes=31))
        )
        s.execute(
            update(DashboardSession)
            .where(DashboardSession.id == hashlib.sha256(old.encode()).hexdigest())
            .values(expires_at=now - dt.timedelta(seconds=1))
        )
    assert _page_status(api, idle) == 303
    assert _page_status(api, old) == 303
    api.login("admin")  # a login deletes sessions past their absolute limit
    assert _session_row(api, old) is None and _session_row(api, idle) is not None


def test_revoking_the_token_revokes_its_sessions(api: Api) -> None:
    cookie = api.login("admin")
    assert _page_status(api, cookie) == 200
    with session_scope(api.url) as s:
        assert tokens.revoke(s, "admin")
    assert _session_row(api, cookie).revoked_at is not None
    assert _page_status(api, cookie) == 303


def test_dashboard_posts_from_another_origin_are_refused(api: Api) -> None:
    [first] = _fill(api.url, api.settings.effective_store_dir, ["P1"])
    cookie = api.login("admin")
    api.client.cookies.set(COOKIE, cookie)
    resend = f"/instances/{first}/resend"
    foreign = {"Origin": "http://evil.example"}
    for path in (resend, "/logout"):
        assert api.client.post(path, headers=foreign, follow_redirects=False).status_code == 403
        assert api.client.post(path, follow_redirects=False).status_code == 403  # no Origin
        referer = {"Referer": "http://evil.example/page"}
        assert api.client.post(path, headers=referer, follow_redirects=False).status_code == 403
    # the API's POSTs with the cookie (not a bearer token) are checked as well
    api_resend = f"/api/v1/instances/{first}/resend"
    assert api.client.post(api_resend, headers=foreign).status_code == 403
    assert api.client.post(api_resend, headers=ORIGIN).status_code == 200
    login = api.client.post(
        "/login", data={"token": api.tokens["admin"]}, headers=foreign, follow_redirects=False
    )
    assert login.status_code == 403 and COOKIE not in login.cookies
    same = {"Referer": "http://testserver/instances/1"}
    assert api.client.post(resend, headers=same, follow_redirects=False).status_code == 303
    assert api.client.post(resend, headers=ORIGIN, follow_redirects=False).status_code == 303
    assert _session_row(api, cookie).revoked_at is None  # the refused logouts did nothing


def test_csv_cells_cannot_start_a_formula(api: Api) -> None:
    hostile = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tTAB", "\rCR"]
    _fill(api.url, api.settings.effective_store_dir, hostile, calling_ae="@AE=1")
    with session_scope(api.url) as s:
        s.add(AuditEvent(event="queried", actor="=cmd|' /C calc'!A0", detail={}))
    rows = list(
        csv.DictReader(
            io.StringIO(
                api.client.get("/api/v1/export/scores.csv", headers=api.bearer("reader")).text,
                newline="",
            )
        )
    )
    assert sorted(r["patient_id"] for r in rows) == sorted("'" + p for p in hostile for _ in "12")
    assert {r["jsn"] for r in rows} == {"1"}  # numbers stay numbers
    audit = api.client.get("/api/v1/export/audit.csv", headers=api.bearer("reader")).text
    actors = {r["actor"] for r in csv.DictReader(io.StringIO(audit, newline=""))}
    assert "'=cmd|' /C calc'!A0" in actors and "reader" in actors
    assert not any(a[:1] in "=+-@\t\r" for a in actors)
