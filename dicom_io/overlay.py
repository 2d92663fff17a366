"""The overlay Secondary Capture: the scores burned into a colour copy of the source image.

Every PACS viewer shows a Secondary Capture, including those that ignore Structured Reports and
presentation states, so this is the one result object a radiologist is sure to see. It is the
windowed source image (as :func:`dicom_io.reading.read_radiograph` shows it, bone bright) in
RGB, each scored joint boxed in a colour for its worse grade with its name and its JSN and
erosion grades beside the box, and a banner with the per-hand and image totals, the model and
"NOT FOR DIAGNOSTIC USE". A joint the model will not grade is boxed with a dashed light-grey
line and labelled "n/a"; the banner lists such joints with their reasons, and every total says
how many of the expected joints it covers ("18 of 20 joints scored"). Text size follows the
image size so the labels stay legible when a viewer fits the whole radiograph on a screen; every
text sits on a dark backing so that it reads on bone as well as on the black background.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from highdicom.sc import SCImage
from pydicom import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from dicom_io.reading import read_radiograph
from dicom_io.results import (
    JOINTS_PER_HAND,
    NOT_ASSESSABLE,
    NOT_FOR_DIAGNOSTIC_USE,
    JointResult,
    ResultMismatch,
    ScoringResult,
    building,
)
from dicom_io.source_header import (
    body_part,
    header_copy,
    series_laterality_applies,
    spacing_pair,
    values,
)

__all__ = [
    "BANNER_TITLE",
    "NOT_ASSESSABLE_COLOUR",
    "NOT_ASSESSABLE_TEXT",
    "NO_JOINTS_TEXT",
    "SERIES_DESCRIPTION",
    "SEVERITY_COLOURS",
    "OverlayLayout",
    "build_overlay_sc",
    "hand_summaries",
    "image_summary",
    "joint_grades_text",
    "label_is_apart",
    "not_assessable_summary",
    "overlay_layout",
    "place_labels",
    "render_overlay",
    "severity_colour",
]

SERIES_DESCRIPTION = "RA joint scores overlay - NOT FOR DIAGNOSTIC USE"
NO_JOINTS_TEXT = "No joints detected or scored on this image"
BANNER_TITLE = "NOT FOR DIAGNOSTIC USE"

#: Box and grade colours (RGB) by the joint's worse grade, max(JSN, erosion): 0, 1, 2, 3 or more.
#: Blue, yellow, orange, red: told apart with the common colour-vision deficiencies too, and
#: none of them grey, so a box edge is always distinguishable from the radiograph.
SEVERITY_COLOURS: tuple[tuple[int, int, int], ...] = (
    (40, 170, 255),
    (255, 225, 0),
    (255, 135, 0),
    (255, 40, 40),
)
#: Dashed box and "n/a" of a joint that is not assessable: light grey, apart from the severity
#: colours; the dark edges either side of each dash keep it visible on white bone.
NOT_ASSESSABLE_COLOUR = (200, 200, 200)
NOT_ASSESSABLE_TEXT = "n/a"
_WHITE = (255, 255, 255)
_BLACK = (0, 0, 0)
_BANNER_TITLE = (255, 70, 70)
_FONT = cv2.FONT_HERSHEY_DUPLEX
_CAP_HEIGHT_AT_SCALE_1 = cv2.getTextSize("H", _FONT, 1.0, 1)[0][1]

# Sizes as fractions of the image's shorter side (about 2,000 px for a hand radiograph): a joint
# label's capitals are about 28 px there, 14 px when a viewer fits the image to a screen.
_LABEL_CAP = 0.0135
_BANNER_TITLE_CAP = 0.028
_BANNER_LINE_CAP = 0.013
_MIN_CAP_PX = 9

# Conventional DICOM codes for the source reference (PS3.16 CID 7202, CID 7203).
_PURPOSE_SOURCE_IMAGE = ("121322", "DCM", "Source image for image processing operation")
_DERIVATION_DESCRIPTION = (
    "Source image windowed for display, with algorithm joint scores (Sharp/van der Heijde JSN "
    "and erosion) burned in; not for diagnostic use"
)


def severity_colour(joint: JointResult) -> tuple[int, int, int]:
    """RGB colour for a joint: by its worse grade, max(JSN, erosion), capped at 3; light grey
    for a joint that is not assessable."""
    if not joint.assessable or joint.jsn is None or joint.erosion is None:
        return NOT_ASSESSABLE_COLOUR
    grade = max(int(joint.jsn), int(joint.erosion), 0)
    return SEVERITY_COLOURS[min(grade, len(SEVERITY_COLOURS) - 1)]


def _dashed_rectangle(
    canvas: np.ndarray, rect: Rect, colour: tuple[int, int, int], thickness: int, dash: int
) -> None:
    """The outline of ``rect`` (x0, y0, x1, y1; ends exclusive) in dashes ``dash`` long with
    gaps as long, corners always drawn."""
    x0, y0, x1, y1 = rect[0], rect[1], rect[2] - 1, rect[3] - 1
    for start, end in (((x0, y0), (x1, y0)), ((x1, y0), (x1, y1)), ((x1, y1), (x0, y1))):
        _dashed_line(canvas, start, end, colour, thickness, dash)
    _dashed_line(canvas, (x0, y1), (x0, y0), colour, thickness, dash)


def _dashed_line(
    canvas: np.ndarray,
    start: tuple[int, int],
    end: tuple[int, int],
    colour: tuple[int, int, int],
    thickness: int,
    dash: int,
) -> None:
    length = max(abs(end[0] - start[0]), abs(end[1] - start[1]))
    for offset in range(0, length + 1, 2 * dash):
        a = offset / length if length else 0.0
        b = min(offset + dash, length) / length if length else 0.0
        p = (round(start[0] + a * (end[0] - start[0])), round(start[1] + a * (end[1] - start[1])))
        q = (round(start[0] + b * (end[0] - start[0])), round(start[1] + b * (end[1] - start[1])))
        cv2.line(canvas, p, q, colour, thickness)


def joint_grades_text(joint: JointResult) -> str:
    """The second line of a joint's label: ``"J2 E1"``, or ``"n/a"`` when not assessable."""
    if not joint.assessable:
        return NOT_ASSESSABLE_TEXT
    return f"J{joint.jsn} E{joint.erosion}"


@dataclass(frozen=True)
class _Style:
    scale: float
    thickness: int
    outline: int  # extra thickness of the dark outline drawn under each glyph
    cap: int  # capital height in pixels
    descent: int
    line_gap: int


def _style(cap_px: float) -> _Style:
    cap = max(_MIN_CAP_PX, round(cap_px))
    scale = cap / _CAP_HEIGHT_AT_SCALE_1
    thickness = max(1, round(cap / 11))
    _, descent = cv2.getTextSize("Hg", _FONT, scale, thickness)
    return _Style(
        scale=scale,
        thickness=thickness,
        outline=max(2, round(cap / 7)),
        cap=cap,
        descent=descent,
        line_gap=max(3, round(cap * 0.45)),
    )


def _text_width(text: str, style: _Style) -> int:
    return int(cv2.getTextSize(text, _FONT, style.scale, style.thickness)[0][0])


def _fit(text: str, style: _Style, width: int) -> _Style:
    """Shrink ``style`` until ``text`` fits in ``width`` pixels (a narrow image)."""
    while _text_width(text, style) > width and style.cap > _MIN_CAP_PX:
        style = _style(style.cap * 0.9)
    return style


def _put_text(
    canvas: np.ndarray,
    text: str,
    origin: tuple[int, int],
    style: _Style,
    colour: tuple[int, int, int],
) -> None:
    """Text with a dark outline, so it reads on any background; origin = baseline left."""
    cv2.putText(
        canvas,
        text,
        origin,
        _FONT,
        style.scale,
        _BLACK,
        style.thickness + 2 * style.outline,
        cv2.LINE_AA,
    )
    cv2.putText(canvas, text, origin, _FONT, style.scale, colour, style.thickness, cv2.LINE_AA)


def _darken(canvas: np.ndarray, x0: int, y0: int, x1: int, y1: int, alpha: float) -> None:
    """Blend the rectangle [x0, x1) × [y0, y1) towards black by ``alpha``."""
    rows, cols = canvas.shape[:2]
    x0, x1 = max(0, x0), min(cols, x1)
    y0, y1 = max(0, y0), min(rows, y1)
    if x1 <= x0 or y1 <= y0:
        return
    region = canvas[y0:y1, x0:x1]
    region[...] = (region.astype(np.float32) * (1.0 - alpha)).astype(np.uint8)


Rect = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)


def _overlaps(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@dataclass(frozen=True)
class OverlayLayout:
    """Where :func:`render_overlay` draws: rectangles are (x0, y0, x1, y1), ends exclusive."""

    banner: Rect  # the banner rectangle (x0, y0, x1, y1)
    boxes: tuple[Rect, ...]  # one per joint, clipped to the image
    labels: tuple[Rect, ...]  # one text block per joint
    leaders: tuple[tuple[int, int, int, int] | None, ...]  # per joint: line box→label, or None
    stroke: int  # pixels either side of a box edge or leader line that the drawing covers


def _clip_box(box: Sequence[int], rows: int, cols: int) -> Rect:
    x, y, w, h = (int(v) for v in box)
    x0, y0 = min(max(0, x), cols - 1), min(max(0, y), rows - 1)
    x1, y1 = max(x0 + 1, min(cols, x + w)), max(y0 + 1, min(rows, y + h))
    return x0, y0, x1, y1


def _covered(scored: int, expected: int) -> str:
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
        covered = _covered(scored[side], JOINTS_PER_HAND)
        out.append(f"{name}: JSN {jsn}, erosion {erosion}, {covered}")
    return out


def image_summary(result: ScoringResult) -> str:
    """The whole image's totals, e.g. ``"Total: JSN 27, erosion 10, 18 of 20 joints scored"``."""
    return (
        f"Total: JSN {result.total_jsn}, erosion {result.total_erosion}, "
        f"{_covered(result.joints_scored, result.joints_expected)}"
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


def _banner_parts(result: ScoringResult) -> tuple[list[str], list[str]]:
    """The totals and the algorithm note, as pieces that a narrow image may wrap between."""
    hands = hand_summaries(result)
    if not result.joints:
        totals = [NO_JOINTS_TEXT]
    elif len(hands) == 1:  # one hand: its totals are the image's
        totals = hands
    else:
        totals = [*hands, image_summary(result)]
    unscored = not_assessable_summary(result)
    if unscored:
        totals.append(unscored)
    about = [
        f"Algorithm {result.model.name} {result.model.version}, unverified.",
        "J = joint space narrowing (0-4),",
        "E = erosion (0-5),",
        "Sharp/van der Heijde",
    ]
    return totals, about


def _wrap(parts: Sequence[str], joiner: str, style: _Style, width: int) -> list[str]:
    """Join ``parts`` into as few lines as fit in ``width``; split a part only if it must."""
    words: list[str] = []
    for part in parts:
        words.extend([part] if _text_width(part, style) <= width else part.split(" "))
    lines: list[str] = []
    for word in words:
        candidate = f"{lines[-1]}{joiner}{word}" if lines else word
        if lines and _text_width(candidate, style) <= width:
            lines[-1] = candidate
        else:
            lines.append(word)
    return lines


_LEGEND_TEXT = "Box colour = worse grade:"


def _legend_items(with_na: bool) -> list[tuple[str, tuple[int, int, int]]]:
    last = len(SEVERITY_COLOURS) - 1
    items = [(f"{g}+" if g == last else str(g), c) for g, c in enumerate(SEVERITY_COLOURS)]
    return items + ([(NOT_ASSESSABLE_TEXT, NOT_ASSESSABLE_COLOUR)] if with_na else [])


def _legend_width(style: _Style, with_na: bool) -> int:
    s = style.cap
    width = _text_width(_LEGEND_TEXT, style) + s
    for label, _ in _legend_items(with_na):
        width += s + max(2, s // 4) + _text_width(label, style) + s
    return width - s


def _draw_legend(canvas: np.ndarray, x: int, y: int, style: _Style, with_na: bool) -> None:
    """The colour key, from ``x`` on the baseline ``y``; with "n/a" when a joint is not
    assessable."""
    _put_text(canvas, _LEGEND_TEXT, (x, y), style, _WHITE)
    s = style.cap
    x += _text_width(_LEGEND_TEXT, style) + s
    for label, colour in _legend_items(with_na):
        cv2.rectangle(canvas, (x, y - s), (x + s, y), _BLACK, max(2, style.outline))
        cv2.rectangle(canvas, (x, y - s), (x + s, y), colour, -1)
        x += s + max(2, s // 4)
        _put_text(canvas, label, (x, y), style, _WHITE)
        x += _text_width(label, style) + s


def _draw_banner(canvas: np.ndarray, result: ScoringResult, boxes: Sequence[Rect]) -> Rect:
    """The banner: title, totals, algorithm and key; at the top or the bottom of the image."""
    rows, cols = canvas.shape[:2]
    short = min(rows, cols)
    pad = max(4, round(short * 0.008))
    avail = cols - 2 * pad
    title_style = _fit(BANNER_TITLE, _style(short * _BANNER_TITLE_CAP), avail)
    line_style = _style(short * _BANNER_LINE_CAP)
    with_na = bool(result.not_assessable)
    while _legend_width(line_style, with_na) > avail and line_style.cap > _MIN_CAP_PX:
        line_style = _style(line_style.cap * 0.9)
    totals, about = _banner_parts(result)
    lines = _wrap(totals, "  |  ", line_style, avail) + _wrap(about, " ", line_style, avail)
    for line in lines:  # a single word wider than the image: shrink to fit
        line_style = _fit(line, line_style, avail)
    # The key goes right of the title when there is room, else on a line of its own.
    gap = 2 * title_style.cap
    legend_width = _legend_width(line_style, with_na)
    key_beside_title = _text_width(BANNER_TITLE, title_style) + gap + legend_width <= avail
    count = len(lines) + (0 if key_beside_title else 1)
    line_height = line_style.cap + line_style.descent + line_style.line_gap
    height = min(rows, pad + title_style.cap + title_style.descent + count * line_height + pad)

    # Top or bottom, whichever hides fewer joints (top when equal).
    top: Rect = (0, 0, cols, height)
    bottom: Rect = (0, rows - height, cols, rows)
    hidden_top = sum(_overlaps(top, b) for b in boxes)
    hidden_bottom = sum(_overlaps(bottom, b) for b in boxes)
    banner = top if hidden_top <= hidden_bottom else bottom
    _darken(canvas, *banner, alpha=0.8)

    x = pad
    y = banner[1] + pad + title_style.cap
    _put_text(canvas, BANNER_TITLE, (x, y), title_style, _BANNER_TITLE)
    if key_beside_title:
        _draw_legend(canvas, cols - pad - legend_width, y, line_style, with_na)
    y += title_style.descent + line_style.line_gap + line_style.cap
    for line in lines:
        _put_text(canvas, line, (x, y), line_style, _WHITE)
        y += line_height
    if not key_beside_title:
        _draw_legend(canvas, x, y, line_style, with_na)
    return banner


def _overlap_area(a: Rect, b: Rect) -> int:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0


# Where a label may go around its box, in order of preference: (horizontal, vertical) anchor,
# -1 = before the box (left / above), 0 = centred on it, +1 = after it (right / below).
_LABEL_SIDES = ((0, -1), (0, 1), (1, 0), (-1, 0), (1, -1), (-1, -1), (1, 1), (-1, 1))


def _place_label(
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
        labels.append(_place_label(box, size, gap, boxes, labels, avoid, rows, columns))
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


def _nearest_point(rect: Rect, x: float, y: float) -> tuple[int, int]:
    return (
        round(min(max(x, rect[0]), rect[2] - 1)),
        round(min(max(y, rect[1]), rect[3] - 1)),
    )


def _render(source: Dataset, result: ScoringResult) -> tuple[np.ndarray, OverlayLayout]:
    grey = read_radiograph(source).pixels
    rows, cols = grey.shape
    grey8 = np.rint(np.clip(grey, 0.0, 1.0) * 255.0).astype(np.uint8)
    canvas = np.ascontiguousarray(np.repeat(grey8[:, :, None], 3, axis=2))

    short = min(rows, cols)
    boxes = [_clip_box(j.box, rows, cols) for j in result.joints]
    banner = _draw_banner(canvas, result, boxes)

    line = max(2, round(short * 0.0016))
    outline = max(1, round(line / 2))
    dash = max(4, round(short * 0.006))
    for joint, (x0, y0, x1, y1) in zip(result.joints, boxes, strict=True):
        colour = severity_colour(joint)
        # Dark edges either side of the coloured line keep it visible on white bone.
        if joint.assessable:
            cv2.rectangle(canvas, (x0, y0), (x1 - 1, y1 - 1), _BLACK, line + 2 * outline)
            cv2.rectangle(canvas, (x0, y0), (x1 - 1, y1 - 1), colour, line)
        else:  # dashed: found, but not graded
            _dashed_rectangle(canvas, (x0, y0, x1, y1), _BLACK, line + 2 * outline, dash)
            _dashed_rectangle(canvas, (x0, y0, x1, y1), colour, line, dash)

    style = _style(short * _LABEL_CAP)
    pad = max(2, round(style.cap * 0.3))
    gap = max(2, round(style.cap * 0.25))
    labels: list[Rect] = []
    leaders: list[tuple[int, int, int, int] | None] = []
    for joint, box in zip(result.joints, boxes, strict=True):
        name = joint.joint
        grades = joint_grades_text(joint)
        width = max(_text_width(name, style), _text_width(grades, style)) + 2 * pad
        height = 2 * style.cap + style.descent + style.line_gap + 2 * pad
        rect = _place_label(box, (width, height), gap, boxes, labels, [banner], rows, cols)
        labels.append(rect)
        if label_is_apart(rect, box, gap):
            # A label pushed away from its box, or off its corner, gets a leader line to it.
            cx, cy = (rect[0] + rect[2]) / 2, (rect[1] + rect[3]) / 2
            start = _nearest_point(box, cx, cy)
            end = _nearest_point(rect, *start)
            cv2.line(canvas, start, end, _BLACK, line + 2 * outline, cv2.LINE_AA)
            cv2.line(canvas, start, end, severity_colour(joint), line, cv2.LINE_AA)
            leaders.append((*start, *end))
        else:
            leaders.append(None)
        _darken(canvas, *rect, alpha=0.7)
        x = rect[0] + pad
        y = rect[1] + pad + style.cap
        _put_text(canvas, name, (x, y), style, _WHITE)
        y += style.cap + style.line_gap
        _put_text(canvas, grades, (x, y), style, severity_colour(joint))
    layout = OverlayLayout(
        banner=banner,
        boxes=tuple(boxes),
        labels=tuple(labels),
        leaders=tuple(leaders),
        stroke=(line + 2 * outline) // 2 + 2,  # + anti-aliasing
    )
    return canvas, layout


def render_overlay(source: Dataset, result: ScoringResult) -> np.ndarray:
    """The source image, windowed for display, with the scores drawn on it.

    Returns an RGB uint8 array of shape (Rows, Columns, 3) of the source. Raises
    :class:`dicom_io.reading.UnreadableImage` if the source cannot be decoded.
    """
    return _render(source, result)[0]


def overlay_layout(source: Dataset, result: ScoringResult) -> OverlayLayout:
    """Where :func:`render_overlay` puts the banner, the boxes and the labels."""
    return _render(source, result)[1]


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _image_reference(source: Dataset, purpose: tuple[str, str, str] | None) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = source.SOPClassUID
    item.ReferencedSOPInstanceUID = source.SOPInstanceUID
    if purpose is not None:
        item.PurposeOfReferenceCodeSequence = DicomSequence([_code(*purpose)])
    return item


def _pixel_spacing(source: Dataset) -> tuple[float, float] | None:
    """Pixel Spacing of the source, if it has a usable one.

    The overlay has the source's pixel grid, so a spacing calibrated at the patient carries
    over. Imager Pixel Spacing alone (at the detector, not corrected for magnification) is not
    carried: the SC IOD has no place for it, and calling it Pixel Spacing would claim a
    calibration the source does not make.
    """
    return spacing_pair(source.get("PixelSpacing"))


#: Transfer syntaxes that lose information: JPEG baseline / extended, JPEG-LS near-lossless,
#: JPEG 2000 and HTJ2K that are not lossless-only.
_LOSSY_TRANSFER_SYNTAXES = frozenset(
    {
        "1.2.840.10008.1.2.4.50",
        "1.2.840.10008.1.2.4.51",
        "1.2.840.10008.1.2.4.81",
        "1.2.840.10008.1.2.4.91",
        "1.2.840.10008.1.2.4.203",
    }
)


def _lossy(source: Dataset) -> bool:
    if str(source.get("LossyImageCompression", "") or "").strip() == "01":
        return True
    meta = getattr(source, "file_meta", None)
    syntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    return syntax in _LOSSY_TRANSFER_SYNTAXES


def _set_laterality(sc: Dataset, source: Dataset) -> None:
    """Image Laterality, else the series Laterality, of the source: exactly one of the two.

    Image Laterality (General Image) can say B (both hands) and U; the series Laterality only
    R or L. dciodvfy wants the series Laterality (Type 2C) exactly when Image Laterality is
    absent, and errors when both are there; an unknown side is Laterality present and empty.
    A series of an unpaired body part (CHEST) has neither.
    """
    for keyword in ("ImageLaterality", "Laterality"):
        if keyword in sc:
            del sc[keyword]
    image = str(source.get("ImageLaterality", "") or "").strip().upper()
    series = str(source.get("Laterality", "") or "").strip().upper()
    if image in ("L", "R", "B", "U"):
        sc.ImageLaterality = image
    elif not series_laterality_applies(source):
        return  # an unpaired body part (a chest): no Laterality at all
    elif series in ("L", "R"):
        sc.Laterality = series
    else:
        sc.Laterality = ""


@building("overlay SC")
def build_overlay_sc(
    source: Dataset,
    result: ScoringResult,
    *,
    series_instance_uid: str | None = None,
    sop_instance_uid: str | None = None,
    series_number: int = 902,
    instance_number: int = 1,
) -> SCImage:
    """The overlay as a Secondary Capture Image in a new series of the source's study.

    RGB, same patient and study as ``source``, Burned In Annotation YES, the source named in
    the Source Image and Referenced Image Sequences. UIDs are generated when not given.
    Raises :class:`~dicom_io.results.ResultMismatch` when ``result`` is about another image,
    :class:`dicom_io.reading.UnreadableImage` when the source's pixels cannot be decoded, and
    :class:`~dicom_io.results.ResultBuildError` when the SC cannot be built for another reason.
    """
    header = header_copy(source)  # the patient, study and identity as each IOD asks
    if str(header.SOPInstanceUID) != result.source_sop_instance_uid:
        raise ResultMismatch(
            f"result is for image {result.source_sop_instance_uid}, not for {header.SOPInstanceUID}"
        )
    pixels = render_overlay(source, result)

    sc = SCImage.from_ref_dataset(
        ref_dataset=header,
        pixel_array=pixels,
        photometric_interpretation="RGB",
        bits_allocated=8,
        coordinate_system="PATIENT",
        series_instance_uid=series_instance_uid or generate_uid(),
        series_number=series_number,
        sop_instance_uid=sop_instance_uid or generate_uid(),
        instance_number=instance_number,
        manufacturer=result.model.manufacturer,
        manufacturer_model_name=result.model.name,
        software_versions=result.model.version,
        series_description=SERIES_DESCRIPTION,
        pixel_spacing=_pixel_spacing(source),  # type: ignore[arg-type]  # highdicom says int
        # highdicom insists on an orientation for PATIENT images and accepts single letters
        # only; the source's own value (or an empty Type 2 one) replaces this below.
        patient_orientation=("L", "F"),
        transfer_syntax_uid=ExplicitVRLittleEndian,
    )
    # Study attributes beyond what highdicom copies (Study Description, ...), so that
    # dcentvfy sees the same study entity in the source and its results.
    sc.copy_patient_and_study_information(header)
    orientation = values(source.get("PatientOrientation"))
    if len(orientation) == 2 and all(str(v).strip() for v in orientation):
        sc["PatientOrientation"] = copy.deepcopy(source["PatientOrientation"])
    else:
        sc.PatientOrientation = []  # Type 2: present, empty (unknown)
    _set_laterality(sc, source)
    if body_part(source) is not None:  # Type 3: a mangled one is left out
        sc.BodyPartExamined = body_part(source)
    scanned = spacing_pair(source.get("NominalScannedPixelSpacing"))
    if scanned is not None:  # a digitised film: the overlay has its grid
        sc.NominalScannedPixelSpacing = list(scanned)

    sc.DeviceUID = result.model.device_uid
    sc.ConversionType = "WSD"  # made on a workstation from another image
    sc.BurnedInAnnotation = "YES"
    sc.RecognizableVisualFeatures = _yes_no(source.get("RecognizableVisualFeatures"), "NO")
    # Once lossy, always flagged (PS3.3 C.7.6.1.1.5): the overlay is as lossy as its source.
    sc.LossyImageCompression = "01" if _lossy(source) else "00"
    for keyword in ("LossyImageCompressionRatio", "LossyImageCompressionMethod"):
        if keyword in source and source[keyword].value and sc.LossyImageCompression == "01":
            sc[keyword] = copy.deepcopy(source[keyword])
    sc.ImageComments = NOT_FOR_DIAGNOSTIC_USE
    sc.DerivationDescription = _DERIVATION_DESCRIPTION
    sc.SourceImageSequence = DicomSequence([_image_reference(header, _PURPOSE_SOURCE_IMAGE)])
    sc.ReferencedImageSequence = DicomSequence([_image_reference(header, None)])
    return sc


def _yes_no(value: Any, default: str) -> str:
    """YES or NO from a source's value; ``default`` for anything else (empty, mangled)."""
    text = str(value or "").strip().upper()
    return text if text in ("YES", "NO") else default
