"""`rascore train --site`: a site fine-tunes the grading networks on its own labelled images.

One tiny fine-tune on a phantom site (3 patients, 2 epochs) is shared by the end-to-end tests;
the split, the sample builder and the joint locator are tested on their own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from site_fixture import make_site
from typer.testing import CliRunner

from dicom_io.reading import read_radiograph
from scoring.model import identify
from scoring.pipeline import Scorer
from scoring.training.cnn import CLIP_SIZE
from worker.cli import app
from worker.lab.site.folder import JointLabel, open_site
from worker.lab.site.samples import (
    NOT_LABELLED,
    build_samples,
    consensus,
    joint_targets,
    label_positions,
)
from worker.lab.site.site_crops import locate_joints
from worker.lab.site.split import split_patients


def run(*args: str) -> tuple[int, str, str]:
    """``rascore ARGS`` in this process (exit code, stdout, stderr): a second Python with torch
    would cost more than the tiny training itself."""
    done = CliRunner().invoke(app, list(args))
    return done.exit_code, done.stdout, done.stderr


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_site(tmp_path_factory.mktemp("site") / "site", patients=3, second_reader=True)


@pytest.fixture(scope="module")
def trained(site: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("model") / "site-model"
    code, stdout, stderr = run("train", "--site", str(site), "--out", str(out), "--small", "--json")
    assert code == 0, stderr
    return json.loads(stdout), out


def test_fine_tune_writes_a_bundle_the_scorer_loads(
    trained: tuple[dict[str, Any], Path], phantom_file: Path
) -> None:
    summary, out = trained
    assert summary["out"] == str(out)
    identity = identify(out)
    assert identity.version == summary["version"] and "-site+" in identity.version
    scorer = Scorer.load(out)
    image = read_radiograph(phantom_file)
    spacing = image.pixel_spacing_mm[1] if image.pixel_spacing_mm else None
    result = scorer.score(image.pixels, spacing, image.laterality)
    assert result.joints and result.status != "no hand found"
    assert (out / "card.md").is_file()
    for kind in ("jsn", "erosion"):
        figures = summary["figures"][kind]
        assert figures["n"] > 0 and figures["images"] >= 1
        assert {"pea", "pca", "kappa", "pea_ci95", "kappa_ci95"} <= set(figures)


def test_card_has_the_digest_split_recipe_and_use(
    trained: tuple[dict[str, Any], Path], site: Path
) -> None:
    _, out = trained
    card = json.loads((out / "card.json").read_text())
    assert card["site_data"]["digest"] == open_site(site).digest
    split = card["split"]
    parts = [set(split[p]) for p in ("train", "validation", "test")]
    assert all(parts), split
    assert sum(len(p) for p in parts) == len(set().union(*parts)) == 3  # nobody twice
    assert set().union(*parts) == set(open_site(site).patients())
    recipe = card["recipe"]
    assert recipe["start"] == "fine-tune" and recipe["readers"] == "mean"
    assert recipe["from_model"]["version"] == identify().version
    assert recipe["cnn"]["max_epochs"] == 2 and recipe["cnn"]["learning_rate"] > 0
    assert all(card["training"][k]["best_epoch"] in (0, 1, 2) for k in ("jsn", "erosion"))
    assert "NOT FOR DIAGNOSTIC USE" in card["intended_use"]
    assert "rascore validate" in card["intended_use"]
    evaluation = card["evaluation"]
    assert evaluation["images"] == card["site_data"]["images_per_part"]["test"]
    assert card["evaluation_from_model"]["model"]["version"] == identify().version


def test_split_is_by_patient_deterministic_and_stable() -> None:
    patients = [f"P{i:03d}" for i in range(40)]
    split = split_patients(patients, seed=3)
    assert split.method == "hash"
    parts = [set(split.train), set(split.validation), set(split.test)]
    assert sum(map(len, parts)) == len(set().union(*parts)) == 40
    assert split == split_patients(list(reversed(patients)), seed=3)
    grown = split_patients([*patients, "P900", "P901"], seed=3)
    assert all(grown.part(p) == split.part(p) for p in patients)
    small = split_patients(["A", "B", "C"], seed=0)
    assert all((small.train, small.validation, small.test))
    with pytest.raises(ValueError, match="at least 3"):
        split_patients(["A", "B"])


def _label(joint: str, reader: str, jsn: int | None, erosion: int | None) -> JointLabel:
    return JointLabel("P1-LH", "P1", "L", joint, reader, jsn, erosion)


def test_a_joint_not_labelled_for_jsn_is_not_a_jsn_target() -> None:
    labels = [
        _label("IP", "a", None, 2),
        _label("IP", "b", None, 3),
        _label("MCP2", "a", 2, 0),
        _label("MCP2", "b", 3, None),
        _label("PIP3", "a", None, None),
    ]
    blank = np.zeros((CLIP_SIZE, CLIP_SIZE), np.uint8)
    clips = {target.key: blank for target in joint_targets(labels)}
    samples = build_samples(joint_targets(labels, "mean"), clips)
    _, jsn, keys = samples.task("jsn")
    assert keys == [("P1-LH", "L_MCP2")] and jsn.tolist() == [3]  # 2.5 rounds half up
    _, erosion, keys = samples.task("erosion")
    assert keys == [("P1-LH", "L_IP"), ("P1-LH", "L_MCP2")] and erosion.tolist() == [3, 0]
    assert NOT_LABELLED in samples.jsn.tolist() and 0 not in samples.jsn.tolist()
    each = build_samples(joint_targets(labels, "each"), clips)
    assert each.task("jsn")[1].tolist() == [2, 3]
    assert each.task("erosion")[1].tolist() == [2, 3, 0]
    assert len(each.unique_clips()) == 2
    assert consensus(labels)[("P1-LH", "L_PIP3")] == (None, None)
    with pytest.raises(ValueError, match="readers"):
        joint_targets(labels, "median")


def test_joints_at_the_sites_xy_and_those_the_detector_misses() -> None:
    scorer = Scorer.load()
    grey = np.full((400, 300), 0.5, np.float32)
    wanted: dict[str, tuple[float, float] | None] = {
        "L_MCP2": (120.0, 250.0),
        "L_MCP3": (150.0, 245.0),
        "L_MCP4": (180.0, 250.0),
        "L_PIP2": None,  # the detector finds nothing on a blank picture
    }
    located = locate_joints(scorer, grey, 0.5, "L", wanted)
    assert set(located.boxes) == {"L_MCP2", "L_MCP3", "L_MCP4"}
    assert located.not_found == ["L_PIP2"] and located.from_labels == 3
    x, y, w, h = located.boxes["L_MCP2"]
    assert w == h > 0 and abs(x + w / 2 - 120.0) < 1e-6 and abs(y + h / 2 - 250.0) < 1e-6
    positions = label_positions([JointLabel("I", "P", "L", "MCP2", "a", 1, 1, 10.0, 20.0)])
    assert positions == {("I", "L_MCP2"): (10.0, 20.0)}


def test_from_a_folder_that_is_no_model_fails_in_one_line(site: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "readme.txt").write_text("not a model")
    code, _, stderr = run(
        "train", "--site", str(site), "--from", str(junk), "--out", str(tmp_path / "m")
    )
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rascore: error:") and "lacks" in lines[0]
    assert not (tmp_path / "m").exists()
    code, _, stderr = run("train", "--from", str(junk), "--out", str(tmp_path / "m"))
    assert code == 2 and "--site" in stderr


def test_activated_site_model_is_validated_on_patients_it_did_not_learn_from(
    site: Path,
    trained: tuple[dict[str, Any], Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The README's last two steps: ``model activate`` takes the bundle folder (installing
    it), and ``validate`` then scores with the active model and leaves out the patients its
    card says it was trained or tuned on."""
    summary, out = trained
    monkeypatch.setenv("RASCORE_HOME", str(tmp_path / "home"))
    code, stdout, stderr = run("model", "activate", str(out), "--json")
    assert code == 0, stderr
    assert json.loads(stdout)["version"] == summary["version"]
    card = json.loads((out / "card.json").read_text())
    learnt = set(card["split"]["train"]) | set(card["split"]["validation"])
    tested = [i for i in open_site(site).images if i.patient not in learnt]
    for model in ([], ["--model", summary["version"]]):
        args = ("validate", "--site", str(site), "--draws", "0", "--json", *model)
        code, stdout, stderr = run(*args)
        assert code == 0, stderr
        figures = json.loads(stdout)
        assert figures["model"]["version"] == summary["version"]
        assert figures["site"]["left_out_patients"] == len(learnt)
        assert figures["site"]["images"] == len(tested)
    code, _, stderr = run("validate", "--site", str(site), "--model", "9.9.9+000000000000")
    assert code == 2 and "9.9.9" in stderr
