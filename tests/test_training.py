"""`rascore train` really trains: a tiny recipe end to end, and the model it writes loads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from landmark_fixture import write_dha_fixture

from scoring.model import REQUIRED, ModelBundle
from scoring.pipeline import Scorer

RASCORE = str(Path(sys.executable).with_name("rascore"))


@pytest.fixture(scope="module")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny recipe trained on phantoms and on phantoms written in the DHA format as the
    'real' folder (the real images are not part of the project)."""
    out = tmp_path_factory.mktemp("model")
    real = tmp_path_factory.mktemp("real")
    _, images = write_dha_fixture(real)
    for picture in images.iterdir():
        picture.rename(real / picture.name)
    done = subprocess.run(
        [RASCORE, "train", "--out", str(out), "--small", "--real", str(real)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_small_recipe_writes_a_complete_model(small_model: Path) -> None:
    for name in (*REQUIRED, "keypoints.pt", "typicality.npz", "card.json", "card.md"):
        assert (small_model / name).is_file(), name
    assert not (small_model / "cascade.xml").exists()  # the model holds the detector it names
    card = json.loads((small_model / "card.json").read_text())
    assert card["detector"]["kind"] == "keypoints"
    assert card["training"]["keypoints"]["epochs"]
    real = card["training_data"]["real"]
    assert real["train"] + real["tuning"] == 1 and real["validation"] == 2
    assert card["evaluation_real"]["images"] == 2
    assert "real images" in (small_model / "card.md").read_text()
    assert card["device_uid"].startswith("2.25.")
    assert "NOT FOR DIAGNOSTIC USE" in card["intended_use"]
    assert card["training"]["jsn"]["epochs"] and card["training"]["erosion"]["epochs"]
    assert card["evaluation"]["images"] == 2
    assert "NOT FOR DIAGNOSTIC USE" in (small_model / "card.md").read_text()


def test_trained_model_loads_and_scores(small_model: Path) -> None:
    import numpy as np

    from scoring.phantom import generate_image

    scorer = Scorer.load(small_model)
    image = generate_image(13, 0)
    grey = image.pixels.astype(np.float32)
    grey = (grey - grey.min()) / (grey.max() - grey.min())
    if image.acquisition.photometric == "MONOCHROME1":
        grey = 1.0 - grey
    result = scorer.score(grey, image.acquisition.pixel_spacing_mm, "B")
    assert result.status in ("scored", "partial", "too few assessable joints", "no hand found")
    for joint in result.joints:
        assert abs(sum(joint.jsn_probs) - 1) < 1e-3 and abs(sum(joint.erosion_probs) - 1) < 1e-3


def test_a_changed_artefact_is_refused(small_model: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(small_model, copy)
    with open(copy / "jsn.pt", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ValueError, match="content hash"):
        ModelBundle.load(copy)


def test_the_papers_cascade_can_still_be_trained_and_selected(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """`--detector cascade`: OpenCV 3.4's opencv_traincascade, the paper's detector."""
    out = tmp_path_factory.mktemp("cascade-model")
    done = subprocess.run(
        [RASCORE, "train", "--out", str(out), "--small", "--detector", "cascade"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "cascade.xml").is_file() and not (out / "keypoints.pt").exists()
    card = json.loads((out / "card.json").read_text())
    assert card["detector"]["kind"] == "cascade"
    scorer = Scorer.load(out)
    assert scorer.detector is not None and scorer.keypoints is None


def test_an_unknown_detector_is_refused(tmp_path: Path) -> None:
    done = subprocess.run(
        [RASCORE, "train", "--out", str(tmp_path / "m"), "--small", "--detector", "sift"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "unknown detector" in done.stderr
