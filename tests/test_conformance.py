"""The DICOM conformance statement: the committed document is what the code generates, and
what it says is what the node does — the contexts its SCP accepts (asked over a real
association), the statuses a sender gets, the module of every attribute (as dciodvfy sees it)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, build_context

from dicom_io.net import (
    CannotUnderstand,
    DataSetMismatch,
    OutOfResources,
    ReceivedInstance,
    SOPClassNotSupported,
    StorageSCP,
)
from dicom_io.net import scp as scp_module
from worker.conformance import generate, network, prose
from worker.conformance.configuration import DICOM_SETTINGS, documented
from worker.conformance.modules import DCIODVFY_NAMES, UNPLACED, module_of
from worker.conformance.objects import objects
from worker.node.receivers import storage_scp
from worker.settings import Settings

DOC = Path(__file__).resolve().parents[1] / "docs" / "conformance-statement.md"
UID = re.compile(r"^\d+(\.\d+)+$")
#: SOP classes and syntaxes the node must refuse: the results it only sends, a CT, HTJ2K
REFUSED = (
    ("1.2.840.10008.5.1.4.1.1.88.34", ExplicitVRLittleEndian),
    ("1.2.840.10008.5.1.4.1.1.11.1", ExplicitVRLittleEndian),
    ("1.2.840.10008.5.1.4.1.1.2", ExplicitVRLittleEndian),
    ("1.2.840.10008.5.1.4.1.1.1", "1.2.840.10008.1.2.4.201"),
)


@pytest.fixture(scope="module")
def document() -> str:
    return DOC.read_text(encoding="utf-8")


def _rows(document: str, header: str) -> list[list[str]]:
    """The rows of the table whose header line starts with ``header``."""
    lines = document.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split(" | ")])
    return rows


def test_the_committed_statement_is_what_the_code_generates(document: str) -> None:
    assert document == generate(), (
        "docs/conformance-statement.md differs from the code: "
        "run rascore conformance --out docs/conformance-statement.md"
    )


def test_check_exits_1_with_a_one_line_summary(tmp_path: Path, document: str) -> None:
    stale = tmp_path / "statement.md"
    stale.write_text(document.replace("| 11112 |", "| 104 |"), encoding="utf-8")
    command = [sys.executable, "-m", "worker", "conformance", "--check"]
    proc = subprocess.run([*command, str(stale)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("\n") == 1 and "2 line(s) differ" in proc.stderr
    assert "run rascore conformance --out" in proc.stderr
    proc = subprocess.run([*command, str(DOC)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="module")
def node_scp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StorageSCP]:
    """The node's own SCP (as ``rascore serve`` makes it), on a free loopback port."""
    home = tmp_path_factory.mktemp("home")
    settings = Settings(home=home, dicom_host="127.0.0.1", dicom_port=0, min_free_mb=0)
    scp = storage_scp(settings, lambda _instance: 0x0000)
    scp.start()
    yield scp
    scp.stop()


def test_the_scp_accepts_exactly_the_documented_contexts(
    document: str, node_scp: StorageSCP
) -> None:
    """One association proposes each documented pair, and a few the node must refuse, as a
    context of its own: the accepted ones are the document's table, no more, no less."""
    rows = _rows(document, "| Abstract syntax | SOP class UID | Transfer syntax | UID |")
    documented_pairs = {(r[1], r[3]) for r in rows}
    assert all(UID.match(s) and UID.match(t) for s, t in documented_pairs)
    proposed = [build_context(sop, [ts]) for sop, ts in sorted(documented_pairs) + list(REFUSED)]
    ae = AE(ae_title="CONFTEST")
    assoc = ae.associate("127.0.0.1", node_scp.port, contexts=proposed, ae_title="RASCORE")
    assert assoc.is_established
    try:
        accepted = {(str(cx.abstract_syntax), str(cx.transfer_syntax[0]))
                    for cx in assoc.accepted_contexts}  # fmt: skip
    finally:
        assoc.release()
    assert accepted == documented_pairs


def test_the_scp_accepts_the_documented_preference(document: str, node_scp: StorageSCP) -> None:
    """A context proposing every syntax gets the one the document ranks first."""
    rows = _rows(document, "| Abstract syntax | SOP class UID | Transfer syntax | UID |")
    by_class: dict[str, list[tuple[int, str]]] = {}
    for row in rows:
        by_class.setdefault(row[1], []).append((int(row[4]), row[3]))
    contexts = [build_context(sop, [ts for _, ts in sorted(ranked, reverse=True)])
                for sop, ranked in by_class.items()]  # fmt: skip
    ae = AE(ae_title="CONFTEST")
    assoc = ae.associate("127.0.0.1", node_scp.port, contexts=contexts)
    assert assoc.is_established
    try:
        chosen = {str(cx.abstract_syntax): str(cx.transfer_syntax[0])
                  for cx in assoc.accepted_contexts}  # fmt: skip
    finally:
        assoc.release()
    assert chosen == {sop: min(ranked)[1] for sop, ranked in by_class.items()}


_RAISING: dict[int, Callable[[], Exception]] = {
    0x0122: lambda: SOPClassNotSupported("test"),
    0xA700: lambda: OutOfResources("test"),
    0xA900: lambda: DataSetMismatch("test"),
    0xC000: lambda: CannotUnderstand("test"),
    0xC211: lambda: RuntimeError("test"),
}


def test_every_documented_status_is_one_a_sender_gets(document: str, tmp_path: Path) -> None:
    """For each status in the table, a handler returning or raising it makes the SCP answer
    a real C-STORE with it; and the table lists every status the SCP can give."""
    listed = [int(r[0], 16) for r in _rows(document, "| Status | Category |")]
    assert set(listed) == set(network.store_statuses()) == set(prose.STATUS_WHEN)
    wanted = {"status": 0}

    def handler(_instance: ReceivedInstance) -> int:
        if wanted["status"] in _RAISING:
            raise _RAISING[wanted["status"]]()
        return wanted["status"]

    sample = objects()[1][2]  # the overlay: a Secondary Capture, which the SCP stores
    with StorageSCP("RASCORE", 0, handler, host="127.0.0.1", spool_dir=tmp_path) as scp:
        ae = AE(ae_title="CONFTEST")
        ae.add_requested_context(str(sample.SOPClassUID), [ExplicitVRLittleEndian])
        assoc = ae.associate("127.0.0.1", scp.port)
        assert assoc.is_established
        try:
            got = {}
            for status in listed:
                wanted["status"] = status
                answer: Dataset = assoc.send_c_store(sample)
                got[status] = int(answer.Status)
        finally:
            assoc.release()
    assert got == {s: s for s in listed}


def test_verification_is_answered(node_scp: StorageSCP) -> None:
    ae = AE(ae_title="CONFTEST")
    ae.add_requested_context("1.2.840.10008.1.1", [ImplicitVRLittleEndian])
    assoc = ae.associate("127.0.0.1", node_scp.port)
    assert assoc.is_established
    try:
        assert int(assoc.send_c_echo().Status) == 0x0000
    finally:
        assoc.release()


def test_the_rejections_are_the_scps() -> None:
    source = Path(scp_module.__file__).read_text(encoding="utf-8")
    for (result, origin, reason), _ in network.REJECTIONS:
        assert f"(0x{result:02X}, 0x{origin:02X}, 0x{reason:02X})" in source


def test_the_settings_listed_exist_and_are_documented() -> None:
    notes = documented()
    for name in DICOM_SETTINGS:
        assert name in Settings.model_fields, name
    assert notes.get("max_associations")


def test_every_attribute_sits_in_the_module_dciodvfy_verified_it_in(tmp_path: Path) -> None:
    exe = shutil.which("dciodvfy") or "/usr/bin/dciodvfy"
    if not Path(exe).exists():
        pytest.fail("dciodvfy is not installed (Debian dicom3tools)", pytrace=False)
    for number, (title, family, ds) in enumerate(objects()):
        path = tmp_path / f"{number}.dcm"
        ds.save_as(path, enforce_file_format=True)
        proc = subprocess.run([exe, "-verbose", str(path)], capture_output=True, text=True,
                              timeout=300)  # fmt: skip
        output = proc.stdout + proc.stderr
        assert not [line for line in output.splitlines() if line.startswith("Error")], output
        seen: dict[str, set[str]] = {}
        for keyword, module in re.findall(r"Element=<(\w+)> Module=<(\w+)>", output):
            seen.setdefault(keyword, set()).add(module)
        for element in ds:
            placed = module_of(family, element.keyword)
            assert placed != UNPLACED, f"{title}: {element.keyword} has no module"
            assert seen.get(element.keyword, set()) & set(DCIODVFY_NAMES[placed]), (
                f"{title}: {element.keyword} placed in {placed}, dciodvfy says "
                f"{seen.get(element.keyword)}"
            )
