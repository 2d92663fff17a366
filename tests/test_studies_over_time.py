"""Studies over time end to end: a real node (``rascore serve``) beside Orthanc as the PACS,
which is both where the results go and the query/retrieve peer the priors come from.

A phantom patient who progresses fast has three visits two years apart (``rascore phantom
--visits``, one hand per image, so a visit is a study of two images); the PACS holds the first
two, the newest is sent to the node. With the PACS down the study waits (never fails); once it
is back the node fetches the priors, scores them and assembles all three studies, and the
newest report compares with the previous and the first visit. Another patient's study arrives
in two associations and is assembled once with both hands; a late image makes version 2.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pydicom
import pytest
from pydicom.uid import generate_uid
from servers import NodeProcess, Orthanc, free_port, storescu, wait_for
from sqlalchemy import select

from dicom_io.sr.study_read import read_study_sr
from worker.db import tokens
from worker.db.engine import session_scope
from worker.db.models import AuditEvent, TokenRole
from worker.jobs.priors import PRIOR_QUERY, PRIOR_RETRIEVE

RASCORE = str(Path(sys.executable).with_name("rascore"))
SEED = 10  #: seed 10, two images a visit: patient 0 progresses fast, patient 1 not at all
STUDY_SR_CLASS = "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR


@dataclass(frozen=True)
class Visits:
    root: Path
    patients: list[dict[str, Any]]  #: visits.json's patients: the true timeline

    def files(self, patient: int, visit: int) -> list[Path]:
        entry = self.patients[patient]["visits"][visit - 1]
        return [self.root / entry["folder"] / name for name in entry["files"]]


@pytest.fixture(scope="module")
def visits(tmp_path_factory: pytest.TempPathFactory) -> Visits:
    out = tmp_path_factory.mktemp("visits")
    done = subprocess.run(
        [RASCORE, "phantom", "--out", str(out), "--count", "4", "--seed", str(SEED),
         "--hands", "1", "--visits", "3", "--years-apart", "2"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    patients = json.loads((out / "visits.json").read_text())["patients"]
    assert patients[0]["course"] == "fast" and patients[1]["course"] == "none"
    return Visits(out, patients)


@dataclass
class Site:
    node: NodeProcess
    pacs: Orthanc
    api: str
    token: str

    def get(self, path: str) -> Any:
        request = urllib.request.Request(self.api + path)
        request.add_header("Authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(request, timeout=30) as r:
            return json.loads(r.read())

    def timeline(self, patient_id: str) -> dict[str, Any]:
        return dict(self.get(f"/api/v1/patients/{quote(patient_id, safe='')}/timeline"))

    def events(self, name: str) -> list[dict[str, Any]]:
        with session_scope(self.node.database_url) as session:
            rows = session.scalars(
                select(AuditEvent).where(AuditEvent.event == name).order_by(AuditEvent.id)
            )
            return [dict(e.detail) for e in rows]

    def pacs_find(self, query: dict[str, str]) -> list[str]:
        """Orthanc's ids of the instances matching ``query`` (its REST ``/tools/find``)."""
        body = json.dumps({"Level": "Instance", "Query": query}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.pacs.http_port}/tools/find", data=body, method="POST"
        )
        with urllib.request.urlopen(request, timeout=30) as r:
            return list(json.loads(r.read()))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    home = tmp_path_factory.mktemp("site")
    port, api_port = free_port(), free_port()
    pacs = Orthanc(home / "orthanc", modalities={"rascore": f"RASCORE@127.0.0.1:{port}"})
    node = NodeProcess(
        home / "node",
        {
            "RASCORE_DICOM_PORT": str(port),
            "RASCORE_API_PORT": str(api_port),
            "RASCORE_DESTINATIONS": pacs.destination,
            "RASCORE_QR_PEER": pacs.destination,
            "RASCORE_STUDY_QUIET_S": "3",
            "RASCORE_PRIORS_RETRY_S": "2",
        },
    )
    pacs.start()
    node.start()
    try:
        with session_scope(node.database_url) as session:
            token = tokens.create_token(session, "clinic", TokenRole.READ)
        yield Site(node, pacs, f"http://127.0.0.1:{api_port}", token)
    finally:
        node.stop()
        pacs.stop()


def _wait(site: Site, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """``wait_for`` that shows the node's logs when it times out."""
    try:
        return wait_for(predicate, timeout, what, every=0.5)
    except AssertionError as error:
        raise AssertionError(
            f"{error}\n--- serve.log\n{site.node.log()[-4000:]}\n"
            f"--- worker log\n{site.node.worker_log()[-3000:]}"
        ) from None


def _date(value: str) -> dt.date:
    return dt.datetime.strptime(value, "%Y%m%d").date()


def _settled(site: Site, patient_id: str, count: int) -> dict[str, Any] | None:
    """The patient's timeline once ``count`` studies are assembled and none awaits an update."""
    try:
        timeline = site.timeline(patient_id)
    except urllib.error.HTTPError:
        return None
    studies = timeline["studies"]
    if len(studies) != count or any(
        s["status"] != "assembled" or s["update_pending"] for s in studies
    ):
        return None
    return timeline


def _study_srs_at_pacs(site: Site, study_uid: str) -> dict[str, pydicom.Dataset]:
    """The study SRs of a study that reached the PACS, by SOP Instance UID."""
    found: dict[str, pydicom.Dataset] = {}
    for orthanc_id in site.pacs_find({"StudyInstanceUID": study_uid, "Modality": "SR"}):
        ds = pydicom.dcmread(io.BytesIO(site.pacs.file(orthanc_id)))
        if ds.SOPClassUID == STUDY_SR_CLASS:
            found[str(ds.SOPInstanceUID)] = ds
    return found


def _arrived(site: Site, study: dict[str, Any]) -> dict[str, pydicom.Dataset] | None:
    """The study's SRs at the PACS once every version the API lists is there."""
    got = _study_srs_at_pacs(site, study["study_instance_uid"])
    return got if set(got) >= {r["sop_instance_uid"] for r in study["study_srs"]} else None


def test_three_visits_give_one_timeline_with_the_true_direction_of_change(
    site: Site, visits: Visits, tmp_path: Path, assert_dciodvfy_clean: Callable[[Path], str]
) -> None:
    """The PACS holds the first two visits; the newest goes to the node while the PACS is down:
    the study waits, unassembled and not failed; the PACS back, the priors are fetched, scored
    and assembled, and the newest report's change since the first has the truth's sign."""
    patient = visits.patients[0]
    pid, truth = patient["patient_id"], patient["visits"]
    archive = [*visits.files(0, 1), *visits.files(0, 2)]
    output = storescu(site.pacs.dicom_port, *archive, called=site.pacs.aet)
    assert output.count("Received Store Response (Success)") == len(archive), output

    started = time.monotonic()
    site.pacs.stop()  # down before the newest study's quiet time ends
    assert "Success" in storescu(site.node.port, *visits.files(0, 3))
    # the query fails and is tried again every RASCORE_PRIORS_RETRY_S: the study waits
    _wait(site, lambda: len(site.events(PRIOR_QUERY)) >= 2, 120, "two failed prior queries")
    assert {e["outcome"] for e in site.events(PRIOR_QUERY)} == {"failed"}
    waiting = site.timeline(pid)["studies"]
    assert [(s["study_date"], s["status"]) for s in waiting] == [
        (_date(truth[2]["study_date"]).isoformat(), "pending")
    ]
    assert all(i["status"] not in ("failed", "skipped") for i in waiting[0]["images"])
    site.pacs.start()

    timeline = _wait(site, lambda: _settled(site, pid, 3), 240, "three assembled studies")
    took = time.monotonic() - started
    studies = timeline["studies"]
    assert [s["study_instance_uid"] for s in studies] == [v["study_instance_uid"] for v in truth]
    assert [s["study_date"] for s in studies] == [_date(v["study_date"]).isoformat()
                                                  for v in truth]  # fmt: skip
    for study in studies:
        assert set(study["hands"]) == {"L", "R"}, study
    # reported oldest first, once each: the newest study waited for its priors' reports, so no
    # SR without its comparison went to the PACS
    assert [len(s["study_srs"]) for s in studies] == [1, 1, 1], studies
    newest = studies[2]
    first, previous = newest["progression"]["first"], newest["progression"]["previous"]
    assert first["prior_study_instance_uid"] == truth[0]["study_instance_uid"]
    assert previous["prior_study_instance_uid"] == truth[1]["study_instance_uid"]
    second_first = studies[1]["progression"]["first"]
    assert second_first["prior_study_instance_uid"] == truth[0]["study_instance_uid"]
    true_change = (truth[2]["jsn_total"] + truth[2]["erosion_total"]) - (
        truth[0]["jsn_total"] + truth[0]["erosion_total"]
    )
    assert true_change > 0
    assert first["total"]["change"] > 0, (first, true_change)  # the truth's sign
    days = (_date(truth[2]["study_date"]) - _date(truth[0]["study_date"])).days
    assert days == truth[2]["days_since_first_visit"]
    assert first["years"] == pytest.approx(days / 365.25, abs=1e-6)
    assert first["total"]["per_year"] == pytest.approx(
        first["total"]["change"] / (days / 365.25), abs=1e-5
    )

    # the study SRs reached the PACS, read back the same as the API, and are valid DICOM
    for study in studies:
        at_pacs = _wait(site, partial(_arrived, site, study), 60, "the study SRs at the PACS")
        latest = study["study_srs"][0]
        assert latest["version"] == study["report_version"]
        back = read_study_sr(at_pacs[latest["sop_instance_uid"]])
        assert back.study_instance_uid == study["study_instance_uid"]
        assert (back.jsn, back.erosion, back.jsn + back.erosion) == (
            study["totals"]["jsn"], study["totals"]["erosion"], study["totals"]["total"]
        )  # fmt: skip
        assert back.joints_scored == study["totals"]["joints_scored"]
        if study is newest:
            by = {c.against: c for c in back.comparisons}
            assert by["first"].total == first["total"]["change"]
            assert by["previous"].total == previous["total"]["change"]
            assert by["first"].prior_study_date == _date(truth[0]["study_date"])
        for uid, ds in at_pacs.items():
            path = tmp_path / f"{uid}.dcm"
            ds.save_as(path, enforce_file_format=True)
            assert_dciodvfy_clean(path)

    # the audit trail: the failed queries, the one that found the priors, their retrievals
    queries = site.events(PRIOR_QUERY)
    newest_queries = [q for q in queries if q["study_instance_uid"] == newest["study_instance_uid"]]
    assert [q["outcome"] for q in newest_queries][-1] == "ok"
    assert {q["outcome"] for q in newest_queries[:-1]} == {"failed"}
    priors = {truth[0]["study_instance_uid"], truth[1]["study_instance_uid"]}
    assert set(newest_queries[-1]["to_fetch"]) == priors
    retrieves = site.events(PRIOR_RETRIEVE)
    assert {r["prior_study_instance_uid"] for r in retrieves if r["outcome"] == "ok"} == priors
    assert all(pid not in json.dumps(e) for e in queries + retrieves)
    print(f"three visits settled {took:.0f} s after the newest was sent")


def test_a_study_split_over_two_associations_is_assembled_once_then_updated(
    site: Site, visits: Visits, tmp_path: Path, assert_dciodvfy_clean: Callable[[Path], str]
) -> None:
    """Both hands of a study sent by two storescu calls seconds apart give one report (version
    1) with both hands; an image of the study sent after it was assembled gives version 2,
    whose SR names version 1's as Predecessor Document."""
    pid = visits.patients[1]["patient_id"]
    left, right = visits.files(1, 1)
    assert "Success" in storescu(site.node.port, left)
    time.sleep(1.5)  # less than RASCORE_STUDY_QUIET_S (3 s)
    assert "Success" in storescu(site.node.port, right)
    timeline = _wait(site, lambda: _settled(site, pid, 1), 180, "the study assembled")
    study = timeline["studies"][0]
    assert study["report_version"] == 1 and len(study["study_srs"]) == 1
    assert set(study["hands"]) == {"L", "R"} and len(study["images"]) == 2
    v1 = study["study_srs"][0]["sop_instance_uid"]

    late = pydicom.dcmread(left)
    late.SOPInstanceUID = late.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    late.SeriesInstanceUID = generate_uid()
    late_path = tmp_path / "late.dcm"
    late.save_as(late_path)
    assert "Success" in storescu(site.node.port, late_path)
    timeline = _wait(
        site,
        lambda: (t := _settled(site, pid, 1)) and t["studies"][0]["report_version"] == 2 and t,
        180,
        "version 2 of the study report",
    )
    study = timeline["studies"][0]
    assert [r["version"] for r in study["study_srs"]] == [2, 1]
    assert len(study["images"]) == 3
    v2 = study["study_srs"][0]["sop_instance_uid"]
    at_pacs = _wait(site, lambda: _arrived(site, study), 60, "both versions at the PACS")
    sr2 = at_pacs[v2]
    sr2.save_as(tmp_path / "v2.dcm", enforce_file_format=True)
    assert_dciodvfy_clean(tmp_path / "v2.dcm")
    predecessor = sr2.PredecessorDocumentsSequence[0]
    named = predecessor.ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
    assert named.ReferencedSOPInstanceUID == v1
    back = read_study_sr(sr2)
    assert back.version == 2 and back.replaces is not None
    assert back.replaces.sop_instance_uid == v1
    assert {h.side for h in back.hands} == {"L", "R"}
