"""What the result objects say and where they say it, shared by the SC and the GSPS.

The overlay Secondary Capture burns these texts in and the presentation state draws them over
the source, so both word the totals and the not-assessable joints alike, and both place a
joint's label beside its box by the same rule. Imports numpy and ``dicom_io.results`` only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dicom_io.results import JOINTS_PER_HAND, NOT_ASSESSABLE, JointResult, ScoringResult

Rect = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)

NO_JOINTS_TEXT = "No joints detected or scored on this image"
NOT_ASSESSABLE_TEXT = "n/a"


def joint_grades_text(joint: JointResult) -> str:
    """The second line of a joint's label: ``"J2 E1"``, or ``"n/a"`` when not assessable."""
    if not joint.assessable:
        return NOT_ASSESSABLE_TEXT
    return f"J{joint.jsn} E{joint.erosion}"


def covered(scored: int, expected: int) -> str:
    return f"{scored} of {expected} joints scored"


def hand_summaries(result: ScoringResult) -> list[str]:
    """One text per hand, ordered as the hands lie in the image from left to right.

    E.g. ``"Right hand (image left): JSN 14, erosion 9, 9 of 10 joints scored"``; the image side
    is named only when both hands are present.
    """
    names = {"R": "Right hand", "L": "Left hand"}
    totals = result.hand_totals()
    scored = result.hand_joints_scored()
    centres = {
        side: float(np.mean([j.box[0] + j.box[2] / 2 for j in result.joints if j.side == side]))
        for side in totals
    }
    ordered = sorted(totals, key=centres.__getitem__)
    out = []
    for i, side in enumerate(ordered):
        name = names.get(side, f"Side {side}")
        if len(ordered) == 2:
            name += " (image left)" if i == 0 else " (image right)"
        jsn, erosion = totals[side]
        out.append(
            f"{name}: JSN {jsn}, erosion {erosion}, {covered(scored[side], JOINTS_PER_HAND)}"
        )
    return out


def image_summary(result: ScoringResult) -> str:
    """The whole image's totals, e.g. ``"Total: JSN 27, erosion 10, 18 of 20 joints scored"``."""
    return (
        f"Total: JSN {result.total_jsn}, erosion {result.total_erosion}, "
        f"{covered(result.joints_scored, result.joints_expected)}"
    )


def not_assessable_summary(result: ScoringResult) -> str:
    """The joints left out of the totals, by reason, e.g. ``"n/a = not assessable: model
    unsure (R_PIP2, L_MCP5); unlike the training images (R_IP)"``; empty when none are."""
    by_reason: dict[str, list[str]] = {}
    for joint in result.not_assessable:
        by_reason.setdefault(joint.why_not, []).append(joint.label)
    if not by_reason:
        return ""
    parts = [f"{reason} ({', '.join(labels)})" for reason, labels in by_reason.items()]
    return f"{NOT_ASSESSABLE_TEXT} = {NOT_ASSESSABLE}: " + "; ".join(parts)


def _overlap_area(a: Rect, b: Rect) -> int:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0


# Where a label may go around its box, in order of preference: (horizontal, vertical) anchor,
# -1 = before the box (left / above), 0 = centred on it, +1 = after it (right / below).
_LABEL_SIDES = ((0, -1), (0, 1), (1, 0), (-1, 0), (1, -1), (-1, -1), (1, 1), (-1, 1))


def place_label(
    box: Rect,
    size: tuple[int, int],
    gap: int,
    boxes: Sequence[Rect],
    labels: Sequence[Rect],
    avoid: Sequence[Rect],
    rows: int,
    cols: int,
) -> Rect:
    """The free spot around ``box`` nearest to it, for a label of ``size`` (width, height).

    Candidates lie on eight sides of the box at growing distances; each costs its overlap
    with other labels, joint boxes and the banner (its own box may never be covered), then
    its distance and side. Crowded MCP rows push a label further out rather than over a
    neighbour's grades.
    """
    w, h = size
    x0, y0, x1, y1 = box
    step = max(gap, h // 2)
    best: tuple[float, Rect] | None = None
    for ring in range(6):
        off = gap + ring * step
        for rank, (sx, sy) in enumerate(_LABEL_SIDES):
            lx = {-1: x0 - off - w, 0: (x0 + x1 - w) // 2, 1: x1 + off}[sx]
            ly = {-1: y0 - off - h, 0: (y0 + y1 - h) // 2, 1: y1 + off}[sy]
            # Slide a label that falls off the image back inside it.
            lx = min(max(lx, 0), cols - w)
            ly = min(max(ly, 0), rows - h)
            rect = (lx, ly, lx + w, ly + h)
            if _overlap_area(rect, box) > 0:
                continue
            area = w * h
            cost = 0.0
            cost += 50.0 * sum(_overlap_area(rect, o) for o in labels) / area
            cost += 20.0 * sum(_overlap_area(rect, o) for o in boxes if o != box) / area
            cost += 50.0 * sum(_overlap_area(rect, o) for o in avoid) / area
            cost += 0.6 * ring + 0.05 * rank
            if best is None or cost < best[0]:
                best = (cost, rect)
        if best is not None and best[0] < 0.6 * (ring + 1):
            break  # nothing further out can be cheaper
    if best is None:  # the box covers the whole image: put the label in its corner
        return 0, 0, min(w, cols), min(h, rows)
    return best[1]


def place_labels(
    boxes: Sequence[Rect],
    sizes: Sequence[tuple[int, int]],
    *,
    rows: int,
    columns: int,
    gap: int,
    avoid: Sequence[Rect] = (),
) -> list[Rect]:
    """Label rectangles (x0, y0, x1, y1) beside each box, clear of the others where possible.

    ``boxes`` are (x0, y0, x1, y1) in pixels, ``sizes`` the (width, height) of each label;
    ``avoid`` lists areas to keep labels off (a banner). Labels are placed in order, each on
    the cheapest of eight sides of its box at growing distances.
    """
    labels: list[Rect] = []
    for box, size in zip(boxes, sizes, strict=True):
        labels.append(place_label(box, size, gap, boxes, labels, avoid, rows, columns))
    return labels


def label_is_apart(label: Rect, box: Rect, gap: int) -> bool:
    """Whether a label sits off its box's corner or further than ``2 * gap`` from it, so that
    it needs a leader line to show which box it belongs to."""
    diagonal = (label[2] <= box[0] or label[0] >= box[2]) and (
        label[3] <= box[1] or label[1] >= box[3]
    )
    return diagonal or _gap_between(label, box) > 2 * gap


def _gap_between(a: Rect, b: Rect) -> float:
    dx = max(b[0] - a[2], a[0] - b[2], 0)
    dy = max(b[1] - a[3], a[1] - b[3], 0)
    return float(np.hypot(dx, dy))
