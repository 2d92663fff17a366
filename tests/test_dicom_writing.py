"""Radiograph writing (valid CR / DX files, lossless, reproducible) and the first reader."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    MPEG2MPML,
    UID,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)
from radiographs import hand_spec, study

from dicom_io.radiograph import (
    CR_IMAGE_STORAGE,
    DX_IMAGE_STORAGE_FOR_PRESENTATION,
    RadiographSpec,
    build_radiograph,
    write_radiograph,
)
from dicom_io.reading import GreyscaleImage, UnreadableImage, decode, read_radiograph

Checker = Callable[[Path | str], str]

ROOT = "1.2.826.0.1.3680043.10.543"  # test UIDs only
STUDY = study(ROOT, "Phantom^Ärzte", "RA-0001", "ACC0001")  # non-ASCII: ISO_IR 192
SIZE = 256
TRANSFER_SYNTAXES = [ExplicitVRLittleEndian, JPEG2000Lossless, JPEGLSLossless]


def anatomy(bits: int, photometric: str, size: int = SIZE) -> np.ndarray:
    """A bright disc ("bone") on a soft-tissue ramp, using the full stored range."""
    top = 2**bits - 1
    yy, xx = np.mgrid[:size, :size]
    soft = 0.15 + 0.2 * xx / size
    disc = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 4) ** 2
    level = np.where(disc, 0.75 + 0.1 * yy / size, soft)
    px = np.rint(level * top).astype(np.int64)
    px[0, 0], px[0, 1] = 0, top  # both ends of the range survive the codecs
    if photometric == "MONOCHROME1":
        px = top - px
    return px.astype(np.uint16)


def mono2_window(bits: int) -> tuple[float, float]:
    top = 2**bits - 1
    return top * 0.5, top * 0.8


def spec_for(
    modality: str = "CR",
    photometric: str = "MONOCHROME2",
    bits: int = 12,
    ts: str = ExplicitVRLittleEndian,
    voi: bool = True,
    **changes: Any,
) -> RadiographSpec:
    top = 2**bits - 1
    centre, width = mono2_window(bits)
    if photometric == "MONOCHROME1":
        centre = top + 1 - centre  # mirrors the LINEAR window exactly
    rescale: tuple[float, float] | None = None
    window: tuple[float, float] | None = None
    if voi:
        rescale = (1.0, 0.0)
        window = (centre, width)
    spec = hand_spec(
        ROOT,
        anatomy(bits, photometric),
        bits=bits,
        photometric=photometric,
        modality=modality,
        sop_instance_uid=f"{ROOT}.2.{bits}",
        rescale=rescale,
        window=window,
        transfer_syntax_uid=ts,
        kvp=55.0,
        exposure_mas=4,
        source_to_detector_mm=1000.0,
    )
    return dataclasses.replace(spec, **changes)


def bone_minus_background(image: GreyscaleImage) -> float:
    centre = image.pixels[SIZE // 2 - 8 : SIZE // 2 + 8, SIZE // 2 - 8 : SIZE // 2 + 8]
    corner = image.pixels[SIZE - 20 :, 4:20]
    return float(centre.mean() - corner.mean())


CASES = [
    pytest.param(
        m, p, b, ts, voi, id=f"{m}-{p[-1]}-{b}bit-{UID(ts).keyword}-{'voi' if voi else 'novoi'}"
    )
    for m in ("CR", "DX")
    for voi in ((True, False) if m == "CR" else (True,))
    for p in ("MONOCHROME1", "MONOCHROME2")
    for b in (10, 12, 16)
    for ts in TRANSFER_SYNTAXES
]


@pytest.mark.parametrize(("modality", "photometric", "bits", "ts", "voi"), CASES)
def test_written_file_is_valid_and_lossless(
    modality: str,
    photometric: str,
    bits: int,
    ts: str,
    voi: bool,
    tmp_path: Path,
    assert_dciodvfy_clean: Checker,
    assert_dcmdump_parses: Checker,
) -> None:
    spec = spec_for(modality, photometric, bits, ts, voi)
    path = write_radiograph(spec, STUDY, tmp_path / "sub" / "image.dcm")

    assert_dciodvfy_clean(path)
    assert_dcmdump_parses(path)

    ds = pydicom.dcmread(path)
    assert ds.file_meta.TransferSyntaxUID == ts
    assert ds.SOPClassUID == (
        DX_IMAGE_STORAGE_FOR_PRESENTATION if modality == "DX" else CR_IMAGE_STORAGE
    )
    # pydicom's compress() would mint a new SOP Instance UID unless told not to.
    assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID == spec.sop_instance_uid
    assert ds.BitsStored == bits and ds.HighBit == bits - 1
    assert ds.PatientName == STUDY.patient_name
    np.testing.assert_array_equal(ds.pixel_array, spec.pixels)

    image = read_radiograph(path)
    assert image.window_source == ("file" if voi else "histogram")
    assert image.pixel_spacing_mm == (0.15, 0.15)
    assert image.laterality == "R"
    assert bone_minus_background(image) > 0.3  # bone bright whatever the photometric


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"rescale": (0.5, -100.0), "window": None}, id="rescale-only"),
        pytest.param({"rescale": None, "window": (2000.0, 3000.0)}, id="window-only"),
        pytest.param({"laterality": "B"}, id="both-hands"),
        pytest.param({"laterality": "U", "kvp": None, "exposure_mas": None}, id="unknown"),
        pytest.param({"modality": "DX", "laterality": "B"}, id="dx-both-hands"),
        pytest.param({"modality": "DX", "view_position": "AP"}, id="dx-ap"),
    ],
)
def test_variants_are_valid(
    changes: dict[str, Any], tmp_path: Path, assert_dciodvfy_clean: Checker
) -> None:
    spec = spec_for(**changes)
    path = write_radiograph(spec, STUDY, tmp_path / "image.dcm")
    assert_dciodvfy_clean(path)
    assert read_radiograph(path).laterality == spec.laterality


def test_full_size_image(tmp_path: Path, assert_dciodvfy_clean: Checker) -> None:
    bits = 14
    pixels = anatomy(bits, "MONOCHROME1", size=2400)[:, :1900]
    spec = spec_for("DX", "MONOCHROME1", bits, JPEGLSLossless, pixels=pixels)
    path = write_radiograph(spec, STUDY, tmp_path / "big.dcm")
    assert_dciodvfy_clean(path)
    image = read_radiograph(path)
    assert (image.rows, image.columns) == (2400, 1900)
    assert image.pixels.dtype == np.float32
    assert float(image.pixels.min()) >= 0.0 and float(image.pixels.max()) <= 1.0


def test_attributes_dciodvfy_needs(tmp_path: Path) -> None:
    cr = build_radiograph(spec_for("CR", "MONOCHROME1"), STUDY)
    assert cr.PixelSpacing == cr.ImagerPixelSpacing == [0.15, 0.15]
    assert cr.ImageLaterality == "R" and "Laterality" not in cr
    assert cr.PresentationLUTShape == "INVERSE"
    assert cr.SpecificCharacterSet == "ISO_IR 192"

    dx = build_radiograph(spec_for("DX", "MONOCHROME2"), STUDY)
    assert dx.PresentationIntentType == "FOR PRESENTATION"
    assert dx.PixelIntensityRelationship == "LOG" and dx.PixelIntensityRelationshipSign == -1
    assert dx.PresentationLUTShape == "IDENTITY"
    assert (dx.RescaleSlope, dx.RescaleIntercept, dx.RescaleType) == (1, 0, "US")
    hand = dx.AnatomicRegionSequence[0]
    assert (hand.CodeValue, hand.CodingSchemeDesignator, hand.CodeMeaning) == (
        "85562004",
        "SCT",
        "Hand",
    )
    assert dx.ViewCodeSequence[0].CodeValue == "272479007"  # postero-anterior
    assert dx.ImageLaterality == "R" and "Laterality" not in dx
    assert dx.PatientOrientation == ["L", "H"]


def test_dciodvfy_helper_catches_errors(tmp_path: Path, assert_dciodvfy_clean: Checker) -> None:
    ds = build_radiograph(spec_for("DX"), STUDY)
    del ds.PresentationIntentType
    path = tmp_path / "broken.dcm"
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(pytest.fail.Exception, match="PresentationIntentType"):
        assert_dciodvfy_clean(path)


@pytest.mark.parametrize("ts", TRANSFER_SYNTAXES)
def test_same_inputs_give_identical_bytes(ts: str, tmp_path: Path) -> None:
    spec = spec_for("DX", "MONOCHROME1", 12, ts)
    first = write_radiograph(spec, STUDY, tmp_path / "a.dcm").read_bytes()
    second = write_radiograph(spec, STUDY, tmp_path / "b.dcm").read_bytes()
    assert first == second
    assert not list(tmp_path.glob("*.part"))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"modality": "DX", "rescale": None}, "rescale and window"),
        ({"modality": "DX", "window": None}, "rescale and window"),
        ({"modality": "DX", "rescale": (2.0, 0.0)}, r"rescale \(1, 0\)"),
        ({"pixels": np.full((8, 8), 4096, np.uint16)}, "does not fit in bits_stored=12"),
        ({"pixels": np.zeros((2, 8, 8), np.uint16)}, "2-D"),
        ({"pixels": np.zeros(8, np.uint16)}, "2-D"),
        ({"pixels": np.zeros((8, 8), np.float32)}, "unsigned integer"),
        ({"pixels": np.full((8, 8), -1, np.int32)}, "non-negative"),
        ({"bits_stored": 9, "pixels": np.zeros((8, 8), np.uint16)}, "10..16"),
        ({"transfer_syntax_uid": RLELossless}, "unsupported"),
        ({"sop_instance_uid": "1.2.abc"}, "not a valid DICOM UID"),
        ({"content_date": "2024-01-02"}, "YYYYMMDD"),
        ({"window": (100.0, 0.0)}, "window width"),
        ({"pixel_spacing_mm": 0.0}, "pixel_spacing_mm"),
        ({"series_description": "x" * 65}, "at most 64 characters"),
    ],
)
def test_impossible_specs_are_rejected(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_radiograph(spec_for(**changes), STUDY)


# Reader


@pytest.mark.parametrize(
    ("modality", "voi"),
    [("CR", True), ("CR", False), ("DX", True)],
    ids=["cr-file-window", "cr-histogram", "dx-file-window"],
)
def test_monochrome1_and_2_read_the_same(modality: str, voi: bool) -> None:
    m1 = read_radiograph(build_radiograph(spec_for(modality, "MONOCHROME1", voi=voi), STUDY))
    m2 = read_radiograph(build_radiograph(spec_for(modality, "MONOCHROME2", voi=voi), STUDY))
    np.testing.assert_allclose(m1.pixels, m2.pixels, atol=1e-5)
    assert bone_minus_background(m2) > 0.3
    assert (m1.photometric, m2.photometric) == ("MONOCHROME1", "MONOCHROME2")


def test_histogram_window_when_file_has_none() -> None:
    spec = spec_for("CR", voi=False)
    image = read_radiograph(build_radiograph(spec, STUDY))
    assert image.window_source == "histogram"
    lo, hi = np.percentile(spec.pixels, [0.5, 99.5])
    centre, width = image.window
    assert centre == pytest.approx((lo + hi) / 2 + 0.5)
    assert width == pytest.approx(hi - lo + 1)
    assert float(image.pixels.min()) == 0.0 and float(image.pixels.max()) == 1.0


def test_file_window_is_used_in_rescaled_units() -> None:
    spec = spec_for("CR", rescale=(2.0, -100.0), window=(3000.0, 4000.0))
    image = read_radiograph(build_radiograph(spec, STUDY))
    assert image.window_source == "file"
    assert image.window == (3000.0, 4000.0)
    value = float(spec.pixels[SIZE // 2, SIZE // 2]) * 2.0 - 100.0
    expected = np.clip((value - 2999.5) / 3999.0 + 0.5, 0, 1)
    assert float(image.pixels[SIZE // 2, SIZE // 2]) == pytest.approx(expected, abs=1e-5)


def test_presentation_lut_inverse_is_honoured() -> None:
    ds = build_radiograph(spec_for("CR", "MONOCHROME2"), STUDY)
    plain = read_radiograph(ds).pixels
    ds.PresentationLUTShape = "INVERSE"
    np.testing.assert_allclose(read_radiograph(ds).pixels, 1.0 - plain, atol=1e-6)


def test_voi_lut_sequence_is_used_when_no_window() -> None:
    ds = build_radiograph(spec_for("CR", "MONOCHROME2", 12, voi=False), STUDY)
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 12]
    item.LUTData = list(range(4096))  # identity LUT
    ds.VOILUTSequence = [item]
    image = read_radiograph(ds)
    assert image.window_source == "file"
    assert image.window == (2048.0, 4096.0)
    np.testing.assert_allclose(image.pixels, ds.pixel_array / 4095.0, atol=1e-6)


def test_spacing_falls_back_to_imager_pixel_spacing() -> None:
    ds = build_radiograph(spec_for("DX"), STUDY)
    assert read_radiograph(ds).spacing_source == "PixelSpacing"
    del ds.PixelSpacing
    image = read_radiograph(ds)
    assert (image.pixel_spacing_mm, image.spacing_source) == ((0.15, 0.15), "ImagerPixelSpacing")
    del ds.ImagerPixelSpacing
    assert read_radiograph(ds).pixel_spacing_mm is None


def test_laterality_falls_back_to_series_laterality() -> None:
    ds = build_radiograph(spec_for("CR", laterality="U"), STUDY)
    assert read_radiograph(ds).laterality == "U"
    ds.Laterality = "L"
    assert read_radiograph(ds).laterality == "L"
    del ds.ImageLaterality
    ds.Laterality = "R"
    assert read_radiograph(ds).laterality == "R"


def test_no_pixel_data_is_unreadable() -> None:
    ds = build_radiograph(spec_for(), STUDY)
    del ds.PixelData
    with pytest.raises(UnreadableImage, match="no Pixel Data"):
        read_radiograph(ds)


def _rgb_dataset() -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPInstanceUID = f"{ROOT}.9"
    ds.Rows, ds.Columns = 4, 4
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = bytes(4 * 4 * 3)
    return ds


def test_colour_is_unreadable() -> None:
    with pytest.raises(UnreadableImage, match=r"colour image \(SamplesPerPixel=3"):
        read_radiograph(_rgb_dataset())


def test_multiframe_is_unreadable() -> None:
    ds = build_radiograph(spec_for(), STUDY)
    ds.NumberOfFrames = 2
    with pytest.raises(UnreadableImage, match="multi-frame"):
        read_radiograph(ds)


def test_transfer_syntax_without_any_decoder_is_unreadable() -> None:
    ds = build_radiograph(spec_for(), STUDY)
    ds.file_meta.TransferSyntaxUID = MPEG2MPML
    ds.PixelData = encapsulate([b"\x00\x00"])
    with pytest.raises(UnreadableImage, match="no decoder exists for transfer syntax MPEG2"):
        read_radiograph(ds)


def test_missing_decoder_plugin_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    class Absent:
        is_available = False
        missing_dependencies = ("pylibjpeg - requires pylibjpeg-openjpeg",)

    monkeypatch.setattr(decode, "get_decoder", lambda uid: Absent())
    ds = build_radiograph(spec_for(ts=JPEG2000Lossless), STUDY)
    with pytest.raises(UnreadableImage, match=r"no decoder installed for JPEG 2000.*openjpeg"):
        read_radiograph(ds)


def test_not_dicom_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "notes.dcm"
    path.write_text("not a DICOM file")
    with pytest.raises(UnreadableImage, match="not a DICOM file"):
        read_radiograph(path)


def test_real_cr_radiograph_reads_the_same_uncompressed_and_j2k() -> None:
    pytest.importorskip("data_store", reason="pydicom-data (a dev dependency) is not installed")
    from pydicom.data import get_testdata_file

    plain_path = get_testdata_file("RG3_UNCR.dcm", download=False)
    j2k_path = get_testdata_file("RG3_J2KR.dcm", download=False)
    assert isinstance(plain_path, str) and isinstance(j2k_path, str)
    plain, j2k = read_radiograph(plain_path), read_radiograph(j2k_path)
    assert plain.photometric == "MONOCHROME1"
    assert (plain.window, plain.window_source) == ((550.0, 1024.0), "file")
    np.testing.assert_array_equal(plain.pixels, j2k.pixels)
    assert plain.laterality == "R"
