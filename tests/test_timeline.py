"""The patient's timeline: three visits whose damage increases, sent out of order and assembled
by the node's own assembly (worker.jobs.study), read back through the API's timeline, the
progression CSV and the dashboard's patient page in headless Chromium (screenshot in docs/)."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from servers import PostgresServer, free_port, require
from sqlalchemy import select
from test_study_assembly import ROOT, Node, _hand_grades, _header

from worker.api.app import create_app
from worker.api.routes.export import PROGRESSION_COLUMNS
from worker.db import tokens
from worker.db.engine import session_scope
from worker.db.models import AuditEvent, AuditEventType, TokenRole
from worker.jobs.study import assemble_due

DOCS = Path(__file__).resolve().parents[1] / "docs"
PATIENT = "=P15/7"  #: a formula to a spreadsheet, and a slash in a URL path
DATES = {"first": "20210301", "second": "20220301", "third": "20240301", "pending": "20250105"}


def _url(kind: str, tmp_path: Path, postgres: PostgresServer | None) -> str:
    if kind == "sqlite" or postgres is None:
        return f"sqlite:///{tmp_path / 'rascore.db'}"
    return postgres.create_database(f"t_{hashlib.sha1(str(tmp_path).encode()).hexdigest()[:12]}")


@dataclass
class Patient:
    node: Node
    client: TestClient
    token: str
    instance_ids: dict[str, list[int]]

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def _later(seconds: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)


def _visits(tmp_path: Path, url: str) -> Patient:
    """Three visits of one patient, damage growing (the second with R_MCP5 not assessable),
    sent latest first; a fourth received but not scored (pending); the same ID in another
    issuer (another patient)."""
    node = Node(tmp_path, url)
    grades = {
        "first": {**_hand_grades("L", 1, 0), **_hand_grades("R", 1, 1)},
        "second": {**_hand_grades("L", 2, 1), **_hand_grades("R", 2, 1, unsure=1)},
        "third": {**_hand_grades("L", 3, 2), **_hand_grades("R", 3, 2)},
    }
    ids: dict[str, list[int]] = {}
    for n, visit in enumerate(("third", "first", "second", "pending")):
        root = f"{ROOT}.7{n}"
        ids[visit] = []
        for side in ("L", "R"):
            instance = node.receive(_header(root, side, patient=PATIENT, date=DATES[visit]))
            ids[visit].append(instance)
            if visit in grades:
                node.score(instance, {k: v for k, v in grades[visit].items() if k[0] == side})
        while assemble_due(node.settings, _later(61)):  # an earlier visit re-opens the later
            pass
    other = _header(f"{ROOT}.79", "L", patient=PATIENT, date="20230101")
    other.IssuerOfPatientID = "OTHER-HOSPITAL"
    node.receive(other)
    with session_scope(url) as session:
        token = tokens.create_token(session, "auditor", TokenRole.READ)
    return Patient(node, TestClient(create_app(node.settings)), token, ids)


@pytest.fixture(params=["sqlite", "postgresql"])
def patient(request: pytest.FixtureRequest, tmp_path: Path) -> Patient:
    server = request.getfixturevalue("postgres") if request.param == "postgresql" else None
    return _visits(tmp_path, _url(request.param, tmp_path, server))


def _per_year(change: int, days: int) -> float:
    return round(change / (days / 365.25), 6)


def test_timeline_in_date_order_with_the_true_direction_of_change(
    patient: Patient, caplog: pytest.LogCaptureFixture
) -> None:
    path = f"/api/v1/patients/{quote(PATIENT, safe='/')}/timeline"
    assert patient.client.get(path).status_code == 401
    assert patient.client.get(path, headers={"Authorization": "Bearer rsc_no"}).status_code == 401
    # two patients share the ID: a timeline never mixes them
    clash = patient.client.get(path, headers=patient.bearer)
    assert clash.status_code == 409
    assert clash.json()["detail"]["issuers"] == ["", "OTHER-HOSPITAL"]
    caplog.set_level(logging.DEBUG)
    got = patient.client.get(path, params={"issuer": ""}, headers=patient.bearer)
    assert got.status_code == 200, got.text
    told = [r for r in caplog.records if r.levelno >= logging.INFO and PATIENT in r.getMessage()]
    assert not told  # PHI: at DEBUG only
    timeline = got.json()
    studies = timeline["studies"]
    assert [s["study_date"] for s in studies] == ["2021-03-01", "2022-03-01", "2024-03-01",
                                                  "2025-01-05"]  # fmt: skip
    assert [s["status"] for s in studies] == ["assembled"] * 3 + ["pending"]
    assert (timeline["assembled"], timeline["pending"]) == (3, 1)
    assert [s["totals"]["total"] for s in studies[:3]] == [30, 57, 100]
    assert studies[1]["totals"] == {"jsn": 38, "erosion": 19, "total": 57, "joints_scored": 19,
                                    "not_assessable": 1}  # fmt: skip
    assert studies[1]["hands"]["R"] == {"jsn": 18, "erosion": 9, "total": 27, "joints_scored": 9,
                                        "not_assessable": 1}  # fmt: skip
    assert studies[0]["progression"] is None
    second, third = studies[1]["progression"], studies[2]["progression"]
    # the first visit's report is the earliest: the second compares with it twice
    assert second["previous"] == second["first"] | {"against": "previous"}
    assert (second["previous"]["joints_compared"], second["previous"]["left_out"]) == (
        19, ["R_MCP5"],
    )  # fmt: skip
    assert second["previous"]["total"] == {"change": 29, "per_year": _per_year(29, 365)}
    assert third["previous"]["jsn"] == {"change": 19, "per_year": _per_year(19, 731)}
    assert third["previous"]["prior_study_date"] == "2022-03-01"
    assert third["first"]["prior_study_date"] == "2021-03-01"
    assert third["first"]["years"] == pytest.approx(1096 / 365.25)
    for measure, change in (("jsn", 40), ("erosion", 30), ("total", 70)):
        assert third["first"][measure] == {"change": change, "per_year": _per_year(change, 1096)}
        assert change > 0  # damage grows: no change reads the other way
    assert (third["first"]["joints_compared"], third["first"]["joints_left_out"]) == (20, 0)
    version = patient.node.version
    assert timeline["model_versions"] == [version]
    assert all(s["model_version"] == version for s in studies[:3])
    for s in studies[:3]:
        assert s["report_version"] == len(s["study_srs"]) and s["study_srs"][0]["version"] == len(
            s["study_srs"]
        )
    # the third visit came first: assembled alone, then again for each earlier visit
    assert [sr["version"] for sr in studies[2]["study_srs"]] == [3, 2, 1]
    assert studies[3]["study_srs"] == [] and studies[3]["totals"] is None
    assert {i["instance_id"] for i in studies[3]["images"]} == set(patient.instance_ids["pending"])
    other = patient.client.get(path, params={"issuer": "OTHER-HOSPITAL"}, headers=patient.bearer)
    assert [s["status"] for s in other.json()["studies"]] == ["pending"]
    unknown = patient.client.get("/api/v1/patients/NOBODY/timeline", headers=patient.bearer)
    assert unknown.status_code == 404
    # studies without a Patient ID are no one patient's
    assert (
        patient.client.get("/api/v1/patients//timeline", headers=patient.bearer).status_code == 404
    )
    with session_scope(patient.node.settings.effective_database_url) as session:
        asked = session.scalars(
            select(AuditEvent).where(AuditEvent.event == AuditEventType.QUERIED)
        ).all()
    looked = [e for e in asked if e.detail.get("query") == "patient timeline"]
    assert {e.actor for e in looked} == {"auditor"}
    assert {e.detail["patient_id"] for e in looked} == {PATIENT, "NOBODY", ""}


def test_progression_csv(patient: Patient) -> None:
    path = "/api/v1/export/progression.csv"
    assert patient.client.get(path).status_code == 401
    got = patient.client.get(path, headers=patient.bearer)
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(got.text)))
    assert rows[0] == PROGRESSION_COLUMNS
    table = [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]
    assert len(table) == 3  # the pending studies have no row
    assert {r["patient_id"] for r in table} == {"'" + PATIENT}  # no formula for a spreadsheet
    assert [r["study_date"] for r in table] == ["2021-03-01", "2022-03-01", "2024-03-01"]
    assert [r["total"] for r in table] == ["30", "57", "100"]
    assert [r["total_change_since_previous"] for r in table] == ["", "29", "38"]
    assert [r["total_change_since_first"] for r in table] == ["", "29", "70"]
    assert float(table[2]["jsn_per_year_since_first"]) == pytest.approx(40 / (1096 / 365.25))
    assert table[1]["R_joints_scored"] == "9" and table[1]["joints_left_out_previous"] == "1"
    assert table[2]["study_sr_sop_instance_uid"] and table[2]["report_version"] == "3"
    since = patient.client.get(path, params={"since": "2022-01-01"}, headers=patient.bearer)
    assert [r[2] for r in list(csv.reader(io.StringIO(since.text)))[1:]] == [
        "2022-03-01", "2024-03-01",
    ]  # fmt: skip


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Patient, str]]:
    """The SQLite node's app served by uvicorn in a thread, for a browser."""
    import uvicorn

    patient = _visits(tmp_path, _url("sqlite", tmp_path, None))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(patient.node.settings), port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield patient, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_patient_page_in_headless_chromium(served: tuple[Patient, str]) -> None:
    """From an instance to its patient's page: one point per study and measure, the table
    beneath with the same numbers, the notice and the model; the screenshot goes to docs/."""
    patient, base = served
    chromium = require("/usr/bin/chromium", "chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium,
            args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
            ],
        )  # fmt: skip
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(base + "/login")
        page.fill("#token", patient.token)
        page.click("#login")
        page.wait_for_selector("#instances")
        page.goto(f"{base}/instances/{patient.instance_ids['third'][0]}")
        page.click("#patient-link")
        page.wait_for_selector("#issuers")  # the ID is shared: choose the issuer first
        page.locator("#issuers + ul a").first.click()
        page.wait_for_selector("#timeline-chart")
        for measure in ("jsn", "erosion", "total"):
            points = page.locator(f'#timeline-chart g[data-measure="{measure}"] g.point')
            assert points.count() == 3
            drawn = [(points.nth(k).get_attribute("data-date"),
                      points.nth(k).get_attribute("data-value")) for k in range(3)]  # fmt: skip
            cells = page.locator(f"#timeline-table tbody td.{measure}")
            dates = page.locator("#timeline-table tbody tr td:first-child")
            table = [(dates.nth(k).inner_text(), cells.nth(k).inner_text()) for k in range(3)]
            assert drawn == table, measure
        assert page.locator("#timeline-chart g.point title").count() == 9
        title = page.locator("#timeline-chart g.point title").first.text_content() or ""
        assert title.startswith("2021-03-01:") and "joints scored" in title
        assert (page.locator("#timeline-chart g.legend").text_content() or "").count("Erosion") == 1
        notice = page.locator("#notice").inner_text()
        assert "Not for diagnostic use" in notice and patient.node.version in notice
        assert page.locator("#studies tbody tr").count() == 4
        assert page.locator("#studies .pending").count() == 1
        assert page.locator("#studies .sr").count() == 1 + 1 + 3
        page.screenshot(path=str(DOCS / "timeline.png"), full_page=True)
        page.locator("#studies a").first.click()
        page.wait_for_selector("#joints")
        browser.close()
