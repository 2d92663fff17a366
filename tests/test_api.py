"""The HTTP API and dashboard against a real node: `rascore serve` fills its database from
phantoms sent by storescu; tokens come from `rascore token create`; the dashboard is driven in
Debian's headless Chromium with Playwright; schemathesis fuzzes the OpenAPI schema."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from servers import NodeProcess, free_port, require, storescu, wait_for
from sqlalchemy import func, select

from worker.db.engine import session_scope
from worker.db.models import Job

DOCS = Path(__file__).resolve().parents[1] / "docs"


class Node:
    def __init__(self, process: NodeProcess, api: str, files: list[Path]) -> None:
        self.process = process
        self.api = api
        self.files = files
        self.tokens: dict[str, str] = {}

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "worker", *args],
            env=self.process.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )

    def call(
        self, path: str, token: str | None = None, method: str = "GET"
    ) -> tuple[int, Any, dict[str, str]]:
        request = urllib.request.Request(self.api + path, method=method)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                body = response.read()
                kind = response.headers.get("content-type", "")
                value = json.loads(body) if "json" in kind else body
                return response.status, value, dict(response.headers)
        except urllib.error.HTTPError as error:
            return error.code, error.read(), dict(error.headers)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """A node that has scored three phantoms of two patients."""
    from scoring.phantom import PhantomConfig, generate_image
    from worker.lab.phantom_export import write_image

    folder = tmp_path_factory.mktemp("api-phantoms")
    files = []
    for i in range(3):
        record = write_image(6161, generate_image(6161, i, PhantomConfig(hands=2)), folder)
        files.append(folder / record["file"])
    # two images of one patient (a follow-up), one of another
    for path, patient in zip(files, ["PAT-A", "PAT-A", "PAT-B"], strict=True):
        ds = pydicom.dcmread(path)
        ds.PatientID = patient
        ds.save_as(path)

    api_port = free_port()
    process = NodeProcess(
        tmp_path_factory.mktemp("api-node"), {"RASCORE_API_PORT": str(api_port)}
    ).start()
    try:
        storescu(process.port, *files)

        def built() -> bool:
            with session_scope(process.database_url) as session:
                return (
                    session.scalar(select(func.count(Job.id)).where(Job.built_at.is_not(None))) == 3
                )

        wait_for(built, 180, "three scored and built instances", every=0.5)
        node = Node(process, f"http://127.0.0.1:{api_port}", files)
        for name, role in (("auditor", "read"), ("admin", "operator"), ("gone", "read")):
            node.tokens[name] = node.cli("token", "create", name, "--role", role).stdout.strip()
        node.cli("token", "revoke", "gone")
        yield node
    finally:
        process.stop()


def test_every_api_route_wants_a_valid_token(node: Node) -> None:
    status, schema, _ = node.call("/openapi.json")
    assert status == 200
    routes = [
        (path.replace("{instance_id}", "1").replace("{patient_id}", "PAT-A"), method.upper())
        for path, methods in schema["paths"].items()
        for method in methods
        if path.startswith("/api/")
    ]
    assert len(routes) >= 12
    for path, method in routes:
        assert node.call(path, None, method)[0] == 401, path
        assert node.call(path, "rsc_not-a-token", method)[0] == 401, path
        assert node.call(path, node.tokens["gone"], method)[0] == 401, (path, "revoked")
        if method == "POST":
            assert node.call(path, node.tokens["auditor"], method)[0] == 403, path
            assert node.call(path, node.tokens["admin"], method)[0] == 200, path


def test_instance_queries_filter_and_page(node: Node) -> None:
    reader = node.tokens["auditor"]
    status, page, _ = node.call("/api/v1/instances", reader)
    assert status == 200 and page["total"] == 3
    assert {i["status"] for i in page["items"]} == {"scored"}
    assert node.call("/api/v1/instances?patient_id=PAT-A", reader)[1]["total"] == 2
    assert node.call("/api/v1/instances?calling_ae=STORESCU", reader)[1]["total"] == 3
    assert node.call("/api/v1/instances?calling_ae=ELSEWHERE", reader)[1]["total"] == 0
    version = page["items"][0]["model_version"]
    query = urllib.parse.urlencode({"model_version": version})  # "1.0.0+…": the + encoded
    assert node.call(f"/api/v1/instances?{query}", reader)[1]["total"] == 3
    assert node.call("/api/v1/instances?status=failed", reader)[1]["total"] == 0
    study_date = pydicom.dcmread(node.files[0], stop_before_pixels=True).StudyDate
    day = dt.datetime.strptime(study_date, "%Y%m%d").date()
    after = (day + dt.timedelta(days=1)).isoformat()
    got = node.call(f"/api/v1/instances?study_date_from={day}&study_date_to={day}", reader)[1]
    assert got["total"] >= 1
    assert all(i["study_date"] == day.isoformat() for i in got["items"])
    assert node.call(f"/api/v1/instances?study_date_from={after}&study_date_to={after}", reader)[1][
        "total"
    ] == sum(
        pydicom.dcmread(f, stop_before_pixels=True).StudyDate == after.replace("-", "")
        for f in node.files
    )
    one = node.call("/api/v1/instances?limit=1&offset=1", reader)[1]
    assert len(one["items"]) == 1 and one["items"][0]["id"] == page["items"][1]["id"]
    assert node.call("/api/v1/instances?limit=0", reader)[0] == 422
    assert node.call("/api/v1/studies?patient_id=PAT-A", reader)[1]["total"] == 2


def test_instance_detail_scores_history_and_model(node: Node) -> None:
    reader = node.tokens["auditor"]
    first = node.call("/api/v1/instances?patient_id=PAT-B", reader)[1]["items"][0]
    status, detail, _ = node.call(f"/api/v1/instances/{first['id']}", reader)
    assert status == 200
    [score] = detail["scores"]
    graded = [j for j in score["joints"] if j["assessable"]]
    assert score["joints"] and score["totals"]["jsn"] == sum(j["jsn"] for j in graded)
    assert score["totals"]["joints_scored"] == len(graded)
    for joint in score["joints"]:
        assert len(joint["box"]) == 4 and len(joint["jsn_probs"]) == 5
        assert abs(sum(joint["erosion_probs"]) - 1) < 1e-3
    assert {r["kind"] for r in detail["jobs"][0]["results"]} == {"sr", "sc", "gsps"}
    assert detail["receptions"][0]["calling_ae_title"] == "STORESCU"
    status, png, headers = node.call(f"/api/v1/instances/{first['id']}/overlay.png", reader)
    assert status == 200 and headers["content-type"] == "image/png" and png[:4] == b"\x89PNG"
    history = node.call("/api/v1/patients/PAT-A/scores", reader)[1]
    assert len(history) == 2 and all(h["joints"] for h in history)
    assert node.call("/api/v1/instances/999999", reader)[0] == 404
    card = node.call("/api/v1/model", reader)[1]
    assert "NOT FOR DIAGNOSTIC USE" in card["intended_use"] and card["version"]


def test_queries_of_patient_data_are_audited_with_the_token_name(node: Node) -> None:
    reader = node.tokens["auditor"]
    node.call("/api/v1/patients/PAT-B/scores", reader)
    events = node.call("/api/v1/audit?event=queried&actor=auditor&limit=500", reader)[1]["items"]
    assert any(e["detail"].get("patient_id") == "PAT-B" for e in events)
    since = dt.datetime.now(dt.UTC).isoformat()
    recent = node.call(f"/api/v1/audit?since={since.replace('+', '%2B')}", reader)[1]["items"]
    # nothing since but this very query of the trail, which is audited too
    assert [(e["event"], e["actor"], e["detail"]["query"]) for e in recent] == [
        ("queried", "auditor", "audit")
    ]
    received = node.call("/api/v1/audit?event=received", reader)[1]
    assert received["total"] == 3 and {e["actor"] for e in received["items"]} == {"STORESCU"}
    cli = json.loads(node.cli("audit", "--event", "scored", "--json").stdout)
    assert cli["total"] == 3
    scores = json.loads(node.cli("scores", "--patient-id", "PAT-A", "--json").stdout)
    assert len(scores) == 2
    assert any(
        e["actor"].startswith("cli:")
        for e in node.call("/api/v1/audit?event=queried&limit=500", reader)[1]["items"]
    )


def test_csv_exports(node: Node) -> None:
    reader = node.tokens["auditor"]
    status, body, headers = node.call("/api/v1/export/scores.csv?patient_id=PAT-A", reader)
    assert status == 200 and headers["content-type"].startswith("text/csv")
    lines = body.decode().splitlines()
    history = node.call("/api/v1/patients/PAT-A/scores", reader)[1]
    assert lines[0].startswith("instance_id,sop_instance_uid,patient_id")
    assert len(lines) - 1 == sum(len(h["joints"]) for h in history)
    audit = node.call("/api/v1/export/audit.csv?event=received", reader)[1].decode().splitlines()
    assert len(audit) == 1 + 3


def test_operations_resend_and_rescore(node: Node) -> None:
    admin = node.tokens["admin"]
    first = node.call("/api/v1/instances", admin)[1]["items"][0]["id"]
    status, body, _ = node.call(f"/api/v1/instances/{first}/rescore", admin, "POST")
    assert status == 200 and body == {"job_id": None, "queued": False}  # the model did it already
    status, body, _ = node.call(f"/api/v1/instances/{first}/resend", admin, "POST")
    assert status == 200 and body == {"deliveries": []}  # no destination configured
    events = node.call(f"/api/v1/audit?instance_id={first}&event=resend", admin)[1]["items"]
    assert events and events[0]["actor"] == "admin"


def test_health_and_metrics(node: Node) -> None:
    status, health, _ = node.call("/healthz")
    assert status == 200, health
    assert health["database"] == "ok" and health["broker"] == "ok"
    status, body, _ = node.call("/metrics")
    text = body.decode()
    assert status == 200
    samples = dict(
        line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#")
    )
    assert float(samples['rascore_instances_received_total{outcome="new"}']) == 3
    assert float(samples["rascore_instances_scored_total"]) == 3
    assert float(samples['rascore_stage_seconds_count{stage="detect"}']) == 3
    assert float(samples['rascore_stage_seconds_count{stage="build"}']) == 9
    assert 'rascore_queue_depth{queue="score"}' in samples


def test_openapi_schema_fuzzed_without_a_server_error(node: Node, tmp_path: Path) -> None:
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("st")), "run", f"{node.api}/openapi.json",
            "--header", f"Authorization: Bearer {node.tokens['auditor']}",
            "--checks", "not_a_server_error", "--max-examples", "30", "--seed", "1",
            "--exclude-path-regex", "/export/",
        ],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_dashboard_in_headless_chromium(node: Node) -> None:
    """Log in with a token, open an instance, find its joint table and its overlay; the
    screenshots go to docs/."""
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
        page.goto(node.api + "/")
        assert page.url.endswith("/login")
        page.fill("#token", "rsc_wrong")
        page.click("#login")
        assert page.locator("#login-error").is_visible()
        page.fill("#token", node.tokens["admin"])
        page.click("#login")
        page.wait_for_selector("#instances")
        assert page.locator("#instances tbody tr").count() == 3
        page.screenshot(path=str(DOCS / "dashboard-recent.png"))
        page.locator("#instances tbody tr a").first.click()
        page.wait_for_selector("#joints")
        rows = page.locator("#joints tbody tr")
        assert rows.count() >= 10
        assert page.locator("#joints tbody tr td").first.inner_text()[:2] in ("L_", "R_")
        overlay = page.locator("#overlay")
        overlay.wait_for()
        page.wait_for_function("document.querySelector('#overlay').naturalWidth > 0")
        assert page.locator("#resend").is_visible()  # an operator's token
        page.screenshot(path=str(DOCS / "dashboard-instance.png"), full_page=True)
        page.goto(node.api + "/failures")
        page.wait_for_selector("#failures")
        browser.close()


def test_api_csv_and_dashboard_show_not_assessable_joints(
    phantom_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A joint the model would not grade: null grades and its reason in the JSON, empty grades
    in the CSV, "n/a" with the reason on the dashboard; totals say how many joints they cover."""
    from fastapi.testclient import TestClient
    from not_assessable_scoring import MISSING, NOT_ASSESSABLE, score_with_not_assessable

    from worker.api.app import create_app
    from worker.db import tokens
    from worker.db.models import TokenRole

    done = score_with_not_assessable(phantom_file, tmp_path / "home", monkeypatch)
    with session_scope(done.settings.effective_database_url) as session:
        token = tokens.create_token(session, "auditor", TokenRole.READ)
    client = TestClient(create_app(done.settings))
    bearer = {"Authorization": f"Bearer {token}"}

    detail = client.get(f"/api/v1/instances/{done.instance_id}", headers=bearer).json()
    assert (detail["joints_scored"], detail["joints_expected"]) == (17, 20)
    [score] = detail["scores"]
    joints = {j["label"]: j for j in score["joints"]}
    for label, reason in NOT_ASSESSABLE.items():
        assert joints[label]["jsn"] is None and joints[label]["erosion"] is None
        assert (joints[label]["assessable"], joints[label]["reason"]) == (False, reason)
    graded = [j for j in score["joints"] if j["assessable"]]
    assert all(j["reason"] is None and j["jsn"] is not None for j in graded)
    assert score["totals"] == {
        "jsn": sum(j["jsn"] for j in graded),
        "erosion": sum(j["erosion"] for j in graded),
        "joints_scored": 17,
        "joints_expected": 20,
    }
    assert score["missing_reasons"] == {MISSING[0]: MISSING[1]}

    listed = client.get("/api/v1/instances", headers=bearer).json()["items"]
    assert [(i["joints_scored"], i["joints_expected"]) for i in listed] == [(17, 20)]

    exported = client.get("/api/v1/export/scores.csv", headers=bearer).text
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert len(rows) == 19
    by_label = {r["label"]: r for r in rows}
    for label, reason in NOT_ASSESSABLE.items():
        assert (by_label[label]["jsn"], by_label[label]["erosion"]) == ("", "")
        assert (by_label[label]["assessable"], by_label[label]["reason"]) == ("no", reason)
    assert by_label["R_PIP2"]["assessable"] == "yes" and by_label["R_PIP2"]["jsn"].isdigit()
    assert {r["joints_scored"] for r in rows} == {"17"}

    login = client.post("/login", data={"token": token}, headers={"Origin": "http://testserver"})
    assert login.status_code == 200 and "rascore_session" in client.cookies  # a session's secret
    page = client.get(f"/instances/{done.instance_id}").text
    assert "17 of 20 joints scored" in page
    assert page.count('class="not-assessable"') == 2
    for reason in NOT_ASSESSABLE.values():
        assert f"not assessable: {reason}" in page
    assert f"{MISSING[0]} ({MISSING[1]})" in page
    assert ">None<" not in page
    home = client.get("/").text
    assert "17 of 20" in home
