"""The network pieces against real peers: dcmtk's echoscu/storescu against the SCP, dcmtk's
storescp against the SCU, and hostile input (garbage, unknown callers, unsupported SOP classes).

Everything listens on 127.0.0.1 only, on port 0 (the SCP) or on a port found free just before
(storescp), so the tests can run in parallel with pytest-xdist.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import FileMetaDataset
from pydicom.uid import (
    UID,
    ComputedRadiographyImageStorage,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    generate_uid,
)
from pynetdicom import AE, _config, evt
from pynetdicom.dsutils import encode_file_meta

from dicom_io.net import (
    MAX_CONTEXTS,
    CannotUnderstand,
    Destination,
    OutOfResources,
    ReceivedInstance,
    StorageSCP,
    StoreRefused,
    echo,
    parse_destinations,
    send_files,
    supported_contexts,
)
from dicom_io.net.scu import _batches, _Item

HOST = "127.0.0.1"
SCP_AET = "RASCORE"
UUID_NAME = re.compile(r"[0-9a-f]{32}\.dcm")

Checker = Callable[[Path | str], str]


# -- helpers ----------------------------------------------------------------------------------


class Recorder:
    """A store handler that records what it is given; queue exceptions to refuse instances."""

    def __init__(self) -> None:
        self.received: list[ReceivedInstance] = []
        self.fail_with: list[BaseException] = []
        self._lock = threading.Lock()

    def __call__(self, instance: ReceivedInstance) -> int:
        with self._lock:
            self.received.append(instance)
            # The handler owns the file: it must be complete and readable right now.
            assert instance.path.is_file()
            if self.fail_with:
                raise self.fail_with.pop(0)
        return 0x0000


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; install the Debian package dcmtk", pytrace=False)
    return found


def _dcmtk(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_tool(args[0]), *args[1:]], capture_output=True, text=True, timeout=timeout
    )


def _storescu(
    port: int, *files: Path, flags: tuple[str, ...] = (), aet: str = "MODALITY"
) -> subprocess.CompletedProcess[str]:
    # -d prints the DIMSE status of every response; -R proposes only the files' SOP classes.
    return _dcmtk(
        "storescu", "-d", "-R", "-to", "10", "-ta", "10", "-td", "30",
        *flags, "-aet", aet, "-aec", SCP_AET, HOST, str(port), *map(str, files),
    )  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _dataset_bytes(path: Path) -> bytes:
    """The data set as stored, without preamble and file meta."""
    raw = path.read_bytes()
    group_length = int.from_bytes(raw[140:144], "little")
    return raw[144 + group_length :]


def _assert_same_instance(sent: Path, received: Path) -> None:
    a, b = pydicom.dcmread(sent), pydicom.dcmread(received)
    assert b.file_meta.MediaStorageSOPInstanceUID == a.SOPInstanceUID
    assert b.file_meta.MediaStorageSOPClassUID == a.SOPClassUID
    assert b.file_meta.TransferSyntaxUID == a.file_meta.TransferSyntaxUID
    assert a == b  # every element of the data set, pixel data included
    assert np.array_equal(a.pixel_array, b.pixel_array)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def scp(tmp_path: Path, recorder: Recorder) -> Iterator[StorageSCP]:
    with StorageSCP(
        SCP_AET,
        0,
        recorder,
        host=HOST,
        spool_dir=tmp_path / "spool",
        network_timeout=10,
        acse_timeout=5,
    ) as server:
        yield server


@pytest.fixture(scope="session")
def phantom_variants(
    phantom_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """The phantom uncompressed, and re-encoded (losslessly) in JPEG-LS and JPEG 2000."""
    out = tmp_path_factory.mktemp("encoded")
    variants = {"uncompressed": phantom_file}
    for name, syntax in (("jpeg-ls", JPEGLSLossless), ("jpeg2000", JPEG2000Lossless)):
        ds = pydicom.dcmread(phantom_file)
        ds.compress(syntax)
        ds.save_as(out / f"{name}.dcm", enforce_file_format=True)
        variants[name] = out / f"{name}.dcm"
    return variants


@contextmanager
def _storescp(out: Path, *flags: str, aet: str = "DEST") -> Iterator[Destination]:
    """dcmtk's storescp on a free port, writing to ``out``; stopped (by its pid) at the end."""
    out.mkdir(parents=True, exist_ok=True)
    exe = _tool("storescp")
    for _attempt in range(5):
        port = _free_port()
        proc = subprocess.Popen(
            [exe, "-aet", aet, "-od", str(out), "-ta", "10", *flags, str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        destination = Destination(aet, HOST, port)
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:
            if echo(destination, calling_ae="PROBE", timeout=2):
                break
            time.sleep(0.05)
        if proc.poll() is None:
            break
        proc.wait()  # port taken meanwhile (parallel tests): try another
    else:
        pytest.fail("storescp did not start")
    try:
        yield destination
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


# -- the SCP against dcmtk's SCUs -------------------------------------------------------------


def test_echoscu_succeeds(scp: StorageSCP) -> None:
    assert scp.port > 0
    result = _dcmtk("echoscu", "-v", "-aet", "MODALITY", "-aec", SCP_AET, HOST, str(scp.port))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Received Echo Response (Success)" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("variant", "flags"),
    [("uncompressed", ()), ("jpeg-ls", ("-xt",)), ("jpeg2000", ("-xv",))],
)
def test_storescu_file_arrives_complete_in_the_spool(
    scp: StorageSCP,
    recorder: Recorder,
    phantom_variants: dict[str, Path],
    phantom_file: Path,
    variant: str,
    flags: tuple[str, ...],
    assert_dcmdump_parses: Checker,
) -> None:
    sent = phantom_variants[variant]
    result = _storescu(scp.port, sent, flags=flags)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "0x0000: Success" in output

    [instance] = recorder.received
    sent_ds = pydicom.dcmread(sent, stop_before_pixels=True)
    assert instance.path.parent == scp.spool_dir / "incoming"
    assert UUID_NAME.fullmatch(instance.path.name), instance.path.name
    assert instance.sop_instance_uid == sent_ds.SOPInstanceUID
    assert instance.sop_class_uid == ComputedRadiographyImageStorage
    assert instance.transfer_syntax == sent_ds.file_meta.TransferSyntaxUID
    assert instance.calling_ae_title == "MODALITY"
    assert instance.called_ae_title == SCP_AET
    assert instance.calling_host == HOST
    assert instance.size == instance.path.stat().st_size
    assert [p.name for p in (scp.spool_dir / "incoming").iterdir()] == [instance.path.name]
    assert not list((scp.spool_dir / "tmp").iterdir())

    _assert_same_instance(sent, instance.path)
    # Lossless: the decoded pixels are the original phantom's.
    original = pydicom.dcmread(phantom_file).pixel_array
    assert np.array_equal(pydicom.dcmread(instance.path).pixel_array, original)
    assert instance.sha256 == hashlib.sha256(_dataset_bytes(instance.path)).hexdigest()
    meta = pydicom.dcmread(instance.path, stop_before_pixels=True).file_meta
    assert meta.SourceApplicationEntityTitle == "MODALITY"
    assert_dcmdump_parses(instance.path)


def test_out_of_resources_reaches_storescu_and_the_scp_goes_on(
    scp: StorageSCP, recorder: Recorder, phantom_file: Path
) -> None:
    recorder.fail_with.append(OutOfResources("spool below watermark"))
    refused = _storescu(scp.port, phantom_file)
    output = refused.stdout + refused.stderr
    assert refused.returncode != 0, output
    assert "0xa700" in output.lower(), output
    assert "spool below watermark" in output  # the Error Comment
    # A refused instance leaves nothing behind in the spool.
    assert not list((scp.spool_dir / "incoming").iterdir())

    accepted = _storescu(scp.port, phantom_file)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert len(recorder.received) == 2
    assert recorder.received[1].path.exists()


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (OutOfResources("disk full"), 0xA700),
        (CannotUnderstand("no pixel data"), 0xC000),
        (StoreRefused("custom", status=0xA7FE), 0xA7FE),
        (RuntimeError("bug in the handler"), 0xC211),
    ],
)
def test_handler_exceptions_become_statuses(
    scp: StorageSCP,
    recorder: Recorder,
    phantom_variants: dict[str, Path],
    error: BaseException,
    status: int,
) -> None:
    recorder.fail_with.append(error)
    files = [phantom_variants["jpeg-ls"], phantom_variants["jpeg-ls"]]
    first, second = send_files(f"{SCP_AET}@{HOST}:{scp.port}", files, calling_ae="OUTBOX")
    assert (first.status, first.ok) == (status, False)
    assert first.error is not None and f"0x{status:04X}" in first.error
    if status != 0xC211:  # an unexpected error's text stays in the log, not on the wire
        assert str(error) in first.error
    assert (second.status, second.ok) == (0x0000, True), second
    assert [p.name for p in (scp.spool_dir / "incoming").iterdir()] == [
        recorder.received[1].path.name
    ]


def test_spool_watermark_refuses_before_receipt(
    tmp_path: Path, phantom_variants: dict[str, Path]
) -> None:
    recorder = Recorder()
    with StorageSCP(
        SCP_AET, 0, recorder, host=HOST, spool_dir=tmp_path, min_free_bytes=1 << 62
    ) as scp:
        [status] = send_files(f"{SCP_AET}@{HOST}:{scp.port}", [phantom_variants["jpeg-ls"]])
    # rejected (transient, temporary congestion) at association, before a byte of the image
    assert (status.status, status.ok) == (None, False)
    assert status.error is not None and "Temporary congestion" in status.error
    assert not recorder.received
    assert not list((tmp_path / "incoming").iterdir())


def test_no_patient_data_in_the_logs(
    scp: StorageSCP,
    recorder: Recorder,
    phantom_variants: dict[str, Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    sent = phantom_variants["jpeg-ls"]
    ds = pydicom.dcmread(sent, stop_before_pixels=True)
    secrets = [str(ds.PatientName), str(ds.PatientID)]
    assert all(secrets)
    with caplog.at_level(logging.DEBUG):
        recorder.fail_with.append(RuntimeError(f"boom {ds.PatientID}"))
        statuses = send_files(f"{SCP_AET}@{HOST}:{scp.port}", [sent, sent])
    assert [s.status for s in statuses] == [0xC211, 0x0000]
    info_and_up = [r for r in caplog.records if r.levelno >= logging.INFO]
    stores = [r for r in info_and_up if r.__dict__.get("event") == "dicom.store"]
    assert [r.__dict__["dimse_status"] for r in stores] == [0xC211, 0x0000]
    for record in info_and_up:
        if record.exc_info:  # the handler's own traceback, at ERROR, is the handler's business
            continue
        text = record.getMessage() + repr(record.__dict__)
        assert not any(secret in text for secret in secrets), text


def test_calling_ae_title_not_on_the_allow_list_is_rejected(tmp_path: Path) -> None:
    recorder = Recorder()
    with StorageSCP(
        SCP_AET, 0, recorder, host=HOST, spool_dir=tmp_path, allowed_calling_aets={"PACS"}
    ) as scp:
        bad = _dcmtk("echoscu", "-v", "-aet", "INTRUDER", "-aec", SCP_AET, HOST, str(scp.port))
        assert bad.returncode != 0
        assert "Calling AE Title Not Recognized" in bad.stdout + bad.stderr
        good = _dcmtk("echoscu", "-aet", "PACS", "-aec", SCP_AET, HOST, str(scp.port))
        assert good.returncode == 0, good.stdout + good.stderr
        assert not echo(f"{SCP_AET}@{HOST}:{scp.port}", calling_ae="INTRUDER")
        [status] = send_files(
            f"{SCP_AET}@{HOST}:{scp.port}",
            [Path(get_testdata_file("CT_small.dcm"))],  # type: ignore[arg-type]
            calling_ae="INTRUDER",
        )
        assert not status.ok and status.status is None
        assert status.error is not None and "rejected" in status.error
    assert not recorder.received


def test_hosts_not_on_the_allow_list_are_rejected(tmp_path: Path) -> None:
    with StorageSCP(
        SCP_AET, 0, Recorder(), host=HOST, spool_dir=tmp_path, allowed_hosts={"10.0.0.0/8"}
    ) as scp:
        assert not echo(f"{SCP_AET}@{HOST}:{scp.port}")
        result = _dcmtk("echoscu", "-v", "-aec", SCP_AET, HOST, str(scp.port))
        assert result.returncode != 0  # closed at accept, before its request is read
    with StorageSCP(
        SCP_AET, 0, Recorder(), host=HOST, spool_dir=tmp_path, allowed_hosts={"127.0.0.0/8"}
    ) as scp:
        assert echo(f"{SCP_AET}@{HOST}:{scp.port}")


def test_unsupported_sop_class_is_refused(scp: StorageSCP, recorder: Recorder) -> None:
    mr = Path(get_testdata_file("MR_small.dcm"))  # type: ignore[arg-type]
    result = _storescu(scp.port, mr)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert re.search(r"no (acceptable )?presentation context", output, re.I), output

    [status] = send_files(f"{SCP_AET}@{HOST}:{scp.port}", [mr])
    assert not status.ok and status.status is None
    assert status.error is not None and "presentation context" in status.error
    assert not recorder.received
    assert echo(f"{SCP_AET}@{HOST}:{scp.port}")


def test_maximum_associations(tmp_path: Path) -> None:
    with StorageSCP(
        SCP_AET, 0, Recorder(), host=HOST, spool_dir=tmp_path, max_associations=1
    ) as scp:
        ae = AE("HOLDER")
        ae.add_requested_context("1.2.840.10008.1.1")
        held = ae.associate(HOST, scp.port, ae_title=SCP_AET)
        try:
            assert held.is_established
            assert not echo(f"{SCP_AET}@{HOST}:{scp.port}", timeout=5)
        finally:
            held.release()
        # once the held association is gone, a new one is accepted again; each try is itself
        # an association, so the loop keeps the answer instead of asking twice
        deadline = time.monotonic() + 10
        accepted = False
        while not accepted and time.monotonic() < deadline:
            time.sleep(0.25)
            accepted = echo(f"{SCP_AET}@{HOST}:{scp.port}")
        assert accepted


# -- hostile input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "garbage",
    [
        os.urandom(4096),
        b"GET / HTTP/1.1\r\nHost: rascore\r\n\r\n",
        # An A-ASSOCIATE-RQ header announcing 4 GB, then nothing.
        b"\x01\x00\xff\xff\xff\xff\x00\x01",
        b"",
    ],
    ids=["random", "http", "huge-pdu-header", "empty"],
)
def test_garbage_connections_do_not_stop_the_scp(
    scp: StorageSCP, recorder: Recorder, garbage: bytes
) -> None:
    for _ in range(3):
        with socket.create_connection((HOST, scp.port), timeout=5) as raw:
            raw.sendall(garbage)
    assert echo(f"{SCP_AET}@{HOST}:{scp.port}")
    assert not recorder.received


def test_a_transfer_broken_off_midway_leaves_nothing_behind(
    scp: StorageSCP,
    recorder: Recorder,
    phantom_file: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ds = pydicom.dcmread(phantom_file)
    ae = AE("BREAKER")
    ae.dimse_timeout = 5
    ae.add_requested_context(ComputedRadiographyImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate(HOST, scp.port, ae_title=SCP_AET)
    assert assoc.is_established
    sent = 0

    def cut_after_some_data(event: evt.Event) -> None:
        nonlocal sent
        sent += 1
        if sent == 10:  # well into the 11 MB data set, well before its end
            event.assoc.dul.socket.close()  # type: ignore[union-attr]

    assoc.bind(evt.EVT_PDU_SENT, cut_after_some_data)
    with caplog.at_level(logging.WARNING, logger="dicom_io.net"):
        status = assoc.send_c_store(ds)
        assert "Status" not in status
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(
            getattr(r, "event", "") == "dicom.store.partial_discarded" for r in caplog.records
        ):
            time.sleep(0.05)
    assoc.abort()
    [record] = [
        r for r in caplog.records if getattr(r, "event", "") == "dicom.store.partial_discarded"
    ]
    assert not Path(record.__dict__["partial_path"]).exists()
    assert not recorder.received
    assert not list((scp.spool_dir / "incoming").iterdir())
    assert echo(f"{SCP_AET}@{HOST}:{scp.port}")


def _forged_file(path: Path, sop_class: str, sop_instance: str, dataset: bytes) -> Path:
    """A Part-10 file whose file meta (and so the C-STORE request) says what we like."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = UID("1.2.826.0.1.3680043.10.543.9")
    path.write_bytes(b"\x00" * 128 + b"DICM" + encode_file_meta(meta) + dataset)
    return path


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize(
    ("forgery", "status"),
    [("other-instance", 0xA900), ("other-class", 0xA900), ("garbage", 0xC000)],
)
def test_a_data_set_that_is_not_what_the_request_says_is_refused(
    scp: StorageSCP,
    recorder: Recorder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    forgery: str,
    status: int,
) -> None:
    ct = Path(get_testdata_file("CT_small.dcm"))  # type: ignore[arg-type]
    as_cr = pydicom.dcmread(ct)
    as_cr.SOPClassUID = ComputedRadiographyImageStorage
    as_cr.save_as(tmp_path / "cr.dcm")
    body = {
        "other-instance": _dataset_bytes(tmp_path / "cr.dcm"),  # a CR, but another instance
        "other-class": _dataset_bytes(ct),  # the instance, but a CT
        "garbage": b"GET / HTTP/1.1\r\nHost: rascore\r\n\r\n",
    }[forgery]
    sop_class = ComputedRadiographyImageStorage
    sop_instance = generate_uid() if forgery == "other-instance" else as_cr.SOPInstanceUID
    forged = _forged_file(tmp_path / "forged.dcm", sop_class, sop_instance, body)
    # Sent as raw bytes, so the C-STORE request takes its UIDs from the forged file meta.
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)
    ae = AE("FORGER")
    ae.add_requested_context(sop_class, ExplicitVRLittleEndian)
    assoc = ae.associate(HOST, scp.port, ae_title=SCP_AET)
    assert assoc.is_established
    try:
        response = assoc.send_c_store(forged)
    finally:
        assoc.release()
    assert response.Status == status, response
    assert not recorder.received
    assert not list((scp.spool_dir / "incoming").iterdir())
    assert not list((scp.spool_dir / "tmp").iterdir())


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
def test_file_names_never_come_from_uids(
    scp: StorageSCP, recorder: Recorder, phantom_variants: dict[str, Path], tmp_path: Path
) -> None:
    ds = pydicom.dcmread(phantom_variants["jpeg-ls"])
    hostile = "../../../../tmp/owned"
    ds.SOPInstanceUID = UID(hostile)
    ds.file_meta.MediaStorageSOPInstanceUID = UID(hostile)
    path = tmp_path / "hostile.dcm"
    ds.save_as(path)
    [status] = send_files(f"{SCP_AET}@{HOST}:{scp.port}", [path])
    assert status.ok, status
    [instance] = recorder.received
    assert instance.sop_instance_uid == hostile
    assert UUID_NAME.fullmatch(instance.path.name)
    assert instance.path.parent == scp.spool_dir / "incoming"


# -- TLS --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_contexts(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl is not installed (`make test` installs it); no test certificate")
    out = tmp_path_factory.mktemp("tls")
    cert, key = out / "cert.pem", out / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=localhost", "-addext", f"subjectAltName=IP:{HOST},DNS:localhost",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=str(cert))
    return server, client


def test_tls_and_a_stalled_handshake_does_not_block_others(
    tmp_path: Path,
    tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext],
    phantom_variants: dict[str, Path],
) -> None:
    server_ctx, client_ctx = tls_contexts
    recorder = Recorder()
    with StorageSCP(SCP_AET, 0, recorder, host=HOST, spool_dir=tmp_path, tls=server_ctx) as scp:
        target = f"{SCP_AET}@{HOST}:{scp.port}"
        # A client that connects and never says hello must not hold up the accept loop.
        with socket.create_connection((HOST, scp.port)):
            assert echo(target, tls=client_ctx, timeout=5)
            [status] = send_files(target, [phantom_variants["jpeg-ls"]], tls=client_ctx)
            assert status.ok, status
        assert not echo(target, timeout=5)  # plain DICOM to a TLS port fails cleanly
        untrusting = ssl.create_default_context()  # does not know the test certificate
        [refused] = send_files(target, [phantom_variants["jpeg-ls"]], tls=untrusting, timeout=5)
        assert not refused.ok and refused.error is not None and "TLS" in refused.error
        assert echo(target, tls=client_ctx, timeout=5)
    assert len(recorder.received) == 1


# -- the SCU against dcmtk's storescp ---------------------------------------------------------


def test_scu_sends_to_storescp_as_is_when_the_syntax_is_accepted(
    tmp_path: Path, phantom_variants: dict[str, Path]
) -> None:
    files = [phantom_variants["uncompressed"], phantom_variants["jpeg2000"]]
    with _storescp(tmp_path / "in", "+xv") as dest:
        statuses = send_files(dest, files, calling_ae="RASCORE")
    assert [(s.status, s.ok, s.error) for s in statuses] == [(0x0000, True, None)] * 2
    assert [s.transfer_syntax for s in statuses] == [ExplicitVRLittleEndian, JPEG2000Lossless]
    for sent, status in zip(files, statuses, strict=True):
        [received] = (tmp_path / "in").glob(f"*{status.sop_instance_uid}*")
        _assert_same_instance(sent, received)


def test_scu_decompresses_only_when_the_peer_takes_nothing_else(
    tmp_path: Path, phantom_variants: dict[str, Path], phantom_file: Path
) -> None:
    with _storescp(tmp_path / "in") as dest:  # storescp's default: uncompressed only
        [status] = send_files(str(dest), [phantom_variants["jpeg2000"]])
    assert (status.status, status.ok) == (0x0000, True), status
    assert status.transfer_syntax == ExplicitVRLittleEndian
    [received] = (tmp_path / "in").glob(f"*{status.sop_instance_uid}*")
    assert np.array_equal(
        pydicom.dcmread(received).pixel_array, pydicom.dcmread(phantom_file).pixel_array
    )


def test_scu_reports_instead_of_raising(tmp_path: Path) -> None:
    closed = Destination("NOBODY", HOST, _free_port())
    ct = Path(get_testdata_file("CT_small.dcm"))  # type: ignore[arg-type]
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not dicom at all")
    started = time.monotonic()
    statuses = send_files(closed, [ct, junk], timeout=5)
    assert time.monotonic() - started < 10
    assert [s.ok for s in statuses] == [False, False]
    assert statuses[0].status is None
    assert statuses[0].sop_instance_uid == pydicom.dcmread(ct).SOPInstanceUID
    assert statuses[0].error is not None and "refused" in statuses[0].error.lower()
    assert statuses[1].error is not None and "not a readable DICOM" in statuses[1].error
    assert not echo(closed, timeout=5)


def test_scu_many_sop_classes_split_into_associations() -> None:
    syntaxes = [ExplicitVRLittleEndian, JPEG2000Lossless]
    items = [
        _Item(i, Path(f"{i}.dcm"), UID(f"1.2.3.{i // 2}"), generate_uid(), syntaxes[i % 2])
        for i in range(200)
    ]
    batches = _batches(items)
    assert len(batches) > 1
    assert all(len(contexts) <= MAX_CONTEXTS for _, contexts in batches)
    assert [item.index for group, _ in batches for item in group] == list(range(200))
    for group, contexts in batches:
        offered = {(cx.abstract_syntax, ts) for cx in contexts for ts in cx.transfer_syntax}
        for item in group:
            assert (item.sop_class, ExplicitVRLittleEndian) in offered
            assert (item.sop_class, item.transfer_syntax) in offered


# -- destinations -----------------------------------------------------------------------------


def test_destination_parse_round_trip() -> None:
    dest = Destination.parse("ORTHANC@pacs.example.org:4242")
    assert dest == Destination("ORTHANC", "pacs.example.org", 4242)
    assert str(dest) == "ORTHANC@pacs.example.org:4242"
    assert Destination.parse(" A B @10.0.0.1:104") == Destination("A B", "10.0.0.1", 104)
    v6 = Destination.parse("PACS@[::1]:11112")
    assert (v6.host, v6.port, str(v6)) == ("::1", 11112, "PACS@[::1]:11112")
    assert parse_destinations("A@h1:1, B@h2:2,") == [
        Destination("A", "h1", 1),
        Destination("B", "h2", 2),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "SEVENTEEN_CHARS_X@host:104",  # AE title too long
        "BAD\\AET@host:104",  # backslash: the DICOM value separator
        "BAD\x00AET@host:104",  # control character
        "BAD\nAET@host:104",
        "ÄRZTE@host:104",  # not ASCII
        "@host:104",  # empty AE title
        "   @host:104",
        "AET@host:0",
        "AET@host:70000",
        "AET@host:-1",
        "AET@host:1e3",
        "AET@host: 104",
        "AET@host:",
        "AET@host",  # no port
        "AEThost:104",  # no @
        "AET@:104",  # no host
        "AET@ho st:104",
        "AET@host;rm -rf /:104",
        "AET@::1:104",  # IPv6 without brackets
        "AET@[::1]104",
        "",
    ],
)
def test_destination_parse_rejects_hostile_strings(text: str) -> None:
    with pytest.raises(ValueError, match="destination"):
        Destination.parse(text)


def test_scp_parameters_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        StorageSCP("A" * 17, 0, Recorder(), spool_dir=tmp_path)
    with pytest.raises(ValueError):
        StorageSCP(SCP_AET, 70000, Recorder(), spool_dir=tmp_path)
    uids = {str(cx.abstract_syntax) for cx in supported_contexts()}
    assert ComputedRadiographyImageStorage in uids and "1.2.840.10008.1.1" in uids


def test_stop_closes_the_port(tmp_path: Path) -> None:
    scp = StorageSCP(SCP_AET, 0, Recorder(), host=HOST, spool_dir=tmp_path)
    scp.start()
    port = scp.port
    assert echo(f"{SCP_AET}@{HOST}:{port}")
    scp.stop()
    assert not scp.is_running
    with pytest.raises(OSError):
        socket.create_connection((HOST, port), timeout=2).close()
