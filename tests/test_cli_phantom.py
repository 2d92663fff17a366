"""`rascore phantom` and `rascore crops` as a user runs them: real files, real validators."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest

from dicom_io.reading import read_radiograph
from scoring.phantom import PhantomConfig, generate_image

RASCORE = str(Path(sys.executable).with_name("rascore"))
ENCODINGS = ["explicit", "jpeg2000-lossless", "jpegls-lossless"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RASCORE, *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def phantom_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("phantoms")
    args = ["--count", "3", "--seed", "11", "--hands", "1", "--gallery", str(out / "g.png")]
    for encoding in ENCODINGS:
        args += ["--encoding", encoding]
    result = run("phantom", "--out", str(out), *args)
    assert result.returncode == 0, result.stderr
    return out


def test_files_pass_dciodvfy(
    phantom_set: Path, assert_dciodvfy_clean: Callable[[Path | str], str]
) -> None:
    files = sorted(phantom_set.glob("*.dcm"))
    assert len(files) == 3
    for path in files:
        assert_dciodvfy_clean(path)


def test_truth_follows_the_contract_and_matches_the_files(phantom_set: Path) -> None:
    truth = json.loads((phantom_set / "truth.json").read_text())
    assert truth["generator"]["seed"] == 11 and truth["generator"]["version"]
    assert len(truth["images"]) == 3
    for record in truth["images"]:
        ds = pydicom.dcmread(phantom_set / record["file"])
        assert ds.SOPInstanceUID == record["sop_instance_uid"]
        assert ds.StudyInstanceUID == record["study_instance_uid"]
        assert record["hands"] in (["R"], ["L"])
        assert ds.ImageLaterality == record["hands"][0]
        assert "PHANTOM" in str(ds.PatientName)
        assert "NOT FOR DIAGNOSTIC USE" in ds.ImageComments
        assert len(record["joints"]) == 10
        for joint in record["joints"]:
            assert joint["label"][0] == record["hands"][0]
            assert 0 <= joint["jsn"] <= 4 and 0 <= joint["erosion"] <= 5
            x, y, w, h = joint["box"]
            assert x + w <= ds.Columns and y + h <= ds.Rows
            assert len(joint["center"]) == 2
    first, second, third = truth["images"]
    # both hands of one patient in one study; the next patient in another
    assert first["study_instance_uid"] == second["study_instance_uid"]
    assert first["sop_instance_uid"] != second["sop_instance_uid"]
    assert third["study_instance_uid"] != first["study_instance_uid"]
    a, b = (pydicom.dcmread(phantom_set / r["file"]) for r in (first, second))
    assert (a.PatientID, a.PatientName, a.AccessionNumber) == (
        b.PatientID,
        b.PatientName,
        b.AccessionNumber,
    )


def _mean_at(image: np.ndarray, points: list[tuple[float, float]]) -> float:
    return float(np.mean([image[int(y), int(x)] for x, y in points]))


def test_each_encoding_decodes_to_the_generated_pixels_with_bone_bright(
    phantom_set: Path,
) -> None:
    truth = json.loads((phantom_set / "truth.json").read_text())
    config = PhantomConfig(hands=1, encodings=tuple(ENCODINGS))  # type: ignore[arg-type]
    seen = set()
    for index, record in enumerate(truth["images"]):
        ds = pydicom.dcmread(phantom_set / record["file"])
        seen.add(str(ds.file_meta.TransferSyntaxUID))
        assert np.array_equal(ds.pixel_array, generate_image(11, index, config).pixels)
        display = read_radiograph(ds).pixels
        spacing = float(ds.PixelSpacing[0])
        brighter = 0
        for joint in record["joints"]:
            (cx, cy), (ax, ay) = joint["center"], joint["axis"]
            w = joint["width_mm"] / spacing
            bone = [(cx + k * 0.4 * w * ax, cy + k * 0.4 * w * ay) for k in (-1, 1)]
            beside = [(cx - k * 1.1 * w * ay, cy + k * 1.1 * w * ax) for k in (-1, 1)]
            brighter += _mean_at(display, bone) > _mean_at(display, beside)
        assert brighter >= 8, (record["file"], ds.PhotometricInterpretation, brighter)
    assert len(seen) >= 2, seen


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    for name in ("a", "b"):
        result = run("phantom", "--out", str(tmp_path / name), "--count", "1", "--seed", "4")
        assert result.returncode == 0, result.stderr
    a = (tmp_path / "a" / "phantom_00000.dcm").read_bytes()
    b = (tmp_path / "b" / "phantom_00000.dcm").read_bytes()
    assert a == b
    assert (tmp_path / "a" / "truth.json").read_text() == (
        tmp_path / "b" / "truth.json"
    ).read_text()


def test_gallery_is_a_picture_of_the_set(phantom_set: Path) -> None:
    sheet = cv2.imread(str(phantom_set / "g.png"))
    assert sheet is not None and sheet.shape[0] > 200 and sheet.shape[1] > 1000
    # boxes are drawn in colour on a grey-scale radiograph
    b, g, r = (sheet[..., i].astype(int) for i in range(3))
    assert ((np.abs(r - b) > 60) | (np.abs(g - b) > 60)).sum() > 500


def test_crops_clip_every_labelled_joint(phantom_set: Path, tmp_path: Path) -> None:
    out = tmp_path / "clips.npz"
    result = run("crops", "--data", str(phantom_set), "--out", str(out))
    assert result.returncode == 0, result.stderr
    clips = np.load(out)
    truth = json.loads((phantom_set / "truth.json").read_text())
    joints = [j for r in truth["images"] for j in r["joints"]]
    assert clips["images"].shape == (len(joints), 48, 48)
    assert clips["images"].dtype == np.uint8
    assert list(clips["label"]) == [j["label"] for j in joints]
    assert list(clips["jsn"]) == [j["jsn"] for j in joints]
    assert list(clips["erosion"]) == [j["erosion"] for j in joints]
    assert set(clips["joint_type"]) == {"PIP", "IP", "MCP"}
    # a joint clip holds bone: brighter in the middle than the clip's darkest tenth
    for clip in clips["images"][:10]:
        assert clip[16:32, 16:32].mean() > np.percentile(clip, 10) + 20


@pytest.mark.parametrize(
    "args, reason",
    [
        (["phantom", "--out", "{tmp}/x", "--count", "0"], "--count"),
        (["phantom", "--out", "{tmp}/x", "--hands", "3"], "--hands"),
        (["phantom", "--out", "{tmp}/x", "--encoding", "jpeg-xl"], "--encoding"),
        (["phantom", "--out", "{tmp}/x", "--distribution", "flat"], "--distribution"),
        (["crops", "--data", "{tmp}", "--out", "{tmp}/c.npz"], "truth.json"),
    ],
)
def test_bad_input_exits_2_with_one_line_reason(
    tmp_path: Path, args: list[str], reason: str
) -> None:
    result = run(*(a.format(tmp=tmp_path) for a in args))
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and reason in lines[0], result.stderr
