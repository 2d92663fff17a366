"""The SCU sends a file whose syntax the peer accepted as it is stored, without decoding it.

Against dcmtk's storescp in bit-preserving mode (``+B``: it writes the data set as it came), so
what arrived can be compared with the file byte for byte.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pydicom
import pytest
from pydicom import Dataset
from pydicom.uid import ExplicitVRLittleEndian
from test_network import _storescp
from test_sr import _result_from_truth

import dicom_io.net.scu as scu
from dicom_io.encoding import write_file
from dicom_io.sr import build_sr


@pytest.fixture(scope="module")
def sr_file(phantom_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    truth = json.loads((phantom_file.parent / "truth.json").read_text())["images"][0]
    source = pydicom.dcmread(phantom_file, stop_before_pixels=True)
    path = tmp_path_factory.mktemp("sr") / "sr.dcm"
    write_file(build_sr(source, _result_from_truth(source, truth)), path)
    return path


def _data_set_bytes(path: Path) -> bytes:
    """The file after its preamble, prefix and File Meta Information group."""
    data = path.read_bytes()
    (meta_length,) = struct.unpack_from("<L", data, 132 + 8)
    return data[132 + 12 + meta_length :]


def _no_decoding(*args: object, **kwargs: object) -> Dataset:
    raise AssertionError("the file was decoded")


def test_an_accepted_syntax_goes_as_stored(
    sr_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scu, "dcmread", _no_decoding)
    with _storescp(tmp_path / "in", "+B") as dest:
        [status] = scu.send_files(dest, [sr_file])
    assert (status.status, status.ok, status.error) == (0x0000, True, None)
    assert status.sop_instance_uid == pydicom.dcmread(sr_file).SOPInstanceUID
    assert status.transfer_syntax == ExplicitVRLittleEndian
    [received] = (tmp_path / "in").glob(f"*{status.sop_instance_uid}*")
    assert _data_set_bytes(received) == _data_set_bytes(sr_file)


def test_a_conversion_still_decodes(sr_file: Path, tmp_path: Path) -> None:
    with _storescp(tmp_path / "in", "+xi") as dest:  # implicit VR only: pynetdicom converts
        [status] = scu.send_files(dest, [sr_file])
    assert (status.status, status.ok) == (0x0000, True), status
    assert status.sop_instance_uid == pydicom.dcmread(sr_file).SOPInstanceUID
    [received] = (tmp_path / "in").glob(f"*{status.sop_instance_uid}*")
    back = pydicom.dcmread(received)
    assert back.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2"
    assert len(back.ContentSequence) == len(pydicom.dcmread(sr_file).ContentSequence)
