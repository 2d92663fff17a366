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

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from .geometry import PlacedHand, place_template
from .identify import HandTemplate
from .keypoints import STRIDE, KeypointNet, Peak, find_peaks, predict_heatmaps

#: a proximal phalanx this much longer than its hand's others suggest ends at a DIP joint (a
#: middle phalanx is over half a proximal one)
LONG_PHALANX = 1.35
#: a box whose grey levels spread less than this (of the 0–1 display range) shows nothing
BLANK_STD = 0.01
#: the part of a joint's box around its centre that must show something for it to be imaged
CENTRE_PATCH = 0.4
#: an upright search that finds this many joints is not retried turned
ACCEPT_UPRIGHT = 6
#: peaks closer than this (heat-map pixels) are one place
SAME_PLACE = 1.5
#: candidate peaks per joint name: two hands, and echoes of neighbouring fingers
PEAKS_PER_NAME = 4
#: peaks at least this high decide whether an image shows two hands
STRONG_PEAK = 0.5
#: a hand's peaks are this high on average, at least
MIN_HAND_HEIGHT = 0.6
#: and its joints this close (RMS, × its MCP–PIP length) to where the mean hand puts them
MAX_SHAPE_ERROR = 0.3
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


def _places(peaks: Sequence[Peak], radius: float) -> list[list[Peak]]:
    """Peaks grouped by place: a joint shows in its own channel and, weaker, echoed in its
    neighbours' (PIP3's in PIP4's); peaks closer than ``radius`` are one place."""
    places: list[list[Peak]] = []
    for peak in sorted(peaks, key=lambda p: -p.score):
        for place in places:
            if np.hypot(peak.x - place[0].x, peak.y - place[0].y) <= radius:
                place.append(peak)
                break
        else:
            places.append([peak])
    return places


def _finger_centre(group: Sequence[Peak]) -> tuple[float, float]:
    fingers = [p for p in group if p.name not in ("IP", "MCP1")] or list(group)
    return float(np.mean([p.x for p in fingers])), float(np.mean([p.y for p in fingers]))


def _nearest(peak: Peak, centres: Sequence[tuple[float, float]]) -> int:
    return int(np.argmin([np.hypot(peak.x - cx, peak.y - cy) for cx, cy in centres]))


def _name_places(places: Sequence[Sequence[Peak]]) -> dict[str, Peak]:
    """One name per place and one place per name, with the highest total score (Hungarian
    assignment): where PIP3 echoes at PIP4's place higher than PIP4 itself, PIP4 still gets
    its place if PIP3 has a better one of its own."""
    if not places:
        return {}
    names = sorted({p.name for place in places for p in place})
    gain = np.zeros((len(names), len(places)))
    for j, place in enumerate(places):
        for peak in place:
            i = names.index(peak.name)
            gain[i, j] = max(gain[i, j], peak.score)
    rows, cols = linear_sum_assignment(-gain)
    out = {}
    for i, j in zip(rows, cols, strict=True):
        if gain[i, j] > 0.0:
            best = max((p for p in places[j] if p.name == names[i]), key=lambda p: p.score)
            out[names[i]] = best
    return out


def _fit(
    joints: dict[str, Peak], template: HandTemplate
) -> tuple[dict[str, Peak], PlacedHand | None]:
    """Fit the mean hand; drop the worst outlier and refit while one is too far off, then
    drop a distal joint whose bone is far too long for its hand (a DIP taken for a PIP)."""
    while len(joints) >= MIN_JOINTS_PER_HAND:
        placed = place_template(template, {n: (p.x, p.y) for n, p in joints.items()})
        if placed is None:
            return joints, None
        worst = max(placed.residual, key=lambda n: placed.residual[n])
        if placed.residual[worst] <= OUTLIER_RAYS * placed.ray_length():
            too_long = _too_long(joints, placed)
            if not too_long:
                return joints, placed
            joints = {n: p for n, p in joints.items() if n not in too_long}
            continue
        joints = {n: p for n, p in joints.items() if n != worst}
    return joints, None


#: the proximal phalanx of each ray: (distal joint, proximal joint)
_PHALANGES = (("IP", "MCP1"), *((f"PIP{k}", f"MCP{k}") for k in range(2, 6)))


def _too_long(joints: dict[str, Peak], placed: PlacedHand) -> list[str]:
    """Distal joints whose phalanx is over LONG_PHALANX × the length the hand's other rays
    lead one to expect: fingers spread, but their bones keep their proportions."""
    ratios = {}
    for distal, proximal in _PHALANGES:
        if distal in joints and proximal in joints:
            found = np.hypot(
                joints[distal].x - joints[proximal].x, joints[distal].y - joints[proximal].y
            )
            expected = np.hypot(*np.subtract(placed.placed[distal], placed.placed[proximal]))
            ratios[distal] = float(found / max(expected, 1e-6))
    if len(ratios) < 3:
        return []
    typical = float(np.median(list(ratios.values())))
    return [n for n, r in ratios.items() if r > LONG_PHALANX * typical]


def _is_a_hand(joints: dict[str, Peak], placed: PlacedHand) -> bool:
    """Confident peaks in the shape of a hand. Measured on real and phantom hands: mean peak
    height 0.85 or more and shape error (RMS, × MCP–PIP length) 0.22 or less; a chest or a
    leg radiograph gives faint peaks (mean 0.37–0.46) in no hand's shape."""
    height = float(np.mean([p.score for p in joints.values()]))
    residual = np.asarray(list(placed.residual.values())) / max(placed.ray_length(), 1e-6)
    return height >= MIN_HAND_HEIGHT and float(np.sqrt(np.mean(residual**2))) <= MAX_SHAPE_ERROR


def _side(placed: PlacedHand, laterality: str, hands: int, index: int) -> str:
    if hands == 1 and laterality in ("L", "R"):
        return laterality
    if hands == 2:
        return "R" if index == 0 else "L"
    # the template is a hand with its thumb on the image's right (fingers up): as the tube
    # sees a left hand
    return "R" if placed.mirrored else "L"


def find_hands(
    net: KeypointNet,
    grey: np.ndarray,
    laterality: str,
    template: HandTemplate,
    timings: dict[str, float] | None = None,
) -> list[FoundHand]:
    """The hands of a display grey-scale image, left to right. An image that shows no hand
    the right way up (fingers up) is tried turned by 180°, 90° and 270°: films are scanned
    and exports written every way round. ``timings`` gets the milliseconds spent in the
    network ("network"); the rest is grouping."""
    clock = timings if timings is not None else {}
    clock["network"] = 0.0
    hands = _find_upright(net, grey, laterality, template, clock)
    if sum(len(h.joints) for h in hands) >= ACCEPT_UPRIGHT:
        return hands
    for turns in (2, 1, 3):
        turned = _find_upright(net, np.rot90(grey, turns), laterality, template, clock)
        if sum(len(h.joints) for h in turned) > sum(len(h.joints) for h in hands):
            hands = [_turn_back(h, turns, grey.shape) for h in turned]
    return hands


def _blank(grey: np.ndarray, x: float, y: float, side: float) -> bool:
    """Whether the joint's box holds no image: flat, as behind a collimator's shutter."""
    rows, cols = grey.shape
    x0, x1 = max(int(x - side / 2), 0), min(int(x + side / 2) + 1, cols)
    y0, y1 = max(int(y - side / 2), 0), min(int(y + side / 2) + 1, rows)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return True
    return float(np.std(grey[y0:y1, x0:x1])) < BLANK_STD


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
    net: KeypointNet,
    grey: np.ndarray,
    laterality: str,
    template: HandTemplate,
    clock: dict[str, float],
) -> list[FoundHand]:
    started = time.perf_counter()
    heat, box = predict_heatmaps(net, grey)
    clock["network"] += (time.perf_counter() - started) * 1e3
    radius = SAME_PLACE * STRIDE / box.scale
    peaks = find_peaks(heat, box, per_channel=PEAKS_PER_NAME)
    # whether there are two hands is judged on the best name of each place
    groups = _split_hands([place[0] for place in _places(peaks, radius)], laterality)
    # every candidate goes to the hand whose fingers it is nearest: the thumbs point inwards,
    # so a cut in x alone may give one hand's thumb to the other
    groups = [group for group in groups if group]
    centres = [_finger_centre(group) for group in groups]
    fitted = []
    for k in range(len(groups)):
        mine = [p for p in peaks if _nearest(p, centres) == k]
        joints, placed = _fit(_name_places(_places(mine, radius)), template)
        if placed is not None and len(joints) >= MIN_JOINTS_PER_HAND and _is_a_hand(joints, placed):
            fitted.append((joints, placed))
    fitted.sort(key=lambda item: float(np.mean([p.x for p in item[0].values()])))
    rows, cols = grey.shape
    hands = []
    for index, (joints, placed) in enumerate(fitted):
        # a peak on a blank (collimated) patch is the network's guess from the rest of the hand
        shown = {
            n: p
            for n, p in joints.items()
            if not _blank(grey, p.x, p.y, CENTRE_PATCH * placed.box_side(template, n))
        }
        hand = FoundHand(_side(placed, laterality, len(fitted), index), shown, placed)
        for name in template.names:
            if name in shown:
                continue
            x, y = placed.placed[name]
            side = placed.box_side(template, name)
            margin = _OUTSIDE * side
            inside = -margin <= x < cols + margin and -margin <= y < rows + margin
            imaged = inside and not _blank(grey, x, y, CENTRE_PATCH * side)
            hand.missing[name] = "not found" if imaged else "not imaged"
            hand.missing_at[name] = (x, y)
        hands.append(hand)
    if len({h.side for h in hands}) < len(hands):  # never two hands of one side
        return hands[:1]
    return hands
