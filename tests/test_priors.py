"""Prior studies from the PACS: Orthanc holds a patient's earlier hand studies, the node finds
them by C-FIND, fetches them by C-MOVE, and scores them; a PACS that is down delays the study
and never fails it.

Orthanc is the PACS; the node's AE is declared in its ``DicomModalities`` (as a site declares
it) so that it answers the node's queries and moves studies to it.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.uid import generate_uid
from pynetdicom import AE, AllStoragePresentationContexts, evt
from servers import NodeProcess, Orthanc, free_port, storescu, wait_for
from sqlalchemy import func, select

from dicom_io.net.qr import PeerUnavailable, find_studies, move_study
from worker.db.engine import session_scope
from worker.db.models import AuditEvent, ImageScoreRow, Instance, Study
from worker.jobs.priors import PRIOR_QUERY, PRIOR_RETRIEVE, request_priors
from worker.settings import Settings

PATIENT = "PRIORS-PT-1"
OTHER = "PRIORS-PT-2"
WORDS = ("HAND", "MANO", "MAIN", "HAND PA", "HANDS")
NEW_DATE = dt.date(2026, 1, 5)
SEED = 515


@dataclass(frozen=True)
class Studies:
    """The phantom studies of the tests, by role; each a single-image study."""

    files: dict[str, Path]
    uids: dict[str, str]


def _study(
    out: Path, name: str, index: int, patient: str, date: str, *, chest: bool = False
) -> tuple[Path, str]:
    """A phantom radiograph rewritten as study ``name`` of ``patient`` on ``date``."""
    from scoring.phantom import PhantomConfig, generate_image
    from worker.lab.phantom_export import write_image

    folder = out / name
    folder.mkdir()
    record = write_image(SEED, generate_image(SEED, index, PhantomConfig(hands=1)), folder)
    path = folder / record["file"]
    ds = pydicom.dcmread(path)
    ds.PatientID = patient
    ds.PatientName = f"PHANTOM^{patient}"
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyDate = ds.ContentDate = ds.SeriesDate = date
    ds.AccessionNumber = name[:16]
    if chest:
        ds.StudyDescription = "XR CHEST PA"
        ds.SeriesDescription = "Chest PA"
        ds.BodyPartExamined = "CHEST"
    ds.save_as(path)
    return path, str(ds.StudyInstanceUID)


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> Studies:
    out = tmp_path_factory.mktemp("priors")
    plan = {
        "prior1": (0, PATIENT, "20180312", False),
        "prior2": (1, PATIENT, "20220607", False),
        "too_old": (2, PATIENT, "20100101", False),  # outside the ten years
        "chest": (3, PATIENT, "20200202", True),
        "other": (4, OTHER, "20210101", False),
        "new": (5, PATIENT, NEW_DATE.strftime("%Y%m%d"), False),
    }
    files, uids = {}, {}
    for name, (index, patient, date, chest) in plan.items():
        files[name], uids[name] = _study(out, name, index, patient, date, chest=chest)
    return Studies(files, uids)


def _load_pacs(orthanc: Orthanc, studies: Studies, *names: str) -> None:
    files = [studies.files[n] for n in names]
    output = storescu(orthanc.dicom_port, *files, called=orthanc.aet)
    assert output.count("Received Store Response (Success)") == len(files), output


class _StorageSCP:
    """A plain storage SCP (pynetdicom) standing in for the node: records what it receives."""

    def __init__(self, aet: str = "RASCORE") -> None:
        self.port = free_port()
        self.received: list[tuple[str, str]] = []  #: (Study, SOP Instance UID)
        self._lock = threading.Lock()
        self.ae = AE(ae_title=aet)
        self.ae.supported_contexts = AllStoragePresentationContexts
        self.server: Any = None

    def _on_store(self, event: Any) -> int:
        ds = event.dataset
        with self._lock:
            self.received.append((str(ds.StudyInstanceUID), str(ds.SOPInstanceUID)))
        return 0x0000

    def __enter__(self) -> _StorageSCP:
        self.server = self.ae.start_server(
            ("127.0.0.1", self.port), block=False, evt_handlers=[(evt.EVT_C_STORE, self._on_store)]
        )
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()


# -- the SCU against Orthanc ---------------------------------------------------------------------


def test_find_and_move_against_orthanc(tmp_path: Path, studies: Studies) -> None:
    """C-FIND finds exactly the patient's hand studies of the date range (not another patient's,
    not a chest, not an older one); C-MOVE brings one to a storage SCP; a move to an AE the PACS
    does not know fails with its status; a PACS that is down raises one typed, one-line error."""
    with _StorageSCP() as scp:
        orthanc = Orthanc(
            tmp_path / "orthanc", modalities={"node": f"RASCORE@127.0.0.1:{scp.port}"}
        )
        orthanc.start()
        try:
            _load_pacs(orthanc, studies, "prior1", "prior2", "too_old", "chest", "other")
            since = dt.date(2016, 1, 5)
            found = find_studies(orthanc.destination, PATIENT, since, NEW_DATE, words=WORDS)
            assert [m.study_instance_uid for m in found] == [
                studies.uids["prior1"],
                studies.uids["prior2"],
            ]  # oldest first
            assert found[0].study_date == dt.date(2018, 3, 12)
            assert {m.modalities[0] for m in found} <= {"CR", "DX"}
            assert all(m.reason.endswith("says hand") for m in found)
            # the older study is found when the range reaches it; the chest never is
            everything = find_studies(orthanc.destination, PATIENT, None, None, words=WORDS)
            assert {m.study_instance_uid for m in everything} == {
                studies.uids[n] for n in ("prior1", "prior2", "too_old")
            }
            with pytest.raises(ValueError, match="empty"):
                find_studies(orthanc.destination, " ", None)

            moved = move_study(orthanc.destination, studies.uids["prior2"], "RASCORE")
            assert moved.ok and (moved.completed, moved.failed) == (1, 0), moved
            wait_for(lambda: len(scp.received) == 1, 10, "the moved instance")
            assert scp.received[0][0] == studies.uids["prior2"]

            unknown = move_study(orthanc.destination, studies.uids["prior1"], "NOBODY")
            assert not unknown.ok and unknown.status != 0, unknown
        finally:
            orthanc.stop()
    with pytest.raises(PeerUnavailable) as down:
        find_studies(orthanc.destination, PATIENT, None, timeout=5)
    assert "\n" not in str(down.value) and orthanc.destination in str(down.value)
    with pytest.raises(PeerUnavailable):
        move_study(orthanc.destination, studies.uids["prior1"], "RASCORE", timeout=5)


# -- the node ------------------------------------------------------------------------------------


@pytest.fixture
def node_and_pacs(tmp_path: Path) -> Iterator[tuple[NodeProcess, Orthanc]]:
    port = free_port()
    orthanc = Orthanc(tmp_path / "orthanc", modalities={"rascore": f"RASCORE@127.0.0.1:{port}"})
    node = NodeProcess(
        tmp_path / "node",
        {
            "RASCORE_DICOM_PORT": str(port),
            "RASCORE_QR_PEER": orthanc.destination,
            "RASCORE_PRIORS_RETRY_S": "0",
        },
    )
    orthanc.start()
    node.start()
    try:
        yield node, orthanc
    finally:
        node.stop()
        orthanc.stop()


def _events(url: str, name: str) -> list[dict[str, Any]]:
    with session_scope(url) as session:
        rows = session.scalars(select(AuditEvent).where(AuditEvent.event == name))
        return [dict(e.detail) for e in rows]


def _scored_in(url: str, study_uid: str) -> int:
    with session_scope(url) as session:
        query = (
            select(func.count(ImageScoreRow.id))
            .join(Instance, ImageScoreRow.instance_id == Instance.id)
            .join(Study)
            .where(Study.study_instance_uid == study_uid)
        )
        return int(session.scalar(query) or 0)


def _study_id(url: str, uid: str) -> int | None:
    with session_scope(url) as session:
        return session.scalar(select(Study.id).where(Study.study_instance_uid == uid))


def test_request_priors_with_a_running_node(
    node_and_pacs: tuple[NodeProcess, Orthanc], studies: Studies
) -> None:
    """A new study arrives; with the PACS down its priors wait (False, nothing raised); once the
    PACS is back both priors are moved to the node, filed and scored; every query and retrieval
    is in the audit trail; asking again changes nothing."""
    node, orthanc = node_and_pacs
    _load_pacs(orthanc, studies, "prior1", "prior2", "too_old", "chest", "other", "new")
    assert "Success" in storescu(node.port, studies.files["new"])
    url = node.database_url
    study_id = wait_for(lambda: _study_id(url, studies.uids["new"]), 30, "the new study filed")
    settings = Settings(
        home=node.home, qr_peer=orthanc.destination, priors_retry_s=0, ae_title="RASCORE"
    )

    orthanc.stop()
    assert request_priors(settings, study_id) is False
    failed = _events(url, PRIOR_QUERY)
    assert [e["outcome"] for e in failed] == ["failed"]
    assert failed[0]["peer"] == orthanc.destination and failed[0]["error"]

    orthanc.start()
    wait_for(lambda: request_priors(settings, study_id), 60, "the priors settled", every=1.0)
    priors = {studies.uids["prior1"], studies.uids["prior2"]}
    wait_for(
        lambda: all(_scored_in(url, uid) == 1 for uid in priors), 120, "priors scored", every=1.0
    )

    queries = _events(url, PRIOR_QUERY)
    assert [e["outcome"] for e in queries] == ["failed", "ok"]
    assert set(queries[1]["to_fetch"]) == set(queries[1]["found"]) == priors
    assert queries[1]["since"] == "2016-01-05" and queries[1]["until"] == "2026-01-05"
    every_retrieve = _events(url, PRIOR_RETRIEVE)
    # each move is recorded as it starts (so its images' results stay home) and as it ends
    assert [e["outcome"] for e in every_retrieve].count("moving") == len(priors)
    retrieves = [e for e in every_retrieve if e["outcome"] != "moving"]
    assert {e["prior_study_instance_uid"] for e in retrieves} == priors
    assert all(e["outcome"] == "ok" and e["completed"] == 1 for e in retrieves), retrieves
    assert all(e["study_instance_uid"] == studies.uids["new"] for e in retrieves)
    for detail in queries + retrieves:  # the audit detail names studies, never the patient
        assert PATIENT not in str(detail)

    # idempotent: asked again, nothing is queried or moved; a prior asks for nothing itself
    assert request_priors(settings, study_id) is True
    prior_id = _study_id(url, studies.uids["prior2"])
    assert prior_id is not None and request_priors(settings, prior_id) is True
    assert len(_events(url, PRIOR_QUERY)) == 2 and len(_events(url, PRIOR_RETRIEVE)) == 4
    # the chest, the older study and the other patient's never reached the node
    for name in ("chest", "too_old", "other"):
        assert _study_id(url, studies.uids[name]) is None
    # without a PACS configured the priors are settled at once
    assert request_priors(Settings(home=node.home, qr_peer=""), study_id) is True


# -- the state in the audit trail, on PostgreSQL --------------------------------------------------


def test_priors_state_on_postgresql(tmp_path: Path) -> None:
    """The state kept in the audit trail's JSON reads the same on PostgreSQL: a PACS that does
    not answer delays the study and is not asked again before the retry time; a study without a
    Patient ID asks for nothing (a query would match every patient)."""
    from servers import PostgresServer

    from worker.db.migrate import upgrade

    postgres = PostgresServer().start()
    try:
        url = postgres.create_database("priors")
        upgrade(url)
        with session_scope(url) as session:
            known = Study(
                study_instance_uid=generate_uid(), patient_id=PATIENT, study_date=NEW_DATE
            )
            anonymous = Study(study_instance_uid=generate_uid(), patient_id="")
            session.add_all([known, anonymous])
        down = f"PACS@127.0.0.1:{free_port()}"  # nothing listens there
        settings = Settings(home=tmp_path, database_url=url, qr_peer=down, priors_retry_s=0)
        assert request_priors(settings, known.id) is False
        assert request_priors(settings, known.id) is False
        patient_events = [
            e
            for e in _events(url, PRIOR_QUERY)
            if e["study_instance_uid"] == known.study_instance_uid
        ]
        assert [e["outcome"] for e in patient_events] == ["failed", "failed"]
        assert "cannot connect" in patient_events[0]["error"]
        later = Settings(home=tmp_path, database_url=url, qr_peer=down, priors_retry_s=3600)
        assert request_priors(later, known.id) is False
        assert len(_events(url, PRIOR_QUERY)) == 2  # not asked again before the retry time

        assert request_priors(settings, anonymous.id) is True
        skipped = [e for e in _events(url, PRIOR_QUERY) if e["outcome"] == "skipped"]
        assert len(skipped) == 1 and skipped[0]["reason"] == "no Patient ID"
        assert request_priors(settings, anonymous.id) is True
        assert len(_events(url, PRIOR_QUERY)) == 3
        assert request_priors(settings, 10_000) is True  # an unknown study waits for nothing
    finally:
        postgres.stop()
