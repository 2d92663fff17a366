"""Drawing the overlay: the scores burned into a colour copy of the source image.

Every PACS viewer shows a Secondary Capture, including those that ignore Structured Reports and
presentation states, so this is the one result object a radiologist is sure to see. It is the
windowed source image (as :func:`dicom_io.reading.read_radiograph` shows it, bone bright,
shrunk to :data:`~dicom_io.sc.grey.OVERLAY_LONG_SIDE`) in RGB, each scored joint boxed in a
colour for its worse grade with its name and its JSN and erosion grades beside the box, and a
banner with the per-hand and image totals, the model and "NOT FOR DIAGNOSTIC USE". A joint the
model will not grade is boxed with a dashed light-grey line and labelled "n/a"; the banner lists
such joints with their reasons, and every total says how many of the expected joints it covers
("18 of 20 joints scored"). Text size follows the image size so the labels stay legible when a
viewer fits the whole radiograph on a screen; every text sits on a dark backing so that it reads
on bone as well as on the black background.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from pydicom import Dataset

from dicom_io.annotations import (
    NO_JOINTS_TEXT,
    NOT_ASSESSABLE_TEXT,
    Rect,
    hand_summaries,
    image_summary,
    joint_grades_text,
    label_is_apart,
    not_assessable_summary,
    place_label,
)
from dicom_io.reading import read_radiograph
from dicom_io.results import (
    JointResult,
    ScoringResult,
)
from dicom_io.sc.grey import overlay_grey

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
    """Text with a dark outline, so it reads on any background; origin = baseline left.

    The outline is drawn without anti-aliasing: a thick anti-aliased stroke costs five times
    as much (most of the overlay's drawing time), and only the glyph's own edge shows it."""
    thick = style.thickness + 2 * style.outline
    cv2.putText(canvas, text, origin, _FONT, style.scale, _BLACK, thick, cv2.LINE_8)
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


def _nearest_point(rect: Rect, x: float, y: float) -> tuple[int, int]:
    return (
        round(min(max(x, rect[0]), rect[2] - 1)),
        round(min(max(y, rect[1]), rect[3] - 1)),
    )


def _scaled(result: ScoringResult, fx: float, fy: float) -> ScoringResult:
    """``result`` with its joint boxes in overlay pixels (``fx``, ``fy``: overlay per source)."""
    if fx == 1.0 and fy == 1.0:
        return result

    def box(b: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        x0, y0 = round(b[0] * fx), round(b[1] * fy)
        x1, y1 = round((b[0] + b[2]) * fx), round((b[1] + b[3]) * fy)
        return x0, y0, max(1, x1 - x0), max(1, y1 - y0)

    joints = tuple(dataclasses.replace(j, box=box(j.box)) for j in result.joints)
    return dataclasses.replace(result, joints=joints)


def overlay_canvas(
    source: Dataset, grey: np.ndarray | None
) -> tuple[np.ndarray, tuple[float, float]]:
    """The overlay's grey image (decoded from ``source`` when ``grey`` is None) and its scale
    (x, y) relative to the source, from the source's Rows and Columns: a prepared grey image
    of any size needs nothing else to be placed."""
    if grey is None:
        grey = read_radiograph(source).pixels
    rows, cols = grey.shape[:2]
    grey8 = overlay_grey(grey)
    src_rows = int(source.get("Rows") or rows)
    src_cols = int(source.get("Columns") or cols)
    return grey8, (grey8.shape[1] / src_cols, grey8.shape[0] / src_rows)


def _render(
    source: Dataset, result: ScoringResult, grey: np.ndarray | None
) -> tuple[np.ndarray, OverlayLayout]:
    grey8, (fx, fy) = overlay_canvas(source, grey)
    result = _scaled(result, fx, fy)
    rows, cols = grey8.shape
    canvas = cv2.cvtColor(grey8, cv2.COLOR_GRAY2RGB)

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
        rect = place_label(box, (width, height), gap, boxes, labels, [banner], rows, cols)
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


def render_overlay(
    source: Dataset, result: ScoringResult, grey: np.ndarray | None = None
) -> np.ndarray:
    """The source image, windowed for display, with the scores drawn on it.

    ``grey`` is the display grey-scale already at hand (float in [0, 1] or uint8, any size:
    the scorer's, or the copy it kept); without it the source is decoded. Either way the
    result is RGB uint8 of :func:`~dicom_io.sc.grey.overlay_shape` of the source, the same
    for the same grey. Raises :class:`dicom_io.reading.UnreadableImage` if the source must be
    decoded and cannot be.
    """
    return _render(source, result, grey)[0]


def overlay_layout(
    source: Dataset, result: ScoringResult, grey: np.ndarray | None = None
) -> OverlayLayout:
    """Where :func:`render_overlay` puts the banner, the boxes and the labels (overlay
    pixels)."""
    return _render(source, result, grey)[1]
