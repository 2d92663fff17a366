"""Other senders against a real node (``rascore serve`` on embedded defaults): dcmtk's storescu
with each transfer syntax proposed alone, dcmtk's dcmsend, pynetdicom's SCU and Orthanc. Each
object is accepted and scored, or refused, exactly as the conformance statement says: the
expected (SOP class, transfer syntax) pairs come from the generator's own table."""

from __future__ import annotations

import json
import subprocess
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from interop_files import GSPS_STORAGE, in_syntax, refused_ct, refused_gsps, small_base
from pydicom.uid import (
    UID,
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
)
from pynetdicom import AE
from servers import NodeProcess, Orthanc, require, wait_for
from sqlalchemy import select

from worker.conformance.network import accepted_contexts
from worker.db.engine import session_scope
from worker.db.models import Instance, InstanceStatus

#: what the statement says the SCP accepts: SOP class -> transfer syntaxes
ACCEPTED: dict[str, list[str]] = dict(accepted_contexts())
CR = "1.2.840.10008.5.1.4.1.1.1"
DX = "1.2.840.10008.5.1.4.1.1.1.1"
HTJ2K_LOSSLESS = "1.2.840.10008.1.2.4.201"  # a syntax the statement does not list
#: storescu's option proposing each syntax (storescu --help of this dcmtk)
STORESCU = {
    "-xi": "1.2.840.10008.1.2",
    "-xe": "1.2.840.10008.1.2.1",
    "-xb": "1.2.840.10008.1.2.2",
    "-xd": "1.2.840.10008.1.2.1.99",
    "-xr": "1.2.840.10008.1.2.5",
    "-xs": "1.2.840.10008.1.2.4.70",
    "-xy": "1.2.840.10008.1.2.4.50",
    "-xx": "1.2.840.10008.1.2.4.51",
    "-xt": "1.2.840.10008.1.2.4.80",
    "-xu": "1.2.840.10008.1.2.4.81",
    "-xv": "1.2.840.10008.1.2.4.90",
    "-xw": "1.2.840.10008.1.2.4.91",
}
SCORING_S = 150


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small CR and a small DX phantom, explicit little endian, 12 bits."""
    from scoring.phantom import PhantomConfig, generate_image
    from worker.lab.phantom_export import write_image

    out = tmp_path_factory.mktemp("interop-bases")
    made = {}
    for modality, index in (("CR", 0), ("DX", 1)):
        config = PhantomConfig(hands=1, modalities=(modality,), noise=False)  # type: ignore[arg-type]
        record = write_image(4343, generate_image(4343, index, config), out)
        made[modality] = small_base(out / record["file"], out / f"{modality}.dcm")
    assert str(pydicom.dcmread(made["DX"], stop_before_pixels=True).SOPClassUID) == DX
    return made


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    server = NodeProcess(tmp_path_factory.mktemp("interop-node"), {}).start()
    yield server
    server.stop()


@pytest.fixture
def made(tmp_path: Path, bases: dict[str, Path]) -> Iterator[_Maker]:
    yield _Maker(tmp_path, bases)


class _Maker:
    """New instances of the bases, each in the syntax asked for."""

    def __init__(self, directory: Path, bases: dict[str, Path]) -> None:
        self.directory, self.bases, self.count = directory, bases, 0

    def __call__(self, syntax: str, modality: str = "CR") -> Path:
        self.count += 1
        return in_syntax(self.bases[modality], syntax, self.directory / f"{self.count}.dcm")


def _uid(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def _received(node: NodeProcess, uids: list[str]) -> dict[str, tuple[str, str]]:
    """SOP Instance UID -> (status, transfer syntax as received) of what the node holds."""
    with session_scope(node.database_url) as session:
        rows = session.scalars(select(Instance).where(Instance.sop_instance_uid.in_(uids)))
        return {r.sop_instance_uid: (str(r.status), r.transfer_syntax) for r in rows}


def _wait_scored(node: NodeProcess, uids: list[str]) -> dict[str, tuple[str, str]]:
    def done() -> bool:
        held = _received(node, uids)
        finished = {InstanceStatus.SCORED, InstanceStatus.FAILED, InstanceStatus.SKIPPED}
        return len(held) == len(uids) and all(s in finished for s, _ in held.values())

    wait_for(done, SCORING_S, "the node to score what it accepted", every=0.5)
    return _received(node, uids)


def _stored(syntax: str) -> str:
    """The syntax the node keeps an instance in: as sent, but Deflated ones are stored
    inflated (the statement's Conformance of the SCP)."""
    return str(ExplicitVRLittleEndian) if syntax == DeflatedExplicitVRLittleEndian else syntax


def _assert_scored_as_sent(node: NodeProcess, sent: dict[str, str]) -> None:
    """Every instance (SOP Instance UID -> syntax sent in) scored, and held as sent."""
    held = _wait_scored(node, list(sent))
    wrong = {
        sent[uid]: held[uid]
        for uid in sent
        if held[uid] != (InstanceStatus.SCORED, _stored(sent[uid]))
    }  # fmt: skip
    assert not wrong, f"not scored in the syntax sent: {wrong}\n{node.worker_log()[-3000:]}"


def _run(*command: str) -> str:
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
    return proc.stdout + proc.stderr


def test_storescu_with_each_syntax_proposed_alone(node: NodeProcess, made: _Maker) -> None:
    """storescu -R <syntax>: only the file's SOP class, the syntax proposed in a context of its
    own (the fallbacks in another); the node keeps it in that syntax and scores it."""
    exe = require("storescu", "dcmtk")
    sent: dict[str, str] = {}
    refused = []
    for option, syntax in STORESCU.items():
        path = made(syntax)
        output = _run(exe, "-v", "-R", option, "-aec", "RASCORE",
                      "127.0.0.1", str(node.port), str(path))  # fmt: skip
        if syntax in ACCEPTED[CR]:
            assert "Received Store Response (Success)" in output, (option, output)
            sent[_uid(path)] = syntax
        else:
            assert "Received Store Response" not in output, (option, output)
            refused.append(_uid(path))
    _assert_scored_as_sent(node, sent)
    assert _received(node, refused) == {}


def test_storescu_refuses_what_the_statement_does_not_list(
    node: NodeProcess, bases: dict[str, Path], tmp_path: Path
) -> None:
    """A CT image and a GSPS: the node accepts no context for them, so nothing is stored."""
    assert CTImageStorage not in ACCEPTED and GSPS_STORAGE not in ACCEPTED
    exe = require("storescu", "dcmtk")
    for path in (
        refused_ct(bases["CR"], tmp_path / "ct.dcm"),
        refused_gsps(bases["CR"], tmp_path / "gsps.dcm"),
    ):
        output = _run(exe, "-v", "-R", "-aec", "RASCORE", "127.0.0.1", str(node.port), str(path))
        assert "Received Store Response" not in output, output
        assert "No Acceptable Presentation Contexts" in output, output
        assert _received(node, [_uid(path)]) == {}


def test_dcmsend_negotiates_per_file(
    node: NodeProcess, made: _Maker, bases: dict[str, Path], tmp_path: Path
) -> None:
    """dcmsend proposes each file's own syntax (never decompressing): the accepted files are
    scored as sent, the CT and the GSPS in the same batch are refused and skipped."""
    syntaxes = ["1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.1.99"]
    files = {made(ts): ts for ts in syntaxes}
    files[made("1.2.840.10008.1.2.4.90", "DX")] = "1.2.840.10008.1.2.4.90"
    ct = refused_ct(bases["CR"], tmp_path / "ct.dcm")
    gsps = refused_gsps(bases["CR"], tmp_path / "gsps.dcm")
    output = _run(require("dcmsend", "dcmtk"), "-v", "-nh", "-dn", "-aec", "RASCORE",
                  "127.0.0.1", str(node.port), *map(str, [*files, ct, gsps]))  # fmt: skip
    assert all(ts in ACCEPTED[CR] and ts in ACCEPTED[DX] for ts in files.values())
    assert output.count("Received C-STORE Response (Success)") == len(files), output
    assert "NOT sent to the peer   : 2" in output, output  # no context for the CT or the GSPS
    _assert_scored_as_sent(node, {_uid(f): ts for f, ts in files.items()})
    assert _received(node, [_uid(ct), _uid(gsps)]) == {}, output


def test_pynetdicom_scu_gets_exactly_the_documented_contexts(
    node: NodeProcess, made: _Maker, bases: dict[str, Path], tmp_path: Path
) -> None:
    """Each (SOP class, syntax) pair proposed in a context of its own: accepted exactly when the
    statement lists it; C-STOREs on accepted contexts answer 0x0000 and are scored."""
    ae = AE(ae_title="PYNETDICOM")
    proposed = [(sop, ts) for sop in (CR, DX) for ts in ACCEPTED[sop]]
    proposed += [(CR, HTJ2K_LOSSLESS), (CTImageStorage, ExplicitVRLittleEndian),
                 (GSPS_STORAGE, ExplicitVRLittleEndian)]  # fmt: skip
    for sop, ts in proposed:
        ae.add_requested_context(sop, ts)
    files = {made("1.2.840.10008.1.2.4.57"): "1.2.840.10008.1.2.4.57",
             made("1.2.840.10008.1.2.4.51", "DX"): "1.2.840.10008.1.2.4.51",
             made("1.2.840.10008.1.2.1", "DX"): "1.2.840.10008.1.2.1"}  # fmt: skip
    assoc = ae.associate("127.0.0.1", node.port, ae_title="RASCORE")
    assert assoc.is_established
    try:
        accepted = {(str(c.abstract_syntax), str(c.transfer_syntax[0]))
                    for c in assoc.accepted_contexts}  # fmt: skip
        expected = {(sop, ts) for sop, ts in proposed if ts in ACCEPTED.get(str(sop), [])}
        assert accepted == expected
        for path in files:
            status = assoc.send_c_store(path)
            assert status.Status == 0x0000, (path, status)
    finally:
        assoc.release()
    _assert_scored_as_sent(node, {_uid(f): ts for f, ts in files.items()})


def test_orthanc_sends_a_study_to_the_node(
    node: NodeProcess, made: _Maker, bases: dict[str, Path], tmp_path: Path
) -> None:
    """Orthanc on its defaults, the node declared as a modality: the study it is asked to
    send arrives and is scored; a CT it is asked to send is refused (Orthanc reports it)."""
    orthanc = Orthanc(
        tmp_path / "orthanc", modalities={"rascore": f"RASCORE@127.0.0.1:{node.port}"}
    )
    orthanc.start()
    try:
        files = [made("1.2.840.10008.1.2.1"), made("1.2.840.10008.1.2.4.70")]
        studies = {orthanc.post("/instances", f.read_bytes())["ParentStudy"] for f in files}
        assert len(studies) == 1
        answer = orthanc.post("/modalities/rascore/store", json.dumps(list(studies)).encode())
        assert answer.get("FailedInstancesCount", 0) == 0, answer
        held = _wait_scored(node, [_uid(f) for f in files])
        for uid, (status, syntax) in held.items():
            assert status == InstanceStatus.SCORED, (uid, node.worker_log()[-3000:])
            assert syntax in ACCEPTED[CR]
        ct = refused_ct(bases["CR"], tmp_path / "ct.dcm")
        instance = orthanc.post("/instances", ct.read_bytes())["ID"]
        with pytest.raises(urllib.error.HTTPError):
            orthanc.post("/modalities/rascore/store", json.dumps([instance]).encode())
        assert _received(node, [_uid(ct)]) == {}
    finally:
        orthanc.stop()


def test_every_documented_syntax_is_exercised() -> None:
    """The senders above cover every syntax the statement lists for CR."""
    covered = {*STORESCU.values(), "1.2.840.10008.1.2.4.57"}
    assert set(ACCEPTED[CR]) <= covered
    assert all(UID(ts).is_transfer_syntax for ts in covered)
