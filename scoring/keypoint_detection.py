"""Hands from heat-map peaks: which peaks belong to which hand, which hand is which side, and
which of its joints the image does not show.

The heat maps already name each joint, so all that is left is grouping (one or two hands side
by side), a check of each hand's shape against the mean hand, and the patient's side:

- the file's laterality, when it says L or R and one hand is seen;
- two hands: the one on the image's left is the patient's right (DICOM's default orientation,
  Patient Orientation ``L\\H``, as in the phantom);
- one hand and no laterality: the usual display of a PA hand (as the tube sees it, like the
  Digital Hand Atlas): fingers up and thumb on the image's right is a left hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .hand_geometry import PlacedHand, place_template
from .identify import HandTemplate
from .keypoints import STRIDE, KeypointNet, Peak, find_peaks, predict_heatmaps

#: an upright search that finds this many joints is not retried turned
ACCEPT_UPRIGHT = 6
#: peaks closer than this (heat-map pixels) are one place
SAME_PLACE = 2.5
#: peaks at least this high decide whether an image shows two hands
STRONG_PEAK = 0.5
#: a hand is believed when at least this many of its ten joints are found in a plausible shape
MIN_JOINTS_PER_HAND = 4
#: a found joint further than this (× the hand's MCP–PIP length) from where the mean hand
#: puts it is dropped as a confusion (a DIP joint, a sesamoid); real fingers spread, so loose
OUTLIER_RAYS = 0.6
#: a joint whose expected place lies more than this (× its box side) outside the image is
#: "not imaged"
_OUTSIDE = 0.25


@dataclass
class FoundHand:
    side: str
    joints: dict[str, Peak]
    placed: PlacedHand
    #: expected joints without a peak → "not imaged" or "not found"
    missing: dict[str, str] = field(default_factory=dict)
    #: expected places of the missing joints, pixels
    missing_at: dict[str, tuple[float, float]] = field(default_factory=dict)


def load_keypoint_net(path: Path) -> KeypointNet:
    net = KeypointNet()
    state = torch.load(path, map_location="cpu", weights_only=True)
    net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    net.eval()
    return net


def _split_hands(peaks: Sequence[Peak], laterality: str) -> list[list[Peak]]:
    """One group of peaks per hand: two when the confident peaks fall into two side-by-side
    groups that name mostly the same joints (two hands each have a PIP3; the two halves of
    one hand, its thumb side and its little-finger side, do not), else one."""
    if laterality in ("L", "R"):
        return [list(peaks)]
    strong = sorted((p for p in peaks if p.score >= STRONG_PEAK), key=lambda p: p.x)
    if len(strong) < 2 * MIN_JOINTS_PER_HAND:
        return [list(peaks)]
    xs = np.array([p.x for p in strong])
    gaps = np.diff(xs)
    need = 3 if laterality == "B" else MIN_JOINTS_PER_HAND
    for cut in np.argsort(gaps)[::-1][:3]:
        left = {p.name for p in strong[: cut + 1]}
        right = {p.name for p in strong[cut + 1 :]}
        if len(left & right) >= need:
            middle = float(xs[cut] + xs[cut + 1]) / 2.0
            return [[p for p in peaks if p.x < middle], [p for p in peaks if p.x >= middle]]
    return [list(peaks)]


def _one_name_per_place(peaks: Sequence[Peak], radius: float) -> list[Peak]:
    """Where peaks of different channels coincide (a finger's joint echoed in its
    neighbour's channel), keep only the highest."""
    kept: list[Peak] = []
    for peak in sorted(peaks, key=lambda p: -p.score):
        if all(np.hypot(peak.x - k.x, peak.y - k.y) > radius for k in kept):
            kept.append(peak)
    return kept


def _best_per_name(peaks: Sequence[Peak]) -> dict[str, Peak]:
    best: dict[str, Peak] = {}
    for peak in peaks:
        if peak.name not in best or peak.score > best[peak.name].score:
            best[peak.name] = peak
    return best


def _fit(
    joints: dict[str, Peak], template: HandTemplate
) -> tuple[dict[str, Peak], PlacedHand | None]:
    """Fit the mean hand; drop the worst outlier and refit while one is too far off."""
    while len(joints) >= MIN_JOINTS_PER_HAND:
        placed = place_template(template, {n: (p.x, p.y) for n, p in joints.items()})
        if placed is None:
            return joints, None
        worst = max(placed.residual, key=lambda n: placed.residual[n])
        if placed.residual[worst] <= OUTLIER_RAYS * placed.ray_length():
            return joints, placed
        joints = {n: p for n, p in joints.items() if n != worst}
    return joints, None


def _side(placed: PlacedHand, laterality: str, hands: int, index: int) -> str:
    if hands == 1 and laterality in ("L", "R"):
        return laterality
    if hands == 2:
        return "R" if index == 0 else "L"
    # the template is a hand with its thumb on the image's right (fingers up): as the tube
    # sees a left hand
    return "R" if placed.mirrored else "L"


def find_hands(
    net: KeypointNet, grey: np.ndarray, laterality: str, template: HandTemplate
) -> list[FoundHand]:
    """The hands of a display grey-scale image, left to right. An image that shows no hand
    the right way up (fingers up) is tried turned by 180°, 90° and 270°: films are scanned
    and exports written every way round."""
    hands = _find_upright(net, grey, laterality, template)
    if sum(len(h.joints) for h in hands) >= ACCEPT_UPRIGHT:
        return hands
    for turns in (2, 1, 3):
        turned = _find_upright(net, np.rot90(grey, turns), laterality, template)
        if sum(len(h.joints) for h in turned) > sum(len(h.joints) for h in hands):
            hands = [_turn_back(h, turns, grey.shape) for h in turned]
    return hands


def _turn_back(hand: FoundHand, turns: int, shape: tuple[int, ...]) -> FoundHand:
    """A hand found in ``np.rot90(grey, turns)``, in the coordinates of ``grey``."""
    rows, cols = shape[:2]

    def back(x: float, y: float) -> tuple[float, float]:
        if turns == 1:
            return cols - 1 - y, x
        if turns == 2:
            return cols - 1 - x, rows - 1 - y
        return y, rows - 1 - x

    joints = {n: Peak(p.name, *back(p.x, p.y), p.score) for n, p in hand.joints.items()}
    placed = PlacedHand(
        hand.placed.scale,
        hand.placed.mirrored,
        {n: back(*xy) for n, xy in hand.placed.placed.items()},
        dict(hand.placed.residual),
    )
    return FoundHand(
        hand.side,
        joints,
        placed,
        dict(hand.missing),
        {n: back(*xy) for n, xy in hand.missing_at.items()},
    )


def _find_upright(
    net: KeypointNet, grey: np.ndarray, laterality: str, template: HandTemplate
) -> list[FoundHand]:
    heat, box = predict_heatmaps(net, grey)
    peaks = _one_name_per_place(find_peaks(heat, box), SAME_PLACE * STRIDE / box.scale)
    groups = _split_hands(peaks, laterality)
    fitted = []
    for group in groups:
        joints, placed = _fit(_best_per_name(group), template)
        if placed is not None and len(joints) >= MIN_JOINTS_PER_HAND:
            fitted.append((joints, placed))
    fitted.sort(key=lambda item: float(np.mean([p.x for p in item[0].values()])))
    rows, cols = grey.shape
    hands = []
    for index, (joints, placed) in enumerate(fitted):
        hand = FoundHand(_side(placed, laterality, len(fitted), index), joints, placed)
        for name in template.names:
            if name in joints:
                continue
            x, y = placed.placed[name]
            margin = _OUTSIDE * placed.box_side(template, name)
            inside = -margin <= x < cols + margin and -margin <= y < rows + margin
            hand.missing[name] = "not found" if inside else "not imaged"
            hand.missing_at[name] = (x, y)
        hands.append(hand)
    if len({h.side for h in hands}) < len(hands):  # never two hands of one side
        return hands[:1]
    return hands
