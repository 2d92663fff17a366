"""The production reader: real radiographs, every transfer syntax, typed rejections.

Inputs: the real CR radiographs of the pydicom-data wheel (RG1 chest, RG3 extremity, both
MONOCHROME1), pydicom's own test files, and the ``phantom_file`` fixture re-encoded in every
transfer syntax with pydicom and dcmtk. dcmtk is a system tool that CI installs, and
pydicom-data a dev dependency; like the validators in conftest, a missing one fails the test
instead of skipping it.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import apply_modality_lut
from pydicom.uid import (
    JPEG2000,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from radiographs import disc_on_ramp, hand_spec, study

import dicom_io.reading as reading
from dicom_io.radiograph import build_radiograph
from dicom_io.reading import (
    MAX_PIXELS,
    ColourImage,
    CorruptImage,
    GreyscaleImage,
    ImageTooLarge,
    MissingDecoder,
    MultiFrameImage,
    NoPixelData,
    NotARadiograph,
    NotDicom,
    UnreadableImage,
    UnsupportedTransferSyntax,
    decode,
    read_radiograph,
)

ROOT = "1.2.826.0.1.3680043.10.543.3"  # test UIDs only
STUDY = study(ROOT, "Reader^Test", "RD-0001", "RD0001")

DX_FOR_PROCESSING = UID("1.2.840.10008.5.1.4.1.1.1.1.1")
SECONDARY_CAPTURE = UID("1.2.840.10008.5.1.4.1.1.7")
MAMMOGRAPHY = UID("1.2.840.10008.5.1.4.1.1.1.2")


# Helpers


def data_file(name: str) -> Path:
    """A file of pydicom's test data or of the pydicom-data wheel, never downloaded."""
    try:
        import data_store  # noqa: F401  (the pydicom-data wheel)
    except ImportError:
        pytest.fail("pydicom-data is not installed; `make test` installs it", pytrace=False)
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name, download=False)
    assert isinstance(path, str), f"{name} is not in pydicom's test data or pydicom-data"
    return Path(path)


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; install the Debian package dcmtk", pytrace=False)
    return found


def run_tool(*args: str) -> None:
    proc = subprocess.run(
        [tool(args[0]), *args[1:]], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout}{proc.stderr}"


def small_cr(
    photometric: str = "MONOCHROME2", bits: int = 12, size: int = 96, **changes: Any
) -> Dataset:
    """A small CR with a bright disc ("bone") on a ramp (see tests/radiographs.py)."""
    top = 2**bits - 1
    px = disc_on_ramp(size, size, top)
    if photometric == "MONOCHROME1":
        px = (top - px).astype(np.uint16)
    spec = hand_spec(ROOT, px, bits=bits, photometric=photometric, **changes)
    return build_radiograph(spec, STUDY)


def bone_minus_soft(image: GreyscaleImage) -> float:
    n = image.rows
    return float(
        image.pixels[n // 2 - 4 : n // 2 + 4, n // 2 - 4 : n // 2 + 4].mean()
        - image.pixels[n - 8 :, 2:10].mean()
    )


def one_line(exc: pytest.ExceptionInfo[UnreadableImage]) -> str:
    message = str(exc.value)
    assert message and "\n" not in message, f"not a one-line reason: {message!r}"
    return message


# Real CR radiographs (pydicom-data): RG1 chest and RG3 extremity, MONOCHROME1

RG_FILES = [f"RG{n}_{enc}.dcm" for n in (1, 3) for enc in ("UNCR", "UNCI", "J2KR", "J2KI")]


@pytest.mark.parametrize("name", RG_FILES)
def test_real_cr_radiograph_decodes_bone_bright(name: str) -> None:
    path = data_file(name)
    ds = pydicom.dcmread(path)
    image = read_radiograph(path)

    assert (image.rows, image.columns) == (ds.Rows, ds.Columns)
    assert image.pixels.shape == (ds.Rows, ds.Columns)
    assert image.pixels.dtype == np.float32 and image.pixels.flags.c_contiguous
    assert float(image.pixels.min()) >= 0.0 and float(image.pixels.max()) <= 1.0
    assert image.photometric == "MONOCHROME1" and image.inverted
    assert image.sop_class_uid == "1.2.840.10008.5.1.4.1.1.1" and image.modality == "CR"
    assert image.bits_stored == ds.BitsStored
    assert (image.voi, image.window_source) == ("window", "file")
    assert image.window == (float(ds.WindowCenter), float(ds.WindowWidth))
    assert image.transfer_syntax_uid == ds.file_meta.TransferSyntaxUID
    assert image.lossy == (name.endswith("I.dcm"))  # ...I = irreversible, ...R = reversible
    expected_decoder = "pydicom/pylibjpeg" if "J2K" in name else "pydicom"
    assert image.decoder == expected_decoder

    # MONOCHROME1: high stored values are dark, so display and stored values anti-correlate.
    stored = ds.pixel_array[::8, ::8].astype(np.float64).ravel()
    shown = image.pixels[::8, ::8].astype(np.float64).ravel()
    assert np.corrcoef(stored, shown)[0, 1] < -0.9

    # Bone is bright: the spine over the lungs, the tibia over the air beside the leg.
    p = image.pixels
    if name.startswith("RG1"):
        rows, cols = p.shape
        spine = p[rows // 3 : rows // 2, cols // 2 - 40 : cols // 2 + 40].mean()
        lung = p[rows // 3 : rows // 2, cols // 4 - 40 : cols // 4 + 40].mean()
        assert spine > lung + 0.15
    else:
        tibia, air = p[300:700, 840:920].mean(), p[300:700, 500:600].mean()
        assert tibia > 0.6 and air < 0.2


@pytest.mark.parametrize("stem", ["RG1", "RG3"])
def test_real_cr_lossless_encodings_give_identical_pixels(stem: str) -> None:
    plain = read_radiograph(data_file(f"{stem}_UNCR.dcm"))
    j2k = read_radiograph(data_file(f"{stem}_J2KR.dcm"))
    np.testing.assert_array_equal(plain.pixels, j2k.pixels)
    assert plain.window == j2k.window

    # The lossy pair: its own uncompressed copy matches closely, and so does the original.
    lossy = read_radiograph(data_file(f"{stem}_J2KI.dcm"))
    lossy_plain = read_radiograph(data_file(f"{stem}_UNCI.dcm"))
    assert float(np.abs(lossy.pixels - lossy_plain.pixels).max()) < 0.01
    assert float(np.abs(lossy.pixels - plain.pixels).mean()) < 0.02


def test_real_cr_geometry() -> None:
    rg3 = read_radiograph(data_file("RG3_UNCR.dcm"))
    assert rg3.laterality == "R"  # from the series Laterality: it has no Image Laterality
    assert rg3.view_position == "AP"
    assert rg3.pixel_spacing_mm is None and rg3.spacing_source is None  # neither present
    rg1 = read_radiograph(data_file("RG1_UNCR.dcm"))
    assert rg1.laterality == "U" and rg1.view_position == "PA"
    assert rg1.pixel_spacing_mm is None  # Pixel Spacing 0\0 is no spacing


def test_real_cr_histogram_window_leaves_out_the_saturated_collimation() -> None:
    path = data_file("RG3_UNCR.dcm")
    image = read_radiograph(path, voi="histogram")
    assert (image.voi, image.window_source) == ("histogram", "histogram")
    assert "saturated bright" in image.window_explanation
    stored = pydicom.dcmread(path).pixel_array
    # 42% of the image is the collimator shadow at stored 0: not where the window is set.
    assert float((stored == 0).mean()) > 0.3
    centre, width = image.window
    assert centre - width / 2 > 0
    assert float(image.pixels[stored == 0].min()) == 1.0  # still shown white
    # and the window it finds is close to the one the modality chose
    file_window = read_radiograph(path)
    assert abs(centre - file_window.window[0]) < 0.1 * file_window.window[1]
    assert float(np.abs(image.pixels - file_window.pixels).mean()) < 0.05


REAL_REENCODINGS = [
    pytest.param(("dcmconv", "+tb"), ExplicitVRBigEndian, id="big-endian"),
    pytest.param(("dcmcrle",), RLELossless, id="rle"),
    pytest.param(("dcmcjpeg", "+e1"), JPEGLosslessSV1, id="jpeg-lossless-sv1"),
    pytest.param(("dcmcjpls",), JPEGLSLossless, id="jpegls-lossless"),
]


@pytest.mark.parametrize(("command", "ts"), REAL_REENCODINGS)
def test_real_cr_reencoded_by_dcmtk_is_identical(
    command: tuple[str, ...], ts: str, tmp_path: Path
) -> None:
    source = data_file("RG3_UNCR.dcm")
    target = tmp_path / "rg3.dcm"
    run_tool(*command, str(source), str(target))
    assert pydicom.dcmread(target, stop_before_pixels=True).file_meta.TransferSyntaxUID == ts
    np.testing.assert_array_equal(read_radiograph(target).pixels, read_radiograph(source).pixels)


# pydicom's own test files

MR_SMALL = [
    "MR_small.dcm",
    "MR_small_implicit.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_expb.dcm",
    "MR_small_RLE.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "MR_small_jp2klossless.dcm",
]


@pytest.mark.parametrize("name", MR_SMALL)
def test_mr_image_is_not_a_radiograph(name: str) -> None:
    with pytest.raises(NotARadiograph) as exc:
        read_radiograph(data_file(name))
    assert "SOP class MR Image Storage (1.2.840.10008.5.1.4.1.1.4) is not a radiograph" in (
        one_line(exc)
    )


def _without_sop_class(path: Path) -> Dataset:
    ds = pydicom.dcmread(path)
    del ds.SOPClassUID
    del ds.file_meta.MediaStorageSOPClassUID
    return ds


@pytest.mark.parametrize("name", MR_SMALL[1:])
def test_bare_datasets_decode_in_every_transfer_syntax(name: str) -> None:
    """A dataset handed over without a SOP class is read; every encoding gives one picture."""
    reference = read_radiograph(_without_sop_class(data_file(MR_SMALL[0])))
    image = read_radiograph(_without_sop_class(data_file(name)))
    assert image.sop_class_uid == ""
    np.testing.assert_array_equal(image.pixels, reference.pixels)
    # but from a path the same file is refused for what it is
    with pytest.raises(NotARadiograph):
        read_radiograph(data_file(name))


def test_file_without_sop_class_is_refused(tmp_path: Path) -> None:
    ds = _without_sop_class(data_file("MR_small.dcm"))
    path = tmp_path / "no-class.dcm"
    ds.save_as(path, enforce_file_format=False)
    with pytest.raises(NotARadiograph, match="no SOP Class UID") as exc:
        read_radiograph(path)
    one_line(exc)


def test_deflated_secondary_capture(tmp_path: Path) -> None:
    path = data_file("image_dfl.dcm")
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian
    image = read_radiograph(path)
    assert image.sop_class_uid == SECONDARY_CAPTURE
    assert image.transfer_syntax_uid == DeflatedExplicitVRLittleEndian
    inflated = tmp_path / "inflated.dcm"
    run_tool("dcmconv", "+te", str(path), str(inflated))
    np.testing.assert_array_equal(read_radiograph(inflated).pixels, image.pixels)


def test_12_bit_jpeg_extended_falls_back_to_dcmdjpeg() -> None:
    image = read_radiograph(data_file("JPGExtended.dcm"))  # 12-bit, Pillow cannot decode it
    assert image.transfer_syntax_uid == JPEGExtended12Bit
    assert image.decoder == "dcmtk dcmdjpeg"
    assert image.bits_stored == 12 and image.lossy
    assert image.pixels.shape == (1024, 256)
    # the same NM image stored losslessly (JPEG lossless SV1, also through dcmdjpeg)
    lossless = read_radiograph(data_file("JPEG-LL.dcm"))
    assert lossless.transfer_syntax_uid == JPEGLosslessSV1
    assert lossless.decoder == "dcmtk dcmdjpeg" and not lossless.lossy
    assert np.corrcoef(image.pixels.ravel(), lossless.pixels.ravel())[0, 1] > 0.95


def test_missing_dcmdjpeg_is_a_typed_error_that_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decode, "_find_tool", lambda name: None)
    with pytest.raises(MissingDecoder) as exc:
        read_radiograph(data_file("JPGExtended.dcm"))
    message = one_line(exc)
    assert "JPEG Extended" in message and "12 bits" in message and "dcmdjpeg" in message
    assert exc.value.decoder == "dcmdjpeg"
    with pytest.raises(MissingDecoder, match=r"JPEG Lossless.*libjpeg.*dcmdjpeg"):
        read_radiograph(data_file("JPEG-LL.dcm"))


def test_jpeg_2000_matches_its_uncompressed_version() -> None:
    j2k = read_radiograph(data_file("JPEG2000.dcm"))
    plain = read_radiograph(data_file("JPEG2000_UNC.dcm"))
    assert j2k.transfer_syntax_uid == JPEG2000
    np.testing.assert_array_equal(j2k.pixels, plain.pixels)


@pytest.mark.parametrize("name", ["JPEGLSNearLossless_08.dcm", "JPEGLSNearLossless_16.dcm"])
def test_jpeg_ls_near_lossless(name: str) -> None:
    ds = pydicom.dcmread(data_file(name))
    image = read_radiograph(data_file(name))
    assert image.transfer_syntax_uid == JPEGLSNearLossless and image.lossy
    assert image.pixels.shape == (ds.Rows, ds.Columns)
    assert image.voi == "histogram"
    assert np.corrcoef(image.pixels.ravel(), ds.pixel_array.ravel())[0, 1] > 0.99


def test_modality_lut_sequence_comes_before_the_voi() -> None:
    path = data_file("mlut_18.dcm")  # signed 12-bit stored, Modality LUT Sequence to 16 bits
    ds = pydicom.dcmread(path)
    modality = apply_modality_lut(ds.pixel_array, ds).astype(np.float64)
    assert float(modality.max()) > 4 * float(np.abs(ds.pixel_array).max())  # not the identity

    image = read_radiograph(path)  # no window: the histogram of the LUT's output
    assert image.voi == "histogram" and image.window[1] > 4096
    order = np.argsort(modality.ravel(), kind="stable")
    assert np.all(np.diff(image.pixels.ravel()[order]) >= 0)
    assert float(image.pixels.std()) > 0.2

    # A window in the LUT's output units applies to the LUT's output, not the stored values.
    ds.WindowCenter, ds.WindowWidth = 32768.0, 16384.0
    windowed = read_radiograph(ds)
    expected = np.clip((modality - 32767.5) / 16383.0 + 0.5, 0.0, 1.0)
    np.testing.assert_allclose(windowed.pixels, expected, atol=1e-5)


def test_voi_lut_sequence() -> None:
    path = data_file("vlut_04.dcm")
    ds = pydicom.dcmread(path)
    image = read_radiograph(path)
    assert (image.voi, image.voi_function, image.window_source) == ("voi-lut", "LUT", "file")
    lut = np.asarray(ds.VOILUTSequence[0].LUTData, dtype=np.float64)
    expected = lut[ds.pixel_array] / 65535.0  # LUT Descriptor: 16 bits per entry
    np.testing.assert_allclose(image.pixels, expected, atol=1e-6)
    # the same LUT as raw OW bytes (the other VR LUT Data may have)
    item = ds.VOILUTSequence[0]
    item["LUTData"] = pydicom.DataElement(0x00283006, "OW", lut.astype("<u2").tobytes())
    np.testing.assert_allclose(read_radiograph(ds).pixels, expected, atol=1e-6)


def test_lut_or_window_preference() -> None:
    ds = pydicom.dcmread(data_file("vlut_04.dcm"))
    ds.WindowCenter, ds.WindowWidth = [100.0, 50.0], [80.0, 20.0]
    ds.WindowCenterWidthExplanation = ["SOFT", "DENSE"]
    first = read_radiograph(ds)
    assert (first.voi, first.window, first.window_explanation) == ("window", (100.0, 80.0), "SOFT")
    assert read_radiograph(ds, voi="lut").voi == "voi-lut"
    assert read_radiograph(ds, voi="histogram").voi == "histogram"


# The phantom re-encoded in every transfer syntax

Encoder = Callable[[Path, Path], None]


def pydicom_encoder(ts: str, **options: Any) -> Encoder:
    def encode(source: Path, target: Path) -> None:
        ds = pydicom.dcmread(source)
        ds.compress(ts, generate_instance_uid=False, **options)
        ds.save_as(target, enforce_file_format=True)

    return encode


def dcmtk_encoder(*command: str) -> Encoder:
    def encode(source: Path, target: Path) -> None:
        run_tool(*command, str(source), str(target))

    return encode


LOSSLESS = [
    pytest.param(dcmtk_encoder("dcmconv", "+ti"), ImplicitVRLittleEndian, "pydicom", id="implicit"),
    pytest.param(dcmtk_encoder("dcmconv", "+tb"), ExplicitVRBigEndian, "pydicom", id="big-endian"),
    pytest.param(
        dcmtk_encoder("dcmconv", "+td"), DeflatedExplicitVRLittleEndian, "pydicom", id="deflated"
    ),
    pytest.param(
        dcmtk_encoder("dcmcjpeg", "+el"), JPEGLossless, "dcmtk dcmdjpeg", id="jpeg-lossless-p14"
    ),
    pytest.param(
        dcmtk_encoder("dcmcjpeg", "+e1"), JPEGLosslessSV1, "dcmtk dcmdjpeg", id="jpeg-lossless-sv1"
    ),
    pytest.param(pydicom_encoder(JPEGLSLossless), JPEGLSLossless, "pydicom", id="jpegls-pydicom"),
    pytest.param(dcmtk_encoder("dcmcjpls"), JPEGLSLossless, "pydicom", id="jpegls-dcmtk"),
    pytest.param(
        pydicom_encoder(JPEG2000Lossless), JPEG2000Lossless, "pydicom/pylibjpeg", id="j2k-lossless"
    ),
    pytest.param(pydicom_encoder(RLELossless), RLELossless, "pydicom/pylibjpeg", id="rle-pydicom"),
    pytest.param(dcmtk_encoder("dcmcrle"), RLELossless, "pydicom/pylibjpeg", id="rle-dcmtk"),
]

LOSSY = [
    # 10 bits scaled into 8 (with a rescale back to the original units), then DCT
    pytest.param(
        dcmtk_encoder("dcmcjpeg", "+eb", "+rm"), JPEGBaseline8Bit, "pydicom", id="jpeg-baseline"
    ),
    # 12-bit DCT: Pillow cannot, dcmdjpeg does
    pytest.param(
        dcmtk_encoder("dcmcjpeg", "+ee"), JPEGExtended12Bit, "dcmtk dcmdjpeg", id="jpeg-extended"
    ),
    pytest.param(
        dcmtk_encoder("dcmcjpls", "+en", "+md", "2"),
        JPEGLSNearLossless,
        "pydicom",
        id="jpegls-near-lossless",
    ),
    pytest.param(
        pydicom_encoder(JPEG2000, j2k_cr=[20]), JPEG2000, "pydicom/pylibjpeg", id="j2k-lossy"
    ),
]


@pytest.fixture(scope="module")
def phantom_reference(phantom_file: Path) -> GreyscaleImage:
    return read_radiograph(phantom_file)


@pytest.mark.parametrize(("encode", "ts", "decoder"), LOSSLESS)
def test_phantom_lossless_encodings_decode_identically(
    encode: Encoder,
    ts: str,
    decoder: str,
    phantom_file: Path,
    phantom_reference: GreyscaleImage,
    tmp_path: Path,
) -> None:
    target = tmp_path / "encoded.dcm"
    encode(phantom_file, target)
    assert pydicom.dcmread(target, stop_before_pixels=True).file_meta.TransferSyntaxUID == ts

    image = read_radiograph(target)
    assert (image.transfer_syntax_uid, image.decoder, image.lossy) == (ts, decoder, False)
    np.testing.assert_array_equal(image.pixels, phantom_reference.pixels)
    assert image.window == phantom_reference.window
    for field in ("rows", "columns", "pixel_spacing_mm", "laterality", "sop_instance_uid"):
        assert getattr(image, field) == getattr(phantom_reference, field), field


@pytest.mark.parametrize(("encode", "ts", "decoder"), LOSSY)
def test_phantom_lossy_encodings_decode_close(
    encode: Encoder,
    ts: str,
    decoder: str,
    phantom_file: Path,
    phantom_reference: GreyscaleImage,
    tmp_path: Path,
) -> None:
    target = tmp_path / "encoded.dcm"
    encode(phantom_file, target)
    assert pydicom.dcmread(target, stop_before_pixels=True).file_meta.TransferSyntaxUID == ts

    image = read_radiograph(target)
    assert (image.transfer_syntax_uid, image.decoder) == (ts, decoder)
    assert image.pixels.shape == phantom_reference.pixels.shape
    difference = np.abs(image.pixels - phantom_reference.pixels)
    assert float(difference.mean()) < 0.01
    assert float(np.percentile(difference, 99)) < 0.04
    if ts != JPEG2000:  # pydicom's compress() leaves Lossy Image Compression at 00
        assert image.lossy


def test_phantom_histogram_window_is_set_on_the_hands(
    phantom_file: Path, phantom_reference: GreyscaleImage
) -> None:
    """The phantom has no window: the reader's own must ignore air and collimator shadow."""
    image = phantom_reference
    assert (image.voi, image.window_source) == ("histogram", "histogram")
    assert "air" in image.window_explanation and "collimation" in image.window_explanation
    truth = json.loads((phantom_file.parent / "truth.json").read_text())["images"][0]
    boxes = [j["box"] for j in truth["joints"]]
    joints = np.concatenate([image.pixels[y : y + h, x : x + w].ravel() for x, y, w, h in boxes])
    assert float(np.median(image.pixels)) < 0.05  # air (most of the image) is black
    assert 0.2 < float(joints.mean()) < 0.8  # the joints are neither black nor burnt out
    assert float((joints >= 1.0).mean()) < 0.02 and float((joints <= 0.0).mean()) < 0.25

    # More contrast on the joints than a window over the whole image's histogram gives.
    stored = pydicom.dcmread(phantom_file).pixel_array.astype(np.float64)
    lo, hi = np.percentile(stored, reading.HISTOGRAM_PERCENTILES)
    whole = 1.0 - np.clip((stored - lo) / (hi - lo), 0.0, 1.0)  # MONOCHROME1
    whole_joints = np.concatenate([whole[y : y + h, x : x + w].ravel() for x, y, w, h in boxes])
    assert float(joints.std()) > 1.2 * float(whole_joints.std())


# The pipeline on small synthetic files


def test_modality_lut_sequence_matches_the_same_rescale() -> None:
    rescaled = small_cr(rescale=(2.0, 100.0), window=(4000.0, 6000.0))
    image = read_radiograph(rescaled)
    as_lut = small_cr(rescale=None, window=(4000.0, 6000.0))
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 16]
    item.ModalityLUTType = "US"
    item.LUTData = [2 * v + 100 for v in range(4096)]
    as_lut.ModalityLUTSequence = [item]
    by_table = read_radiograph(as_lut)
    np.testing.assert_allclose(by_table.pixels, image.pixels, atol=1e-6)
    assert bone_minus_soft(image) > 0.3


def test_signed_pixels_with_rescale() -> None:
    ds = small_cr(rescale=(1.0, 0.0), window=(0.0, 2000.0))
    stored = ds.pixel_array.astype(np.int32) - 2048
    ds.PixelRepresentation = 1
    ds.PixelData = stored.astype("<i2").tobytes()
    image = read_radiograph(ds)
    expected = np.clip((stored - (0.0 - 0.5)) / 1999.0 + 0.5, 0.0, 1.0)
    np.testing.assert_allclose(image.pixels, expected, atol=1e-5)
    # the table path (a sigmoid) agrees on which pixels are bright
    ds.VOILUTFunction = "SIGMOID"
    sigmoid = read_radiograph(ds)
    assert sigmoid.voi_function == "SIGMOID"
    np.testing.assert_allclose(
        sigmoid.pixels, 1.0 / (1.0 + np.exp(-4.0 * stored / 2000.0)), atol=1e-5
    )


def test_linear_exact_window() -> None:
    ds = small_cr(rescale=(1.0, 0.0), window=(2000.0, 1000.0))
    ds.VOILUTFunction = "LINEAR_EXACT"
    image = read_radiograph(ds)
    expected = np.clip((ds.pixel_array - 2000.0) / 1000.0 + 0.5, 0.0, 1.0)
    np.testing.assert_allclose(image.pixels, expected, atol=1e-5)
    assert image.voi_function == "LINEAR_EXACT"


def test_first_of_several_windows_and_its_explanation() -> None:
    ds = small_cr(rescale=(1.0, 0.0), window=(2000.0, 3000.0))
    ds.WindowCenter, ds.WindowWidth = [2000.0, 1500.0], [3000.0, 800.0]
    ds.WindowCenterWidthExplanation = ["HAND", "BONE"]
    image = read_radiograph(ds)
    assert image.window == (2000.0, 3000.0)
    assert (image.voi, image.window_explanation) == ("window", "HAND")


def test_monochrome1_with_presentation_lut_inverse_is_inverted_once() -> None:
    m1 = small_cr("MONOCHROME1", rescale=(1.0, 0.0), window=(2048.0, 4000.0))
    assert m1.PresentationLUTShape == "INVERSE"
    image = read_radiograph(m1)
    assert image.inverted and bone_minus_soft(image) > 0.3


def test_8_bit_secondary_capture_is_accepted() -> None:
    ds = small_cr(bits=12)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = SECONDARY_CAPTURE
    px = (ds.pixel_array >> 4).astype(np.uint8)
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelData = px.tobytes()
    image = read_radiograph(ds)
    assert image.sop_class_uid == SECONDARY_CAPTURE and image.bits_stored == 8
    assert bone_minus_soft(image) > 0.3


def test_dx_for_processing_is_accepted() -> None:
    ds = small_cr()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = DX_FOR_PROCESSING
    assert read_radiograph(ds).sop_class_uid == DX_FOR_PROCESSING


def test_decoding_from_a_dataset_through_dcmtk(monkeypatch: pytest.MonkeyPatch) -> None:
    """The dcmtk fallback also serves a dataset that never was a file (e.g. from the SCP)."""
    ds = small_cr()
    ds.compress(RLELossless, generate_instance_uid=False)
    reference = read_radiograph(small_cr())
    del ds.SOPClassUID  # bare: no SOP class either
    del ds.file_meta.MediaStorageSOPClassUID

    class Absent:
        is_available = False
        available_plugins = ()
        missing_dependencies = ("pylibjpeg-rle",)

    monkeypatch.setattr(decode, "get_decoder", lambda uid: Absent())
    image = read_radiograph(ds)
    assert image.decoder == "dcmtk dcmdrle"
    np.testing.assert_array_equal(image.pixels, reference.pixels)


def test_uncompressed_decode_and_window_is_fast() -> None:
    """A loose guard (the benchmark reports the real number, goal 50 ms)."""
    rng = np.random.default_rng(0)
    px = rng.integers(0, 65536, size=(2500, 2000), dtype=np.uint16)
    ds = small_cr(bits=16, rescale=(1.0, 0.0), window=(30000.0, 40000.0))
    ds.Rows, ds.Columns = px.shape
    ds.PixelData = px.tobytes()
    times = []
    for _ in range(5):
        start = time.perf_counter()
        image = read_radiograph(ds)
        times.append(time.perf_counter() - start)
    assert image.pixels.shape == (2500, 2000) and image.pixels.dtype == np.float32
    assert statistics.median(times) < 0.25


# Rejections


def test_garbage_bytes(tmp_path: Path) -> None:
    garbage = np.random.default_rng(3).integers(0, 256, 8192, dtype=np.uint8).tobytes()
    for name, data in (
        ("random.dcm", garbage),
        ("empty.dcm", b""),
        ("text.dcm", b"not a DICOM file at all\n" * 20),
        ("preamble.dcm", bytes(128) + b"DICM" + garbage),
    ):
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(NotDicom, match="not a DICOM") as exc:
            read_radiograph(path)
        one_line(exc)


@pytest.mark.filterwarnings("ignore:End of file reached before delimiter")
def test_truncated_files(tmp_path: Path) -> None:
    for name, fraction, error, reason in (
        ("RG3_UNCR.dcm", 0.5, CorruptImage, "pixel data truncated: 3097038 of the 6195200"),
        ("RG3_J2KR.dcm", 0.7, CorruptImage, "ends inside its Pixel Data"),
        ("RG3_UNCR.dcm", 0.0002, NoPixelData, "truncated"),
    ):
        data = data_file(name).read_bytes()
        path = tmp_path / f"cut-{fraction}-{name}"
        path.write_bytes(data[: int(len(data) * fraction)])
        with pytest.raises(error) as exc:
            read_radiograph(path)
        assert reason in one_line(exc)


def test_no_pixel_data() -> None:
    ds = small_cr()
    del ds.PixelData
    with pytest.raises(NoPixelData, match="no Pixel Data") as exc:
        read_radiograph(ds)
    one_line(exc)


def test_colour_images() -> None:
    with pytest.raises(ColourImage, match=r"colour image \(SamplesPerPixel=3") as exc:
        read_radiograph(data_file("SC_rgb.dcm"))  # a Secondary Capture: right class, colour
    one_line(exc)
    ds = small_cr()
    ds.PhotometricInterpretation = "PALETTE COLOR"
    with pytest.raises(ColourImage, match="PALETTE COLOR is not grey-scale"):
        read_radiograph(ds)


def test_multi_frame() -> None:
    ds = small_cr()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = SECONDARY_CAPTURE
    ds.NumberOfFrames = 2
    ds.PixelData = ds.PixelData * 2
    with pytest.raises(MultiFrameImage, match=r"multi-frame image \(2 frames\)") as exc:
        read_radiograph(ds)
    one_line(exc)


def _huge_header(rows: int, columns: int) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.1")
    ds.file_meta.MediaStorageSOPInstanceUID = UID(f"{ROOT}.9")
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    ds.SOPInstanceUID = f"{ROOT}.9"
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = b"\x00\x00" * 8  # claims 5 GB, holds 16 bytes
    return ds


@pytest.mark.parametrize(("rows", "columns"), [(50000, 50000), (9000, 9000), (12000, 100)], ids=str)
def test_absurd_dimensions_are_refused_before_decoding(
    rows: int, columns: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert rows * columns > MAX_PIXELS or max(rows, columns) > reading.MAX_SIDE

    def never(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("decoded an image that should have been refused")

    monkeypatch.setattr(decode, "pixel_array", never)
    ds = _huge_header(rows, columns)
    with pytest.raises(ImageTooLarge, match=f"absurd dimensions {rows} × {columns}") as exc:
        read_radiograph(ds)
    one_line(exc)
    path = tmp_path / "huge.dcm"
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(ImageTooLarge):
        read_radiograph(path)


@pytest.mark.parametrize(
    ("name", "what"),
    [
        ("CT_small.dcm", "CT Image Storage"),
        ("OBXXXX1A.dcm", "Ultrasound Image Storage"),
        ("emri_small.dcm", "Enhanced MR Image Storage"),
        ("rtdose_1frame.dcm", "RT Dose Storage"),
    ],
)
def test_other_sop_classes_are_refused(name: str, what: str) -> None:
    with pytest.raises(NotARadiograph, match=f"SOP class {what} .* is not a radiograph") as exc:
        read_radiograph(data_file(name))
    one_line(exc)


def test_mammography_is_refused() -> None:
    ds = small_cr()
    ds.SOPClassUID = MAMMOGRAPHY
    with pytest.raises(NotARadiograph, match="Digital Mammography"):
        read_radiograph(ds)


def test_unknown_transfer_syntax() -> None:
    ds = small_cr()
    ds.file_meta.TransferSyntaxUID = UID("1.2.826.0.1.3680043.10.543.99")
    ds.PixelData = encapsulate([b"\x00\x01"])
    with pytest.raises(UnsupportedTransferSyntax, match="no decoder exists") as exc:
        read_radiograph(ds)
    one_line(exc)


def test_corrupt_compressed_pixel_data() -> None:
    ds = small_cr()
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + bytes(64)])
    with pytest.raises(CorruptImage, match="could not be decoded") as exc:
        read_radiograph(ds)
    one_line(exc)


def test_every_refusal_is_an_unreadable_image() -> None:
    for error in (
        NotDicom,
        CorruptImage,
        NotARadiograph,
        NoPixelData,
        ColourImage,
        MultiFrameImage,
        ImageTooLarge,
        MissingDecoder,
        UnsupportedTransferSyntax,
        reading.UnsupportedPixelFormat,
    ):
        assert issubclass(error, UnreadableImage) and issubclass(error, ValueError)
        assert error.reason != UnreadableImage.reason
