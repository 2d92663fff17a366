"""The keypoint detector's geometry: letter-box, heat-map targets and peaks, hands and sides."""

from __future__ import annotations

import numpy as np
import pytest

from scoring.detection.geometry import place_template
from scoring.detection.hands import MIN_JOINTS_PER_HAND, _fit, _side, _split_hands
from scoring.detection.identify import HandTemplate
from scoring.detection.keypoints import HEATMAP, INPUT, Peak, find_peaks, heatmap_targets, letterbox
from scoring.joints import JOINT_NAMES
from scoring.model import DEFAULT_MODEL_DIR


@pytest.fixture(scope="module")
def template() -> HandTemplate:
    return HandTemplate.load(str(DEFAULT_MODEL_DIR / "layout.json"))


def _hand(
    template: HandTemplate, at: tuple[float, float], scale: float, mirrored: bool
) -> dict[str, tuple[float, float]]:
    points = template.points_mm.copy()
    if mirrored:
        points[:, 0] *= -1
    return {
        n: (at[0] + scale * p[0], at[1] + scale * p[1])
        for n, p in zip(template.names, points, strict=True)
    }


def test_letterbox_keeps_the_aspect_and_maps_back() -> None:
    grey = np.zeros((1000, 500), np.float32)
    grey[400:410, 200:210] = 1.0
    square, box = letterbox(grey)
    assert square.shape == (INPUT, INPUT)
    assert box.scale == pytest.approx(INPUT / 1000)
    x, y = box.to_original(box.offset[0] + 205 * box.scale, 405 * box.scale + box.offset[1])
    assert (x, y) == pytest.approx((205, 405))
    ys, xs = np.nonzero(square > 100)
    assert box.to_original(xs.mean(), ys.mean()) == pytest.approx((205, 405), abs=3)


def test_peaks_of_gaussian_targets_are_the_points() -> None:
    grey = np.zeros((1200, 900), np.float32)
    _, box = letterbox(grey)
    truth = {"PIP3": (300.0, 400.0), "MCP3": (320.0, 800.0), "IP": (700.0, 650.0)}
    points = []
    for name, (x, y) in truth.items():
        ix = x * box.scale + box.offset[0]
        iy = y * box.scale + box.offset[1]
        points.append((JOINT_NAMES.index(name), ix, iy))
    heat = heatmap_targets([points])[0]
    assert heat.shape == (len(JOINT_NAMES), HEATMAP, HEATMAP)
    peaks = {p.name: p for p in find_peaks(heat, box)}
    assert set(peaks) == set(truth)
    for name, (x, y) in truth.items():
        # sub-pixel refinement: far below one heat-map pixel (4 input pixels, ~15 here)
        assert np.hypot(peaks[name].x - x, peaks[name].y - y) < 4.0
        assert peaks[name].score > 0.9


def test_two_hands_side_by_side_are_split_and_named(template: HandTemplate) -> None:
    right = _hand(template, (400, 500), 5.0, mirrored=False)  # thumb towards the middle
    left = _hand(template, (1400, 500), 5.0, mirrored=True)
    peaks = [Peak(n, x, y, 0.9) for n, (x, y) in (*right.items(), *left.items())]
    groups = _split_hands(peaks, "")
    assert [len(g) for g in groups] == [10, 10]
    assert {p.x < 900 for p in groups[0]} == {True}
    # one hand and a laterality of L or R: never split
    assert len(_split_hands(peaks, "L")) == 1


def test_the_side_of_one_hand(template: HandTemplate) -> None:
    as_the_tube_sees_a_left_hand = _hand(template, (500, 500), 4.0, mirrored=False)
    placed = place_template(template, as_the_tube_sees_a_left_hand)
    assert placed is not None and not placed.mirrored
    assert placed.scale == pytest.approx(4.0, rel=1e-3)
    assert _side(placed, "", 1, 0) == "L"
    mirrored = place_template(template, _hand(template, (500, 500), 4.0, mirrored=True))
    assert mirrored is not None and mirrored.mirrored
    assert _side(mirrored, "", 1, 0) == "R"
    # the file's laterality wins for one hand; two hands: the image's left hand is the right
    assert _side(mirrored, "L", 1, 0) == "L"
    assert _side(placed, "", 2, 0) == "R" and _side(placed, "", 2, 1) == "L"


def test_a_far_outlier_is_dropped_and_the_rest_kept(template: HandTemplate) -> None:
    hand = _hand(template, (500, 500), 4.0, mirrored=False)
    joints = {n: Peak(n, x, y, 0.9) for n, (x, y) in hand.items()}
    x, y = hand["PIP3"]
    joints["PIP3"] = Peak("PIP3", x, y - 200.0, 0.9)  # a DIP joint taken for the PIP
    kept, placed = _fit(joints, template)
    assert placed is not None
    assert set(kept) == set(JOINT_NAMES) - {"PIP3"}
    assert len(kept) >= MIN_JOINTS_PER_HAND


def test_a_turned_hand_maps_back_to_the_image() -> None:
    from scoring.detection.geometry import PlacedHand
    from scoring.detection.hands import FoundHand, _turn_back

    grey = np.zeros((30, 50), np.float32)  # rows, columns
    grey[4, 7] = 1.0
    for turns in (1, 2, 3):
        turned = np.rot90(grey, turns)
        ty, tx = (int(v[0]) for v in np.nonzero(turned))
        hand = FoundHand(
            "L",
            {"IP": Peak("IP", float(tx), float(ty), 0.9)},
            PlacedHand(1.0, False, {"IP": (float(tx), float(ty))}, {"IP": 0.0}),
        )
        back = _turn_back(hand, turns, grey.shape)
        assert (back.joints["IP"].x, back.joints["IP"].y) == (7.0, 4.0), turns
        assert back.placed.placed["IP"] == (7.0, 4.0)
