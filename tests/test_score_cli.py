"""`rascore score` and `rascore evaluate` with the committed default model, as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

RASCORE = str(Path(sys.executable).with_name("rascore"))


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RASCORE, *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def scored(phantom_file: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("results")
    done = run("score", str(phantom_file), "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), out


def test_score_json_follows_the_contract(scored, phantom_file: Path) -> None:  # type: ignore[no-untyped-def]
    result, _ = scored
    ds = pydicom.dcmread(phantom_file, stop_before_pixels=True)
    assert result["sop_instance_uid"] == ds.SOPInstanceUID
    assert set(result["model"]) >= {"name", "version"}
    assert result["joints"], result["status"]
    for joint in result["joints"]:
        assert set(joint) >= {"label", "box", "jsn", "erosion", "jsn_probs", "erosion_probs"}
        assert len(joint["jsn_probs"]) == 5 and len(joint["erosion_probs"]) == 6
        assert joint["jsn"] == max(range(5), key=lambda k: joint["jsn_probs"][k])
    assert result["totals"]["jsn"] == sum(j["jsn"] for j in result["joints"])
    assert {"read", "detect", "identify", "score"} <= set(result["timings_ms"])


def _placed_right(joints: list[dict], truth: list[dict]) -> int:  # type: ignore[type-arg]
    """Joints whose box centre lies in the truth box of the joint with the same label."""
    boxes = {j["label"]: j["box"] for j in truth}
    right = 0
    for joint in joints:
        x, y, w, h = joint["box"]
        tx, ty, tw, th = boxes[joint["label"]]
        right += tx <= x + w / 2 <= tx + tw and ty <= y + h / 2 <= ty + th
    return right


def test_score_finds_most_joints_where_the_truth_has_them(tmp_path: Path) -> None:
    """Over four phantoms (80 joints), through the command line: most joints found and named
    right. Measured: 62 of 80 with model 138cadad1276 (the earlier 1.0.0+c3a504b1c7fd: 69),
    because image 0 has a widely spread right hand whose rotated joints the cascade mostly
    misses — the paper's own failure mode. The held-out figures are in the model card (94 %
    detection on 600 joints; 93 % on another 800, seed 7777)."""
    assert run("phantom", "--out", str(tmp_path), "--count", "4", "--seed", "2").returncode == 0
    truth = json.loads((tmp_path / "truth.json").read_text())["images"]
    right = total = 0
    for image in truth:
        done = run("score", str(tmp_path / image["file"]), "--json")
        assert done.returncode == 0, done.stderr
        right += _placed_right(json.loads(done.stdout)["joints"], image["joints"])
        total += len(image["joints"])
    assert right >= 0.75 * total, (right, total)


def test_results_are_valid_dicom_consistent_with_the_source(  # type: ignore[no-untyped-def]
    scored, phantom_file: Path, assert_dciodvfy_clean
) -> None:
    result, out = scored
    files = sorted(out.glob("*.dcm"))
    assert len(files) == 3 and len(result["written"]) == 3
    for path in files:
        assert_dciodvfy_clean(path)
    done = subprocess.run(
        ["/usr/bin/dcentvfy", str(phantom_file), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0 and "Error" not in output, output
    sr = next(pydicom.dcmread(p) for p in files if p.name.startswith("sr_"))
    from dicom_io.sr import read_sr

    back = read_sr(sr)
    assert [j.label for j in back.joints] == [j["label"] for j in result["joints"]]


def test_images_without_hands_give_no_joints() -> None:
    for name in ("RG1_UNCR.dcm", "RG3_UNCR.dcm"):  # a chest and a lower leg, real CR
        path = get_testdata_file(name, download=False)
        assert path, name
        done = run("score", path, "--json")
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert result["joints"] == [], (name, [j["label"] for j in result["joints"]])
        assert "no hand" in result["status"]


@pytest.mark.parametrize("content", [b"", b"not dicom at all" * 100, b"DICM" * 10])
def test_garbage_is_refused_with_a_reason(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(content)
    done = run("score", str(bad), "--json")
    assert done.returncode == 2
    assert done.stdout == ""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and str(bad) in lines[0]


def test_evaluate_prints_the_contract_and_writes_a_report(tmp_path: Path) -> None:
    data = tmp_path / "set"
    done = run("phantom", "--out", str(data), "--count", "2", "--seed", "90210")
    assert done.returncode == 0, done.stderr
    report = tmp_path / "report"
    done = run("evaluate", "--data", str(data), "--json", "--report", str(report))
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert figures["images"] == 2
    assert set(figures["detection"]) >= {"sensitivity", "per_type", "identity_accuracy"}
    assert set(figures["detection"]["per_type"]) == {"PIP", "IP", "MCP"}
    for kind in ("jsn", "erosion"):
        assert set(figures[kind]) >= {"pea", "pca", "sensitivity", "specificity", "pearson_total"}
        assert set(figures[kind]["per_type"]) == {"PIP/IP", "MCP"}
    assert figures["seconds_per_image"] > 0
    for name in ("evaluation.md", "scores.png", "totals.png", "training-curves.png"):
        assert (report / name).stat().st_size > 1000, name
