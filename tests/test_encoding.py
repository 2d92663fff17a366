"""``dicom_io.encoding`` writes what pydicom writes, byte for byte, fast or by falling back."""

from __future__ import annotations

import copy
import datetime as dt
import io
import json
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
    SecondaryCaptureImageStorage,
    generate_uid,
)
from pydicom.valuerep import DA, DT, TM
from test_sr import ROOT, _result_from_truth

import dicom_io.encoding as encoding
from dicom_io.encoding import encode_file, write_file
from dicom_io.pr import build_gsps
from dicom_io.sc import build_overlay_sc
from dicom_io.sr import build_sr

Checker = Callable[[Path | str], str]
BUILDERS: dict[str, Callable[..., Dataset]] = {
    "sr": build_sr,
    "sc": build_overlay_sc,
    "gsps": build_gsps,
}


@pytest.fixture
def fallbacks(monkeypatch: pytest.MonkeyPatch) -> list[Dataset]:
    """The data sets handed to pydicom's writer (so a test can say the fast path was taken)."""
    seen: list[Dataset] = []
    pydicom_bytes = encoding._encode_pydicom

    def record(ds: Dataset) -> bytes:
        seen.append(ds)
        return pydicom_bytes(ds)

    monkeypatch.setattr(encoding, "_encode_pydicom", record)
    return seen


def _pydicom_bytes(ds: Dataset) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def assert_same_bytes(ds: Dataset) -> bytes:
    """``encode_file`` of ``ds`` equals pydicom's file of it (each writes its own copy: both
    correct ambiguous VRs in place)."""
    expected = _pydicom_bytes(copy.deepcopy(ds))
    encoded = encode_file(copy.deepcopy(ds))
    if encoded != expected:
        at = next(
            (i for i, (a, b) in enumerate(zip(encoded, expected, strict=False)) if a != b),
            min(len(encoded), len(expected)),
        )
        pytest.fail(
            f"differs from pydicom at byte {at} of {len(expected)} ({len(encoded)} written): "
            f"{encoded[at - 16 : at + 16]!r} != {expected[at - 16 : at + 16]!r}"
        )
    return encoded


@pytest.fixture(scope="module")
def results(phantom_file: Path) -> dict[str, Dataset]:
    """The SR, overlay SC and GSPS of the phantom, as the node builds them."""
    truth = json.loads((phantom_file.parent / "truth.json").read_text())["images"][0]
    source = pydicom.dcmread(phantom_file)
    result = _result_from_truth(source, truth)
    return {kind: build(source, result) for kind, build in BUILDERS.items()}


@pytest.mark.parametrize("kind", list(BUILDERS))
def test_result_objects_are_pydicoms_bytes_without_pydicom(
    kind: str, results: dict[str, Dataset], fallbacks: list[Dataset]
) -> None:
    assert_same_bytes(results[kind])
    assert fallbacks == []


@pytest.mark.parametrize("kind", list(BUILDERS))
def test_implicit_vr_little_endian_too(
    kind: str, results: dict[str, Dataset], fallbacks: list[Dataset]
) -> None:
    ds = copy.deepcopy(results[kind])
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    assert_same_bytes(ds)
    assert fallbacks == []


def test_the_encoded_sr_is_valid_and_reads_back(
    results: dict[str, Dataset], tmp_path: Path, assert_dciodvfy_clean: Checker
) -> None:
    path = tmp_path / "sr.dcm"
    write_file(copy.deepcopy(results["sr"]), path)
    assert_dciodvfy_clean(path)
    back = pydicom.dcmread(path)
    assert back.SOPInstanceUID == results["sr"].SOPInstanceUID
    assert len(back.ContentSequence) == len(results["sr"].ContentSequence)
    with io.BytesIO() as f:
        write_file(copy.deepcopy(results["sr"]), f)
        assert f.getvalue() == path.read_bytes()


def _base(charset: str | None) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if charset is not None:
        ds.SpecificCharacterSet = charset
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = f"{ROOT}.77.1"  # odd length: NUL padded
    return ds


def _everything(charset: str | None, name: str) -> Dataset:
    """A data set with one of each VR and the corner cases of padding, emptiness and nesting."""
    ds = _base(charset)
    ds.PatientName = name
    ds.OtherPatientNames = [name, "Doe^J"]
    ds.PatientID = "ABC"  # odd: space padded
    ds.PatientBirthDate = ""  # Type 2, empty
    ds.PatientSex = None
    ds.AccessionNumber = ""
    ds.StudyDescription = name.replace("^", " ")
    ds.ImageComments = "line one\r\nline two"
    ds.ImageType = ["DERIVED", "SECONDARY", "X"]
    ds.PixelSpacing = [0.1, 0.123456789]
    ds.ImagePositionPatient = ["1.5", "-2", "3e2"]
    ds.ReferencedFrameNumber = [1, 2, 30]
    ds.InstanceNumber = 7
    ds.StudyDate = DA(dt.date(2026, 1, 2))
    ds.StudyTime = TM(dt.time(12, 30, 5, 250))
    ds.ContentTime = "1230"
    ds.AcquisitionDateTime = DT(dt.datetime(2026, 1, 2, 3, 4, 5))
    ds.Rows, ds.Columns = 2, 3
    ds.add_new(0x00280106, "SS", -5)  # an ambiguous tag given a definite VR
    ds.add_new(0x00181310, "US", [0, 256, 512, 0])
    ds.add_new(0x00181164, "DS", [0.139, 0.139])
    ds.add_new(0x00540081, "US", 4)
    ds.add_new(0x00209241, "FL", 0.5)
    ds.add_new(0x0018980C, "FD", [1.0, -2.5e-300])
    ds.add_new(0x00186020, "SL", [-1, 2])
    ds.add_new(0x00081160, "IS", "5")
    ds.add_new(0x00200032, "DS", ["1", "2", "3"])
    ds.add_new(0x00720026, "AT", [0x00100010, 0x00100020])
    ds.add_new(0x00209165, "AT", 0x00280010)
    ds.add_new(0x00700084, "PN", "")
    ds.add_new(0x00080000, "UL", 1234)  # a retired group length: never written
    ds.add_new(0x00091010, "LO", "private")
    ds.add_new(0x00090010, "LO", "RASCORE TEST")
    ds.add_new(0x00091011, "UN", b"\x01\x02\x03")  # odd, UN: unpadded
    ds.add_new(0x00091012, "OB", b"\x01\x02\x03")  # odd, OB: NUL padded
    ds.add_new(0x00660023, "OF", np.arange(3, dtype="<f4").tobytes())
    ds.add_new(0x00081190, "UR", "http://example.org/a")
    ds.add_new(0x00400441, "SQ", [])  # an empty sequence
    ds.add_new(0x00081115, "SQ", [Dataset()])  # an empty item
    nested = Dataset()
    nested.CodeMeaning = name
    nested.ContentSequence = Sequence([Dataset()])
    nested.ContentSequence[0].ConceptNameCodeSequence = Sequence()
    nested.ContentSequence[0].TextValue = "x" * 70_000  # UT: longer than 64 KiB
    undefined = Dataset()
    undefined.is_undefined_length_sequence_item = True
    undefined.CodeValue = "1"
    ds.ReferencedSeriesSequence = Sequence([nested, undefined])
    ds["ReferencedSeriesSequence"].is_undefined_length = True
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = bytes(range(6))  # VR "OB or OW"
    return ds


@pytest.mark.parametrize(
    ("charset", "name"),
    [
        ("ISO_IR 192", "Müller^Zoë=山田^太郎"),
        ("ISO_IR 100", "Müller^Zoë"),
        ("ISO_IR 6", "Doe^John"),
        (None, "Doe^John"),
    ],
)
@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_every_vr_and_padding_as_pydicom(
    charset: str | None, name: str, syntax: UID, fallbacks: list[Dataset]
) -> None:
    ds = _everything(charset, name)
    ds.file_meta.TransferSyntaxUID = syntax
    assert_same_bytes(ds)
    assert fallbacks == []


def test_an_item_with_its_own_character_set(fallbacks: list[Dataset]) -> None:
    ds = _base("ISO_IR 192")
    item = Dataset()
    item.SpecificCharacterSet = "ISO_IR 100"
    item.PatientName = "Ångström^Zoë"
    item.ReferencedStudySequence = [Dataset()]
    item.ReferencedStudySequence[0].StudyDescription = "Grüße"  # inherits ISO_IR 100
    ds.OtherPatientIDsSequence = [item]
    ds.PatientName = "Grüße^山"
    assert_same_bytes(ds)
    assert fallbacks == []


def _written_and_read(ds: Dataset, syntax: UID) -> Dataset:
    ds.file_meta.TransferSyntaxUID = syntax
    return pydicom.dcmread(io.BytesIO(_pydicom_bytes(ds)))


def test_a_data_set_read_in_another_encoding_is_converted_fast(
    fallbacks: list[Dataset],
) -> None:
    ds = _written_and_read(_everything("ISO_IR 192", "Müller^Zoë"), ImplicitVRLittleEndian)
    for keyword in ("PixelData", "SmallestImagePixelValue"):  # ambiguous once read implicitly
        delattr(ds, keyword)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    assert_same_bytes(ds)
    assert fallbacks == []


def _iso2022() -> Dataset:
    ds = _base("\\ISO 2022 IR 87")
    ds.PatientName = "Yamada^Tarou=山田^太郎=やまだ^たろう"
    return ds


def _compressed() -> Dataset:
    ds = _base(None)
    ds.file_meta.TransferSyntaxUID = RLELossless
    ds.Rows = ds.Columns = 1
    ds.BitsAllocated, ds.SamplesPerPixel = 8, 1
    ds.PixelData = encapsulate([b"\x00\x00\x00\x01" + b"\x00" * 60 + b"\x00\x07"])
    return ds


def _big_endian() -> Dataset:
    ds = _everything(None, "Doe^John")
    ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    del ds.PixelData, ds[0x00660023]  # bytes pydicom would not swap
    return ds


def _ambiguous() -> Dataset:
    ds = _everything(None, "Doe^John")
    ds.add_new(0x00280106, "US or SS", 3)
    return ds


def _read_as_written() -> Dataset:
    return _written_and_read(_everything("ISO_IR 192", "Zoë"), ExplicitVRLittleEndian)


def _unencodable() -> Dataset:
    ds = _base("ISO_IR 100")
    ds.PatientName = "山田^太郎"  # not Latin-1: pydicom warns and writes "?"
    ds.StudyDescription = "手"
    return ds


def _long_short_string() -> Dataset:
    ds = _base(None)
    ds.add_new(0x00091010, "LO", "x" * 70_000)  # over 64 KiB in a 2-byte length: pydicom's UN
    return ds


FALLBACKS = {
    "ISO 2022": _iso2022,
    "compressed pixel data": _compressed,
    "big endian": _big_endian,
    "ambiguous VR": _ambiguous,
    "read as written (raw elements)": _read_as_written,
    "not encodable": _unencodable,
    "over 64 KiB": _long_short_string,
}


@pytest.mark.parametrize("case", list(FALLBACKS))
def test_what_it_does_not_write_pydicom_does(case: str, fallbacks: list[Dataset]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's own warnings, the same either way
        assert_same_bytes(FALLBACKS[case]())
    assert len(fallbacks) == 1


def test_what_pydicom_refuses_it_refuses(fallbacks: list[Dataset]) -> None:
    ds = _base(None)
    ds.add_new(0x00020002, "UI", generate_uid())  # file meta in the data set
    with pytest.raises(ValueError, match="File Meta Information Group"):
        encode_file(ds)
    ds = _base(None)
    del ds.file_meta.TransferSyntaxUID
    with pytest.raises(ValueError, match="Unable to determine the encoding"):
        encode_file(ds)
