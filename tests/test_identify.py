"""Joint identification: detections of phantom joints get their labels back."""

from __future__ import annotations

import numpy as np
import pytest

from scoring.detection.identify import Detection, HandTemplate, identify
from scoring.phantom import PhantomConfig, generate_image


def _hands(image):  # type: ignore[no-untyped-def]
    s = image.acquisition.pixel_spacing_mm
    for side in image.hands:
        joints = [j for j in image.joints if j.side == side]
        yield (
            side,
            {j.label[2:]: (j.center[0] * s, j.center[1] * s) for j in joints},
            {j.label[2:]: j.box[2] * s for j in joints},
        )


@pytest.fixture(scope="module")
def template() -> HandTemplate:
    images = [generate_image(500, i) for i in range(6)]
    return HandTemplate.learn([h for im in images for h in _hands(im)])


@pytest.fixture(scope="module")
def test_images():  # type: ignore[no-untyped-def]
    bilateral = [generate_image(600, i) for i in range(4)]
    single = [generate_image(601, i, PhantomConfig(hands=1)) for i in range(4)]
    return bilateral + single


def _detections(image, rng, drop=0.0, false_alarms=0):  # type: ignore[no-untyped-def]
    dets, truth = [], {}
    for joint in image.joints:
        if rng.random() < drop:
            continue
        x, y, w, h = joint.box
        d = Detection((x + rng.normal(0, 0.08 * w), y + rng.normal(0, 0.08 * h), w, h))
        dets.append(d)
        truth[id(d)] = joint.label
    rows, cols = image.pixels.shape
    for _ in range(false_alarms):
        dets.append(Detection((rng.uniform(0, cols - 200), rng.uniform(0, rows - 200), 150, 150)))
    return dets, truth


def test_template_has_the_hand_layout(template: HandTemplate) -> None:
    p = dict(zip(template.names, template.points_mm, strict=True))
    # fingers up (image y down): each PIP lies above its MCP; the thumb on the +x side
    for ray in (2, 3, 4, 5):
        assert p[f"PIP{ray}"][1] < p[f"MCP{ray}"][1] - 25
    assert p["MCP1"][0] > p["MCP2"][0] and p["IP"][0] > p["MCP2"][0]
    # MCP heads run from the index finger to the little finger across the hand
    assert p["MCP2"][0] > p["MCP3"][0] > p["MCP4"][0] > p["MCP5"][0]


@pytest.mark.parametrize("laterality_known", [True, False])
def test_labels_come_back_with_missing_joints_and_false_alarms(
    template: HandTemplate, test_images, laterality_known: bool
) -> None:
    rng = np.random.default_rng(0)
    right = total = 0
    for image in test_images:
        dets, truth = _detections(image, rng, drop=0.1, false_alarms=3)
        laterality = image.laterality if laterality_known else "U"
        found = identify(dets, image.acquisition.pixel_spacing_mm, laterality, template)
        assert sorted(found.hands) == sorted(image.hands)
        for label, det in found.joints.items():
            if id(det) in truth:
                total += 1
                right += truth[id(det)] == label
        # every expected joint is either found or reported missing, with a place near it
        # (within the local search's reach of one and a half boxes)
        expected = {j.label for j in image.joints}
        assert expected == set(found.joints) | set(found.missing)
        for label, (x, y) in found.missing.items():
            joint = next(j for j in image.joints if j.label == label)
            reach = 1.5 * joint.box[2]
            assert abs(x - joint.center[0]) < reach and abs(y - joint.center[1]) < reach
    assert right / total >= 0.98, (right, total)


def test_no_detections_no_joints(template: HandTemplate) -> None:
    found = identify([], 0.15, "U", template)
    assert found.joints == {} and found.hands == [] and found.missing == {}


def test_scattered_false_alarms_are_not_a_hand(template: HandTemplate) -> None:
    rng = np.random.default_rng(3)
    dets = [Detection((rng.uniform(0, 2000), rng.uniform(0, 2000), 120, 120)) for _ in range(3)]
    found = identify(dets, 0.15, "U", template)
    assert found.joints == {}
    assert len(found.unplaced) == 3
