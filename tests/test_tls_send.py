"""Issue 11, finding 11 (second half): results go to a destination over TLS when told to.

A test PKI is made with the ``openssl`` command; dcmtk's ``storescp +tls`` is the PACS, and it
requires the node's client certificate. The outbox's own send (``outbox.send_delivery``) runs
against it on a real, migrated SQLite database: over TLS to a server whose certificate the CA
signed, the result arrives; a server with a certificate from another CA is refused and the
delivery stays pending with the reason; a TLS destination is never sent to in plain.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid
from servers import _port_open, free_port, require

from worker.db import migrate
from worker.db.engine import session_scope
from worker.db.models import (
    Delivery,
    DeliveryStatus,
    Instance,
    InstanceStatus,
    Job,
    JobStatus,
    ResultObject,
    Study,
)
from worker.jobs import outbox
from worker.settings import Settings

LEAF = """basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=DNS:localhost,IP:127.0.0.1
"""


def _openssl(folder: Path, *args: str) -> None:
    subprocess.run(
        ["openssl", *args], cwd=folder, check=True, capture_output=True, text=True, timeout=60
    )


def _ca(folder: Path, name: str) -> None:
    _openssl(
        folder, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-keyout", f"{name}.key", "-out", f"{name}.crt", "-subj", f"/CN=rascore test {name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip


def _leaf(folder: Path, ca: str, name: str, cn: str) -> None:
    (folder / "leaf.ext").write_text(LEAF)
    _openssl(
        folder, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
        "-out", f"{name}.csr", "-subj", f"/CN={cn}",
    )  # fmt: skip
    _openssl(
        folder, "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
        "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", "leaf.ext",
    )  # fmt: skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ca (the site's) signs pacs and node; rogue (another CA) signs impostor."""
    require("openssl", "openssl")
    folder = tmp_path_factory.mktemp("pki")
    _ca(folder, "ca")
    _ca(folder, "rogue")
    _leaf(folder, "ca", "pacs", "localhost")
    _leaf(folder, "ca", "node", "rascore node")
    _leaf(folder, "rogue", "impostor", "localhost")
    return folder


@dataclass
class Storescp:
    process: subprocess.Popen[bytes]
    port: int
    received: Path

    def files(self) -> list[Path]:
        return [p for p in self.received.iterdir() if p.is_file()]


def _storescp(folder: Path, tls: tuple[Path, Path, Path] | None) -> Iterator[Storescp]:
    """dcmtk's storescp; with ``tls`` (key, certificate, CA of the clients) TLS only, and a
    client certificate signed by that CA required."""
    exe = require("storescp", "dcmtk")
    received = folder / "received"
    received.mkdir(parents=True)
    port = free_port()
    args = [exe, "-aet", "PACS", "-od", str(received)]
    if tls is not None:
        key, cert, ca = tls
        args += ["+tls", str(key), str(cert), "-pw", "+cf", str(ca), "-rc"]
    log = open(folder / "storescp.log", "wb")  # noqa: SIM115
    process = subprocess.Popen([*args, str(port)], stdout=log, stderr=subprocess.STDOUT)
    log.close()
    deadline = time.monotonic() + 20
    while not _port_open(port):
        assert process.poll() is None, (folder / "storescp.log").read_text()
        assert time.monotonic() < deadline, "storescp did not start"
        time.sleep(0.05)
    try:
        yield Storescp(process, port, received)
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def tls_pacs(pki: Path, tmp_path: Path) -> Iterator[Storescp]:
    yield from _storescp(tmp_path / "pacs", (pki / "pacs.key", pki / "pacs.crt", pki / "ca.crt"))


@pytest.fixture
def impostor(pki: Path, tmp_path: Path) -> Iterator[Storescp]:
    yield from _storescp(
        tmp_path / "impostor", (pki / "impostor.key", pki / "impostor.crt", pki / "ca.crt")
    )


@pytest.fixture
def plain_pacs(tmp_path: Path) -> Iterator[Storescp]:
    yield from _storescp(tmp_path / "plain", None)


def _sc(path: Path) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID, ds.Modality, ds.ConversionType = "TLS-1", "OT", "WSD"
    ds.Rows = ds.Columns = 16
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = bytes(256)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def _delivery(settings: Settings, destination: str) -> int:
    """A built result (an SC in the store) with one pending delivery; returns its id."""
    url = settings.effective_database_url
    migrate.upgrade(url)
    key = f"results/{generate_uid()}.dcm"
    _sc(settings.effective_store_dir / key)
    with session_scope(url) as s:
        study = Study(study_instance_uid=generate_uid(), patient_id="TLS-1")
        instance = Instance(
            study=study, sop_instance_uid=generate_uid(), sop_class_uid="1.2", sha256="0" * 64,
            transfer_syntax=ExplicitVRLittleEndian, size=1, store_key=f"in/{key}",
            status=InstanceStatus.SCORED,
        )  # fmt: skip
        job = Job(instance=instance, model_name="m", model_version="1", status=JobStatus.DONE)
        result = ResultObject(
            job=job, kind="sc", sop_class_uid=SecondaryCaptureImageStorage,
            sop_instance_uid=generate_uid(), store_key=key,
        )  # fmt: skip
        delivery = Delivery(result=result, destination=destination, status=DeliveryStatus.PENDING)
        s.add(delivery)
        s.flush()
        return delivery.id


def _settings(home: Path, pki: Path, tls_destinations: str) -> Settings:
    return Settings(
        home=home,
        tls_ca=pki / "ca.crt",
        tls_cert=pki / "node.crt",
        tls_key=pki / "node.key",
        tls_destinations=tls_destinations,
    )


def _row(settings: Settings, delivery_id: int) -> Delivery:
    with session_scope(settings.effective_database_url) as s:
        found = s.get_one(Delivery, delivery_id)
        s.expunge(found)
        return found


def test_results_go_over_tls_to_a_server_the_ca_signed(
    pki: Path, tls_pacs: Storescp, tmp_path: Path
) -> None:
    destination = f"PACS@localhost:{tls_pacs.port}"
    settings = _settings(tmp_path / "home", pki, destination)
    delivery = _delivery(settings, destination)
    outcome = outbox.send_delivery(settings, delivery, 0)
    row = _row(settings, delivery)
    assert (row.status, row.last_error) == (DeliveryStatus.SENT, ""), (outcome, row.last_error)
    assert row.last_status == "0x0000"
    assert len(tls_pacs.files()) == 1


def test_a_server_certificate_from_another_ca_is_refused(
    pki: Path, impostor: Storescp, tmp_path: Path
) -> None:
    destination = f"PACS@127.0.0.1:{impostor.port}"
    settings = _settings(tmp_path / "home", pki, "*")
    delivery = _delivery(settings, destination)
    outbox.send_delivery(settings, delivery, 0)
    row = _row(settings, delivery)
    assert row.status == DeliveryStatus.PENDING and row.attempts == 1  # retried later
    assert "certificate" in row.last_error and "TLS" in row.last_error, row.last_error
    assert impostor.files() == []


def test_a_tls_destination_is_never_sent_to_in_plain_and_others_stay_plain(
    pki: Path, plain_pacs: Storescp, tmp_path: Path
) -> None:
    destination = f"PACS@127.0.0.1:{plain_pacs.port}"
    settings = _settings(tmp_path / "tls", pki, destination)
    delivery = _delivery(settings, destination)
    outbox.send_delivery(settings, delivery, 0)
    row = _row(settings, delivery)
    assert row.status == DeliveryStatus.PENDING and "TLS" in row.last_error, row.last_error
    assert plain_pacs.files() == []

    plain = _settings(tmp_path / "plain", pki, f"OTHER@127.0.0.1:{plain_pacs.port}")
    delivery = _delivery(plain, destination)
    outbox.send_delivery(plain, delivery, 0)
    assert _row(plain, delivery).status == DeliveryStatus.SENT
    assert len(plain_pacs.files()) == 1
