"""The storage SCP under hostile peers (issue 11, findings 1, 3, 4, 11 and 16).

Real sockets and real pynetdicom associations against a real :class:`StorageSCP`: deflate
bombs, data sets and PDUs larger than the caps, slow and refused peers, per-host caps, orphaned
files, and the secure default for calling AE titles. Peers use 127.0.0.1 and 127.0.0.2 as two
loopback source addresses, and the machine's own non-loopback address where a test needs one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import select
import shutil
import socket
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import (
    ComputedRadiographyImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    generate_uid,
)
from pynetdicom import AE, _config, evt
from pynetdicom.dsutils import encode_file_meta, split_dataset
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from dicom_io.net import ReceivedInstance, StorageSCP

HOST = "127.0.0.1"
OTHER_HOST = "127.0.0.2"  # a second loopback source address: "another machine"
SCP_AET = "RASCORE"
MB = 1024 * 1024
REPO = Path(__file__).resolve().parents[1]


class Recorder:
    def __init__(self) -> None:
        self.received: list[ReceivedInstance] = []

    def __call__(self, instance: ReceivedInstance) -> int:
        self.received.append(instance)
        return 0x0000


# -- data sets ----------------------------------------------------------------------------------


def _encode(ds: Dataset) -> bytes:
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    write_dataset(fp, ds)
    return fp.getvalue()


def _cr(blob_bytes: int) -> tuple[Dataset, Iterator[bytes]]:
    """A small CR and the Explicit VR LE encoding of it with a private OB element of zeros of
    ``blob_bytes`` (before the pixel data, so ``stop_before_pixels`` does not skip it)."""
    ds = Dataset()
    ds.SOPClassUID = ComputedRadiographyImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "CR"
    ds.PatientID = "LIMITS"
    ds.Rows = ds.Columns = 8
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = bytes(64)
    head = Dataset()
    tail = Dataset()
    for element in ds:
        (head if element.tag.group < 0x0009 else tail).add(element)

    def chunks() -> Iterator[bytes]:
        yield _encode(head)
        creator = b"RASCORE TEST"
        yield struct.pack("<HH2sH", 0x0009, 0x0010, b"LO", len(creator)) + creator
        yield struct.pack("<HH2sHI", 0x0009, 0x1010, b"OB", 0, blob_bytes)
        zeros = bytes(MB)
        left = blob_bytes
        while left:
            yield zeros[: min(left, MB)]
            left -= min(left, MB)
        yield _encode(tail)

    return ds, chunks()


def _write(path: Path, blob_bytes: int, *, deflate: bool = False) -> Dataset:
    """Write a Part-10 CR file with a ``blob_bytes`` zero element, deflated or not."""
    ds, chunks = _cr(blob_bytes)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian if deflate else ExplicitVRLittleEndian
    meta.ImplementationClassUID = generate_uid()
    with open(path, "wb") as out:
        out.write(b"\x00" * 128 + b"DICM" + encode_file_meta(meta))
        deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        for chunk in chunks:
            out.write(deflater.compress(chunk) if deflate else chunk)
        if deflate:
            out.write(deflater.flush())
    return ds


def _send_file(port: int, path: Path, *, syntax: str, host: str = HOST) -> Dataset | None:
    """Send ``path`` as it is (no decoding) over a fresh association; the response status."""
    ae = AE("HOSTILE")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    ae.add_requested_context(ComputedRadiographyImageStorage, syntax)
    assoc = ae.associate(host, port, ae_title=SCP_AET)
    assert assoc.is_established
    try:
        status = assoc.send_c_store(path)
    finally:
        if assoc.is_established:
            assoc.release()
    return status


@pytest.fixture
def chunked_send(monkeypatch: pytest.MonkeyPatch) -> None:
    """Send files as they are on disk (a deflated one stays deflated)."""
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)


# -- finding 1: deflate bombs -------------------------------------------------------------------

_RSS_SCP = r"""
import sys
from dicom_io.net import StorageSCP

def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")

scp = StorageSCP(
    "RASCORE", 0, lambda received: 0, host="127.0.0.1", spool_dir=sys.argv[1],
    max_dataset_bytes=100 * 1024 * 1024,
)
scp.start()
print(scp.port, hwm(), flush=True)
sys.stdin.readline()
print(hwm(), len(list((scp.spool_dir / "incoming").iterdir())), flush=True)
scp.stop()
"""


def test_deflate_bomb_is_refused_without_inflating_it(tmp_path: Path, chunked_send: None) -> None:
    bomb = tmp_path / "bomb.dcm"
    _write(bomb, 300 * MB, deflate=True)
    assert bomb.stat().st_size < 2 * MB  # a small file ...
    proc = subprocess.Popen(
        [sys.executable, "-c", _RSS_SCP, str(tmp_path / "spool")],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        port_text, before = proc.stdout.readline().split()
        status = _send_file(int(port_text), bomb, syntax=DeflatedExplicitVRLittleEndian)
        proc.stdin.write("report\n")
        proc.stdin.flush()
        after, spooled = proc.stdout.readline().split()
    finally:
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait(30)
    grown = int(after) - int(before)
    print(f"deflate bomb (300 MB inflated): SCP peak RSS grew {grown / MB:.1f} MB")
    assert status is not None and status.Status == 0xC000  # ... that inflates to 300 MB
    assert "inflates beyond 100 MB" in str(status.get("ErrorComment", ""))
    assert grown < 100 * MB
    assert spooled == "0"
    assert not list((tmp_path / "spool" / "tmp").iterdir())


def test_a_deflated_data_set_is_spooled_inflated(tmp_path: Path, chunked_send: None) -> None:
    source = tmp_path / "small.dcm"
    sent = _write(source, 4096, deflate=True)
    recorder = Recorder()
    with StorageSCP(SCP_AET, 0, recorder, host=HOST, spool_dir=tmp_path / "spool") as scp:
        status = _send_file(scp.port, source, syntax=DeflatedExplicitVRLittleEndian)
    assert status is not None and status.Status == 0x0000
    [received] = recorder.received
    # later header reads (the node's receiver, the workers) can never inflate anything
    assert received.transfer_syntax == ExplicitVRLittleEndian
    spooled = pydicom.dcmread(received.path)
    assert spooled.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert spooled.SOPInstanceUID == sent.SOPInstanceUID
    assert spooled[0x0009, 0x1010].value == bytes(4096)
    assert spooled.PixelData == sent.PixelData


def _vm_hwm(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_the_node_refuses_a_deflate_bomb_and_its_memory_stays_flat(
    tmp_path: Path, chunked_send: None
) -> None:
    """``rascore serve`` on its defaults (256 MB cap) against a 1 MB file that inflates to 1 GB."""
    from servers import NodeProcess

    bomb = tmp_path / "bomb.dcm"
    _write(bomb, 1024 * MB, deflate=True)
    assert bomb.stat().st_size < 2 * MB
    node = NodeProcess(tmp_path / "node", {"RASCORE_WORKERS": "0", "RASCORE_API_PORT": "0"})
    node.start()
    try:
        assert node.process is not None
        before = _vm_hwm(node.process.pid)
        status = _send_file(node.port, bomb, syntax=DeflatedExplicitVRLittleEndian)
        grown = _vm_hwm(node.process.pid) - before
    finally:
        node.stop()
    print(f"deflate bomb (1 GB inflated) at the node: peak RSS grew {grown / MB:.1f} MB")
    assert status is not None and status.Status == 0xC000
    assert "inflates beyond 256 MB" in str(status.get("ErrorComment", ""))
    assert grown < 100 * MB
    spool = tmp_path / "node" / "spool"
    assert not list((spool / "tmp").iterdir()) and not list((spool / "incoming").iterdir())


# -- finding 3: data-set and PDU caps, temporary files, free space ------------------------------


def test_a_data_set_over_the_cap_is_aborted_while_it_arrives(
    tmp_path: Path, chunked_send: None, caplog: pytest.LogCaptureFixture
) -> None:
    big = tmp_path / "big.dcm"
    _write(big, 12 * MB)
    recorder = Recorder()
    with (
        caplog.at_level(logging.WARNING, logger="dicom_io.net"),
        StorageSCP(
            SCP_AET, 0, recorder, host=HOST, spool_dir=tmp_path / "spool", max_dataset_bytes=2 * MB
        ) as scp,
    ):
        status = _send_file(scp.port, big, syntax=ExplicitVRLittleEndian)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any((scp.spool_dir / "tmp").iterdir()):
            time.sleep(0.05)
    assert status is None or "Status" not in status  # aborted: no response
    [record] = [r for r in caplog.records if r.__dict__.get("event") == "dicom.association.aborted"]
    assert "data set larger than" in record.getMessage()
    assert record.__dict__["bytes"] <= 2 * MB + 256 * 1024  # stopped at the cap, not at 12 MB
    assert not recorder.received
    assert not list((scp.spool_dir / "tmp").iterdir())
    assert not list((scp.spool_dir / "incoming").iterdir())


def test_a_pdu_far_beyond_the_announced_maximum_is_not_buffered(tmp_path: Path) -> None:
    with StorageSCP(SCP_AET, 0, Recorder(), host=HOST, spool_dir=tmp_path) as scp:
        raw = socket.create_connection((HOST, scp.port), timeout=10)
        raw.sendall(b"\x04\x00" + struct.pack(">I", 0xFFFFFFF0))  # a P-DATA-TF of 4 GB
        sent = 0
        chunk = bytes(MB)
        with pytest.raises(OSError), raw:  # the SCP hangs up instead of reading it all
            while sent < 256 * MB:
                raw.sendall(chunk)
                sent += len(chunk)
        assert sent < 64 * MB
        assert _associates(scp.port)


def test_pynetdicom_temporary_files_are_on_the_spool_disk(
    tmp_path: Path, chunked_send: None
) -> None:
    source = tmp_path / "four-mb.dcm"
    _write(source, 4 * MB)
    seen: list[str] = []
    with StorageSCP(SCP_AET, 0, Recorder(), host=HOST, spool_dir=tmp_path / "spool") as scp:
        ae = AE("SENDER")
        ae.add_requested_context(ComputedRadiographyImageStorage, ExplicitVRLittleEndian)
        assoc = ae.associate(HOST, scp.port, ae_title=SCP_AET, max_pdu=64 * 1024)
        pdus = 0

        def look(event: evt.Event) -> None:
            nonlocal pdus
            pdus += 1
            if pdus == 5:  # well into the data set (16 PDUs of 256 KB)
                time.sleep(0.2)
                seen.extend(p.name for p in (scp.spool_dir / "tmp").iterdir())

        assoc.bind(evt.EVT_PDU_SENT, look)
        status = assoc.send_c_store(source)
        assoc.release()
    assert status.Status == 0x0000
    assert seen and all(not name.endswith(".part") for name in seen)


def test_a_received_image_is_written_once_and_renamed_into_the_spool(
    tmp_path: Path, chunked_send: None
) -> None:
    """pynetdicom's file, behind the spool's own meta, becomes the spooled file (no copy)."""
    source = tmp_path / "four-mb.dcm"
    _write(source, 4 * MB)
    inodes: set[int] = set()
    recorder = Recorder()
    with StorageSCP(SCP_AET, 0, recorder, host=HOST, spool_dir=tmp_path / "spool") as scp:
        ae = AE("SENDER")
        ae.add_requested_context(ComputedRadiographyImageStorage, ExplicitVRLittleEndian)
        assoc = ae.associate(HOST, scp.port, ae_title=SCP_AET)
        pdus = 0

        def look(event: evt.Event) -> None:
            nonlocal pdus
            pdus += 1
            if pdus == 5:
                time.sleep(0.2)
                inodes.update(p.stat().st_ino for p in (scp.spool_dir / "tmp").iterdir())

        assoc.bind(evt.EVT_PDU_SENT, look)
        status = assoc.send_c_store(source)
        assoc.release()
        assert status.Status == 0x0000
        [instance] = recorder.received
        assert inodes == {instance.path.stat().st_ino}
        assert not list((scp.spool_dir / "tmp").iterdir())
    data = instance.path.read_bytes()
    meta = pydicom.dcmread(instance.path, stop_before_pixels=True).file_meta
    assert meta.SourceApplicationEntityTitle == "SENDER"
    offset = len(data) - (source.stat().st_size - _meta_end(source))
    assert data[offset:] == source.read_bytes()[_meta_end(source) :]
    assert instance.sha256 == hashlib.sha256(data[offset:]).hexdigest()


def _meta_end(path: Path) -> int:
    return split_dataset(path)[1]


def test_free_space_is_checked_before_receipt(tmp_path: Path) -> None:
    with StorageSCP(
        SCP_AET, 0, Recorder(), host=HOST, spool_dir=tmp_path, min_free_bytes=1 << 62
    ) as scp:
        assoc = _associate(scp.port)
        assert assoc.is_rejected and not assoc.is_established  # type: ignore[attr-defined]
        rejection = assoc.acceptor.primitive  # type: ignore[attr-defined]
        assert rejection is not None and rejection.result == 0x02  # transient: try later


def test_free_space_is_checked_on_the_store_disk_too(tmp_path: Path) -> None:
    """The store's folder is watched as the spool's is: a store that is not there (an NFS
    mount gone) refuses associations; so, where this machine has a second file system with
    less room than the spool's, does a store on it below the watermark."""
    store = tmp_path / "store"
    store.mkdir()
    watermark = 1 * MB
    with StorageSCP(
        SCP_AET, 0, Recorder(), host=HOST, spool_dir=tmp_path, min_free_bytes=watermark,
        watch_free=[store],
    ) as scp:  # fmt: skip
        assert _associates(scp.port)
    store.rmdir()
    with StorageSCP(
        SCP_AET, 0, Recorder(), host=HOST, spool_dir=tmp_path, min_free_bytes=watermark,
        watch_free=[store],
    ) as scp:  # fmt: skip
        assert _associate(scp.port).is_rejected  # type: ignore[attr-defined]

    other = Path("/dev/shm")  # another file system, where there is one
    if not other.is_dir() or os.stat(tmp_path).st_dev == os.stat(other).st_dev:
        return
    spool_free, other_free = shutil.disk_usage(tmp_path).free, shutil.disk_usage(other).free
    if other_free > spool_free - 64 * MB:
        return
    watermark = (spool_free + other_free) // 2
    with StorageSCP(
        SCP_AET, 0, Recorder(), host=HOST, spool_dir=tmp_path, min_free_bytes=watermark
    ) as scp:
        assert _associates(scp.port)  # the spool's disk alone is above the watermark
    with StorageSCP(
        SCP_AET, 0, Recorder(), host=HOST, spool_dir=tmp_path, min_free_bytes=watermark,
        watch_free=[other],
    ) as scp:  # fmt: skip
        assert _associate(scp.port).is_rejected  # type: ignore[attr-defined]


# -- finding 4: association control ----------------------------------------------------------


def _associate(port: int, *, host: str = HOST, source: str = HOST, aet: str = "PEER") -> object:
    ae = AE(aet)
    ae.acse_timeout = ae.network_timeout = 10
    ae.add_requested_context(Verification)
    assoc = ae.associate(host, port, ae_title=SCP_AET, bind_address=(source, 0))
    if assoc.is_established:
        assoc.release()
    return assoc


def _associates(port: int, **kwargs: str) -> bool:
    ae = AE(kwargs.pop("aet", "PEER"))
    ae.acse_timeout = ae.network_timeout = 10
    ae.add_requested_context(Verification)
    host, source = kwargs.get("host", HOST), kwargs.get("source", HOST)
    assoc = ae.associate(host, port, ae_title=SCP_AET, bind_address=(source, 0))
    ok = bool(assoc.is_established)
    if ok:
        status = assoc.send_c_echo()
        ok = status.Status == 0x0000
        assoc.release()
    return ok


def _slow_peer(port: int, source: str = HOST) -> socket.socket:
    """A connection that starts an A-ASSOCIATE-RQ and then sends nothing more (yet)."""
    raw = socket.socket()
    raw.bind((source, 0))
    raw.settimeout(5)
    raw.connect((HOST, port))
    raw.sendall(b"\x01\x00" + struct.pack(">I", 68) + b"\x00")
    return raw


def _closed_within(raw: socket.socket, seconds: float, trickle: bool = False) -> float | None:
    """Seconds until the SCP closed ``raw`` (sending a byte every 0.25 s if ``trickle``)."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        readable, _, _ = select.select([raw], [], [], 0.25)
        if readable:
            try:
                if not raw.recv(4096):
                    return time.monotonic() - started
            except OSError:
                return time.monotonic() - started
        if trickle:
            try:
                raw.send(b"\x00")
            except OSError:
                return time.monotonic() - started
    return None


def test_refused_hosts_are_dropped_at_accept_and_take_no_slot(tmp_path: Path) -> None:
    with StorageSCP(
        SCP_AET, 0, Recorder(), host=HOST, spool_dir=tmp_path,
        allowed_hosts={OTHER_HOST}, max_associations=2, acse_timeout=20,
    ) as scp:  # fmt: skip
        refused = [_slow_peer(scp.port) for _ in range(2)]
        try:
            for raw in refused:
                assert _closed_within(raw, 2) is not None
            started = time.monotonic()
            assert _associates(scp.port, source=OTHER_HOST)
            assert time.monotonic() - started < 5
        finally:
            for raw in refused:
                raw.close()


def test_a_byte_a_second_peer_is_dropped_at_the_request_deadline(tmp_path: Path) -> None:
    with StorageSCP(
        SCP_AET, 0, Recorder(), host=HOST, spool_dir=tmp_path, max_associations=1, acse_timeout=2
    ) as scp:
        with _slow_peer(scp.port) as raw:
            took = _closed_within(raw, 15, trickle=True)
        assert took is not None and took < 2 + 4, took
        assert _associates(scp.port)


def test_a_pdu_that_stalls_midway_is_dropped(tmp_path: Path) -> None:
    with StorageSCP(
        SCP_AET, 0, Recorder(), host=HOST, spool_dir=tmp_path, network_timeout=2
    ) as scp:
        ae = AE("STALLER")
        ae.acse_timeout = ae.network_timeout = 60
        ae.add_requested_context(Verification)
        assoc = ae.associate(HOST, scp.port, ae_title=SCP_AET)
        assert assoc.is_established
        raw = assoc.dul.socket.socket  # type: ignore[union-attr]
        assert raw is not None
        started = time.monotonic()
        raw.sendall(b"\x04\x00" + struct.pack(">I", 1000) + bytes(10))  # 10 of 1000 bytes
        while assoc.is_established and time.monotonic() - started < 15:
            time.sleep(0.1)
        took = time.monotonic() - started
        assoc.abort()
    assert took < 2 + 4, took


def test_per_host_association_cap(tmp_path: Path) -> None:
    with StorageSCP(
        SCP_AET, 0, Recorder(), host=HOST, spool_dir=tmp_path,
        max_associations_per_host=2, acse_timeout=4,
    ) as scp:  # fmt: skip
        held = [_slow_peer(scp.port) for _ in range(2)]
        try:
            time.sleep(0.3)
            with _slow_peer(scp.port) as third:
                assert _closed_within(third, 2) is not None
            assert _associates(scp.port, source=OTHER_HOST)
            for raw in held:
                assert _closed_within(raw, 0.3) is None  # the first two are still served
        finally:
            for raw in held:
                raw.close()
        # their slots come back once their threads are gone (at most acse_timeout: a peer that
        # hangs up before its request still holds its slot until then, so that connecting and
        # hanging up in a loop cannot fill max_associations with lingering threads)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not _associates(scp.port):
            time.sleep(0.2)
        assert _associates(scp.port)


# -- finding 16: orphans ------------------------------------------------------------------------


def test_orphans_in_the_spool_are_swept_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = tmp_path / "spool"
    (spool / "tmp").mkdir(parents=True)
    (spool / "incoming").mkdir()
    orphans = [
        spool / "tmp" / "0123abcd.part",  # our own copy, cut short
        spool / "tmp" / "tmpk2j3h4.dcm",  # pynetdicom's, of a broken association
        spool / "incoming" / "feedbeef.dcm",  # spooled but never acknowledged
    ]
    for path in orphans:
        path.write_bytes(b"x" * 1000)
    with caplog.at_level(logging.INFO, logger="dicom_io.net"):
        scp = StorageSCP(SCP_AET, 0, Recorder(), host=HOST, spool_dir=spool, sweep_incoming=True)
        with scp:
            pass
    assert not any(path.exists() for path in orphans)
    [record] = [r for r in caplog.records if r.__dict__.get("event") == "dicom.spool.swept"]
    assert record.__dict__["files"] == 3


def test_store_images_no_instance_references_are_swept(tmp_path: Path) -> None:
    from worker.db import migrate
    from worker.db.engine import session_scope
    from worker.db.models import Instance, InstanceStatus, Study
    from worker.node.store import Store, sweep_orphan_images

    url = f"sqlite:///{tmp_path / 'rascore.db'}"
    migrate.upgrade(url)
    store = Store(tmp_path / "store")
    old = time.time() - 2 * 3600

    def image(name: str, age: float | None) -> str:
        key = Store.new_image_key(dt.datetime(2026, 1, 2, tzinfo=dt.UTC)).replace(
            Path(Store.new_image_key()).stem, name
        )
        path = store.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"dicom")
        if age is not None:
            os.utime(path, (age, age))
        return key

    referenced = image("a" * 32, old)
    orphan = image("b" * 32, old)
    in_flight = image("c" * 32, None)  # a C-STORE between filing and commit, right now
    with session_scope(url) as session:
        study = Study(study_instance_uid="1.2.3", patient_id="", patient_name="")
        session.add(study)
        session.flush()
        session.add(
            Instance(
                study_id=study.id, sop_instance_uid="1.2.3.4", sop_class_uid="1.2",
                sha256="0" * 64, transfer_syntax="1.2.840.10008.1.2.1", size=5,
                store_key=referenced, status=InstanceStatus.QUEUED,
            )
        )  # fmt: skip
    swept = sweep_orphan_images(store, url, grace_s=3600)
    assert swept.removed == 1
    assert store.path(referenced).exists()
    assert not store.path(orphan).exists()
    assert store.path(in_flight).exists()


# -- finding 11: secure defaults ----------------------------------------------------------------


def _non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent
            address = str(probe.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_listening_beyond_loopback_refuses_unknown_calling_aets(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from worker.node.serve import storage_scp
    from worker.settings import Settings

    base = {"home": tmp_path, "dicom_port": 0}
    # the policy, wherever the test runs: nobody from elsewhere until allowed explicitly
    assert Settings(dicom_host="0.0.0.0", **base).allowed_aet_list == []  # type: ignore[arg-type]
    assert Settings(dicom_host="127.0.0.1", **base).allowed_aet_list is None  # type: ignore[arg-type]
    address = _non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    (tmp_path / "store").mkdir()  # the node makes it at start
    wide = Settings(dicom_host="0.0.0.0", **base)  # type: ignore[arg-type]
    with (
        caplog.at_level(logging.WARNING, logger="dicom_io.net"),
        storage_scp(wide, Recorder()) as scp,
    ):
        assert not _associates(scp.port, host=address, source=address, aet="STRANGER")
        assert _associates(scp.port, aet="LOCALTOOL")  # this machine's own tools still work
    [record] = [
        r for r in caplog.records if r.__dict__.get("event") == "dicom.association.rejected"
    ]
    assert "RASCORE_ALLOWED_AETS" in record.getMessage()
    listed = Settings(dicom_host="0.0.0.0", allowed_aets="PACS", **base)  # type: ignore[arg-type]
    with storage_scp(listed, Recorder()) as scp:
        assert _associates(scp.port, host=address, source=address, aet="PACS")
        assert not _associates(scp.port, aet="LOCALTOOL")
    for open_to_all in ({"allowed_aets": "*"}, {"accept_any_aet": True}):
        anyone = Settings(dicom_host="0.0.0.0", **base, **open_to_all)  # type: ignore[arg-type]
        with storage_scp(anyone, Recorder()) as scp:
            assert _associates(scp.port, host=address, source=address, aet="STRANGER")
    local = Settings(dicom_host="127.0.0.1", **base)  # type: ignore[arg-type]
    with storage_scp(local, Recorder()) as scp:
        assert _associates(scp.port, aet="STRANGER")
