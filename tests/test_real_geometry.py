"""Real-world geometry with the default model: no pixel spacing, mirrored and turned images,
hands cut off by the collimation, and images without a hand."""

from __future__ import annotations

import numpy as np
import pytest

from scoring.phantom import PhantomConfig, PhantomImage, generate_image
from scoring.phantom.gallery import display_grey
from scoring.pipeline import ImageScore, Scorer

SEED = 4242  # a seed no model was trained, tuned or tested on


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    return Scorer.load()


@pytest.fixture(scope="module")
def left_hand() -> tuple[PhantomImage, np.ndarray]:
    image = generate_image(SEED, 1, PhantomConfig(hands=1))
    assert image.hands == ("L",)
    return image, display_grey(image).astype(np.float32) / 255.0


def _names(score: ImageScore) -> set[str]:
    return {j.label.split("_", 1)[1] for j in score.joints}


def _centres(score: ImageScore) -> dict[str, tuple[float, float]]:
    return {j.label: (j.box[0] + j.box[2] / 2, j.box[1] + j.box[3] / 2) for j in score.joints}


def _right_places(image: PhantomImage, score: ImageScore, transform=lambda x, y: (x, y)) -> int:
    """Joints of the phantom found under their own label, within their own box."""
    found = _centres(score)
    hits = 0
    for joint in image.joints:
        if joint.label not in found:
            continue
        tx, ty = transform(*joint.center)
        px, py = found[joint.label]
        hits += abs(px - tx) <= joint.box[2] / 2 and abs(py - ty) <= joint.box[3] / 2
    return hits


def test_no_pixel_spacing_scale_from_the_hand(scorer: Scorer, left_hand) -> None:
    image, grey = left_hand
    score = scorer.score(grey, None, "L")
    assert _right_places(image, score) >= 9
    assert score.spacing_assumed
    # the spacing estimated from the hand is within a third of the truth (hands vary in size)
    truth = image.acquisition.pixel_spacing_mm
    assert 0.67 * truth < score.spacing_mm < 1.5 * truth


def test_mirrored_image_keeps_the_joint_names(scorer: Scorer, left_hand) -> None:
    image, grey = left_hand
    columns = grey.shape[1]
    score = scorer.score(np.ascontiguousarray(grey[:, ::-1]), None, "L")
    assert _right_places(image, score, lambda x, y: (columns - 1 - x, y)) >= 9
    assert {j.label[0] for j in score.joints} == {"L"}  # the file's laterality wins


def test_turned_image_is_found(scorer: Scorer, left_hand) -> None:
    image, grey = left_hand
    rows = grey.shape[0]
    turned = np.ascontiguousarray(np.rot90(grey, 1))  # fingers to the left
    score = scorer.score(turned, None, "L")
    # np.rot90: original (x, y) lands at (y, columns-1-x)... map the truth into the turned image
    columns = grey.shape[1]
    assert _right_places(image, score, lambda x, y: (y, columns - 1 - x)) >= 8
    assert rows == turned.shape[1]


def test_a_hand_cut_off_by_the_collimation(scorer: Scorer, left_hand) -> None:
    image, grey = left_hand
    pips = [j for j in image.joints if j.label[2:].startswith("PIP")]
    cut = int(max(j.center[1] for j in pips) + max(j.box[3] for j in pips))
    shuttered = grey.copy()
    shuttered[:cut] = 0.0  # the collimator's shadow hides the fingers down to below the PIPs
    score = scorer.score(shuttered, None, "L")
    names = _names(score)
    assert {"MCP2", "MCP3", "MCP4", "MCP5"} <= names
    assert not names & {"PIP2", "PIP3", "PIP4", "PIP5"}
    for k in range(2, 6):
        assert score.missing_reasons.get(f"L_PIP{k}") == "not imaged"
    assert score.status in ("partial", "too few assessable joints")


@pytest.mark.parametrize(
    "picture",
    [
        np.zeros((1500, 1200), np.float32),
        np.random.default_rng(0).random((1500, 1200)).astype(np.float32),
        np.tile(np.linspace(0, 1, 1200, dtype=np.float32), (1500, 1)),
    ],
    ids=["blank", "noise", "gradient"],
)
def test_no_hand_no_joints(scorer: Scorer, picture: np.ndarray) -> None:
    score = scorer.score(picture, None, "U")
    assert score.joints == ()
    assert score.status == "no hand found"
