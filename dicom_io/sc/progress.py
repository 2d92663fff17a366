"""The study overlay: a hand image with the joints that changed since the previous study.

The study SR carries the progression, but most viewers show only pictures; this Secondary
Capture puts it where a reader looks. It is drawn on the same grey copy as the per-image
overlay (:mod:`dicom_io.sc.grey`) and with the same boxes, labels and banner
(:mod:`dicom_io.sc.render`): each joint that changed has its box coloured by the direction of
the change and a label "MCP2 / J 1->2 E 0->1"; a joint that did not change has a thin faint
box and no label, so the changes stand out; a joint not assessable at either time has a faint
dashed box. The banner names both study dates, the model, and per hand the totals then and
now over the joints compared, and says "NOT FOR DIAGNOSTIC USE".

The input is plain: the :class:`~dicom_io.study_results.StudyResult` (current grades, the
comparison with the previous study) and each joint's box in the source image, which the
worker takes from the image's score. The prior grades are the current ones minus the change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from highdicom.sc import SCImage
from pydicom import Dataset

from dicom_io.annotations import Rect, label_is_apart, place_label
from dicom_io.results import building
from dicom_io.sc.build import overlay_image
from dicom_io.sc.render import (
    _BANNER_LINE_CAP,
    _BANNER_TITLE,
    _BANNER_TITLE_CAP,
    _BLACK,
    _LABEL_CAP,
    _MIN_CAP_PX,
    _WHITE,
    BANNER_TITLE,
    NOT_ASSESSABLE_COLOUR,
    SEVERITY_COLOURS,
    _clip_box,
    _darken,
    _dashed_rectangle,
    _fit,
    _nearest_point,
    _overlaps,
    _put_text,
    _Style,
    _style,
    _text_width,
    _wrap,
    overlay_canvas,
)
from dicom_io.source_header import result_header
from dicom_io.study_results import Comparison, StudyHand, StudyResult

SERIES_DESCRIPTION = "RA joint score changes overlay - NOT FOR DIAGNOSTIC USE"
_DERIVATION_DESCRIPTION = (
    "Source image windowed for display, with the algorithm's joint scores (Sharp/van der "
    "Heijde JSN and erosion) at the previous study and this one burned in for the joints that "
    "changed; not for diagnostic use"
)
#: Box and label colours (RGB) by the direction of a joint's change: worse (a grade up, none
#: down), better (a grade down, none up), mixed (one up, one down); from the overlay's scale
#: so they read the same, and told apart with the common colour-vision deficiencies.
WORSE_COLOUR = SEVERITY_COLOURS[3]
BETTER_COLOUR = SEVERITY_COLOURS[0]
MIXED_COLOUR = SEVERITY_COLOURS[1]
#: an unchanged joint: a thin box, darker than the not-assessable grey, drawn without outline
UNCHANGED_COLOUR = (150, 150, 150)
_SIDES = {"L": "Left", "R": "Right"}

Box = tuple[int, int, int, int]  #: x, y, width, height in source pixels
Grades = tuple[int, int]  #: JSN, erosion


@dataclass(frozen=True)
class JointProgress:
    """One joint on the image: its box and its grades then and now (None where it was not
    assessable, or not compared)."""

    label: str  #: e.g. ``L_MCP2``
    box: Box
    prior: Grades | None  #: at the previous study; None: not compared
    current: Grades | None

    @property
    def changed(self) -> bool:
        return self.prior is not None and self.current is not None and self.prior != self.current

    @property
    def direction(self) -> int:
        """1 worse, -1 better, 0 unchanged or mixed (see :attr:`mixed`)."""
        if self.prior is None or self.current is None:
            return 0
        ups = [now - then for then, now in zip(self.prior, self.current, strict=True)]
        if all(d >= 0 for d in ups) and any(ups):
            return 1
        if all(d <= 0 for d in ups) and any(ups):
            return -1
        return 0

    @property
    def colour(self) -> tuple[int, int, int]:
        if not self.changed:
            return UNCHANGED_COLOUR if self.prior is not None else NOT_ASSESSABLE_COLOUR
        return {1: WORSE_COLOUR, -1: BETTER_COLOUR}.get(self.direction, MIXED_COLOUR)

    @property
    def name(self) -> str:
        return self.label.split("_", 1)[-1]

    @property
    def text(self) -> str:
        """``J 1->2 E 0->1`` (ASCII: the overlay's font has no arrow)."""
        if self.prior is None or self.current is None:
            return ""
        (j0, e0), (j1, e1) = self.prior, self.current
        return f"J {j0}->{j1} E {e0}->{e1}"


def previous_comparison(result: StudyResult) -> Comparison | None:
    """The comparison with the previous study, if the report has one."""
    return next((c for c in result.comparisons if c.against == "previous"), None)


def joint_progress(
    hands: Sequence[StudyHand], comparison: Comparison, boxes: Mapping[str, Box]
) -> tuple[JointProgress, ...]:
    """The joints of ``hands`` that have a box in the image, with their grades then and now;
    the prior grades are the current ones less the change (compared joints only)."""
    changes = {c.label: c for c in comparison.joints}
    joints = []
    for hand in hands:
        for joint in hand.joints:
            box = boxes.get(joint.label)
            if box is None:
                continue  # not found on the image: nothing to draw round
            current = None
            if joint.jsn is not None and joint.erosion is not None:
                current = (joint.jsn, joint.erosion)
            change = changes.get(joint.label)
            prior = None
            if current is not None and change is not None:
                prior = (current[0] - change.jsn, current[1] - change.erosion)
            joints.append(JointProgress(joint.label, box, prior, current))
    return tuple(joints)


def _hand_line(side: str, joints: Sequence[JointProgress]) -> str:
    """A hand's totals then and now over the joints compared."""
    compared = [j for j in joints if j.label.startswith(f"{side}_") and j.prior and j.current]
    then = [sum(j.prior[k] for j in compared if j.prior) for k in (0, 1)]
    now = [sum(j.current[k] for j in compared if j.current) for k in (0, 1)]
    change = sum(now) - sum(then)
    return (
        f"{_SIDES.get(side, side)} hand, {len(compared)} joints compared: "
        f"JSN {then[0]}->{now[0]} ({now[0] - then[0]:+d}), "
        f"erosion {then[1]}->{now[1]} ({now[1] - then[1]:+d}), total {change:+d}"
    )


def _banner_lines(
    result: StudyResult, comparison: Comparison, joints: Sequence[JointProgress]
) -> tuple[list[str], list[str]]:
    """The dates and per-hand totals, and the counts and the algorithm note."""
    current = result.study_date.isoformat() if result.study_date else "undated"
    dates = (
        f"Changes since the previous study: {comparison.prior_study_date.isoformat()} -> "
        f"{current} ({comparison.years:.1f} years)"
    )
    sides = sorted({j.label.split("_", 1)[0] for j in joints})
    totals = [dates, *(_hand_line(side, joints) for side in sides)]
    changed = sum(j.changed for j in joints)
    same = sum(not j.changed and j.prior is not None for j in joints)
    left_out = sum(j.prior is None for j in joints)
    counts = f"{changed} joints changed, {same} unchanged"
    counts += f", {left_out} not compared (not assessable then or now)" if left_out else ""
    about = [
        f"{counts}.",
        f"Algorithm {result.model.name} {result.model.version}, unverified.",
        "J = joint space narrowing (0-4),",
        "E = erosion (0-5),",
        "Sharp/van der Heijde",
    ]
    return totals, about


_LEGEND = (("worse", WORSE_COLOUR), ("better", BETTER_COLOUR), ("mixed", MIXED_COLOUR),
           ("unchanged", UNCHANGED_COLOUR))  # fmt: skip
_LEGEND_TEXT = "Change:"


def _legend_width(style: _Style) -> int:
    s = style.cap
    width = _text_width(_LEGEND_TEXT, style)
    return width + sum(2 * s + max(2, s // 4) + _text_width(t, style) for t, _ in _LEGEND)


def _draw_legend(canvas: np.ndarray, x: int, y: int, style: _Style) -> None:
    _put_text(canvas, _LEGEND_TEXT, (x, y), style, _WHITE)
    s = style.cap
    x += _text_width(_LEGEND_TEXT, style) + s
    for text, colour in _LEGEND:
        cv2.rectangle(canvas, (x, y - s), (x + s, y), _BLACK, max(2, style.outline))
        cv2.rectangle(canvas, (x, y - s), (x + s, y), colour, -1)
        x += s + max(2, s // 4)
        _put_text(canvas, text, (x, y), style, _WHITE)
        x += _text_width(text, style) + s


def _draw_banner(
    canvas: np.ndarray, parts: tuple[list[str], list[str]], boxes: Sequence[Rect]
) -> Rect:
    """Title, key, dates, totals and note; at the top or the bottom, whichever hides fewer
    changed joints (as the per-image overlay's banner)."""
    rows, cols = canvas.shape[:2]
    short = min(rows, cols)
    pad = max(4, round(short * 0.008))
    avail = cols - 2 * pad
    title = _fit(BANNER_TITLE, _style(short * _BANNER_TITLE_CAP), avail)
    line = _style(short * _BANNER_LINE_CAP)
    while _legend_width(line) > avail and line.cap > _MIN_CAP_PX:
        line = _style(line.cap * 0.9)
    lines = _wrap(parts[0], "  |  ", line, avail) + _wrap(parts[1], " ", line, avail)
    for text in lines:
        line = _fit(text, line, avail)
    beside = _text_width(BANNER_TITLE, title) + 2 * title.cap + _legend_width(line) <= avail
    step = line.cap + line.descent + line.line_gap
    count = len(lines) + (0 if beside else 1)
    height = min(rows, pad + title.cap + title.descent + count * step + pad)
    top: Rect = (0, 0, cols, height)
    bottom: Rect = (0, rows - height, cols, rows)
    hidden_top, hidden_bottom = (sum(_overlaps(r, b) for b in boxes) for r in (top, bottom))
    banner = top if hidden_top <= hidden_bottom else bottom
    _darken(canvas, *banner, alpha=0.8)
    y = banner[1] + pad + title.cap
    _put_text(canvas, BANNER_TITLE, (pad, y), title, _BANNER_TITLE)
    if beside:
        _draw_legend(canvas, cols - pad - _legend_width(line), y, line)
    y += title.descent + line.line_gap + line.cap
    for text in lines:
        _put_text(canvas, text, (pad, y), line, _WHITE)
        y += step
    if not beside:
        _draw_legend(canvas, pad, y, line)
    return banner


@dataclass(frozen=True)
class ProgressLayout:
    """Where :func:`render_progress` draws (overlay pixels; (x0, y0, x1, y1), ends exclusive)."""

    banner: Rect
    boxes: Mapping[str, Rect]  #: every joint drawn, by label
    labels: Mapping[str, Rect]  #: the changed joints' labels, by label


def _scaled(box: Box, scale: tuple[float, float], rows: int, cols: int) -> Rect:
    fx, fy = scale
    x0, y0 = round(box[0] * fx), round(box[1] * fy)
    x1, y1 = round((box[0] + box[2]) * fx), round((box[1] + box[3]) * fy)
    return _clip_box((x0, y0, max(1, x1 - x0), max(1, y1 - y0)), rows, cols)


def _draw_boxes(canvas: np.ndarray, joints: Sequence[JointProgress], boxes: Sequence[Rect]) -> int:
    """Each joint's box (changed: bold and outlined; unchanged: thin; not compared: dashed);
    the line width of a bold box."""
    short = min(canvas.shape[:2])
    line = max(2, round(short * 0.0016))
    outline = max(1, round(line / 2))
    dash = max(4, round(short * 0.006))
    for joint, (x0, y0, x1, y1) in zip(joints, boxes, strict=True):
        if joint.changed:
            cv2.rectangle(canvas, (x0, y0), (x1 - 1, y1 - 1), _BLACK, line + 2 * outline)
            cv2.rectangle(canvas, (x0, y0), (x1 - 1, y1 - 1), joint.colour, line)
        elif joint.prior is not None:
            cv2.rectangle(canvas, (x0, y0), (x1 - 1, y1 - 1), joint.colour, 1)
        else:
            _dashed_rectangle(canvas, (x0, y0, x1, y1), joint.colour, 1, dash)
    return line


def _render(
    source: Dataset,
    result: StudyResult,
    comparison: Comparison,
    joints: Sequence[JointProgress],
    grey: np.ndarray | None,
) -> tuple[np.ndarray, ProgressLayout]:
    grey8, scale = overlay_canvas(source, grey)
    rows, cols = grey8.shape
    canvas = cv2.cvtColor(grey8, cv2.COLOR_GRAY2RGB)
    boxes = [_scaled(j.box, scale, rows, cols) for j in joints]
    changed = [(j, b) for j, b in zip(joints, boxes, strict=True) if j.changed]
    parts = _banner_lines(result, comparison, joints)
    banner = _draw_banner(canvas, parts, [b for _, b in changed])
    line = _draw_boxes(canvas, joints, boxes)
    style = _style(min(rows, cols) * _LABEL_CAP)
    pad, gap = max(2, round(style.cap * 0.3)), max(2, round(style.cap * 0.25))
    labels: dict[str, Rect] = {}
    for joint, box in changed:
        width = max(_text_width(joint.name, style), _text_width(joint.text, style)) + 2 * pad
        height = 2 * style.cap + style.descent + style.line_gap + 2 * pad
        rect = place_label(box, (width, height), gap, boxes, list(labels.values()), [banner],
                           rows, cols)  # fmt: skip
        labels[joint.label] = rect
        if label_is_apart(rect, box, gap):  # a leader line to a label pushed off its box
            start = _nearest_point(box, (rect[0] + rect[2]) / 2, (rect[1] + rect[3]) / 2)
            end = _nearest_point(rect, *start)
            cv2.line(canvas, start, end, _BLACK, line + 2, cv2.LINE_AA)
            cv2.line(canvas, start, end, joint.colour, line, cv2.LINE_AA)
        _darken(canvas, *rect, alpha=0.7)
        y = rect[1] + pad + style.cap
        _put_text(canvas, joint.name, (rect[0] + pad, y), style, _WHITE)
        y += style.cap + style.line_gap
        _put_text(canvas, joint.text, (rect[0] + pad, y), style, joint.colour)
    boxes_by_label = {j.label: b for j, b in zip(joints, boxes, strict=True)}
    return canvas, ProgressLayout(banner, boxes_by_label, labels)


def render_progress(
    source: Dataset,
    result: StudyResult,
    comparison: Comparison,
    joints: Sequence[JointProgress],
    grey: np.ndarray | None = None,
) -> np.ndarray:
    """The source image windowed for display (``grey``, else decoded from ``source``), RGB, of
    :func:`~dicom_io.sc.grey.overlay_shape`, with the changes since ``comparison``'s study."""
    return _render(source, result, comparison, joints, grey)[0]


def progress_layout(
    source: Dataset,
    result: StudyResult,
    comparison: Comparison,
    joints: Sequence[JointProgress],
    grey: np.ndarray | None = None,
) -> ProgressLayout:
    """Where :func:`render_progress` puts the banner, the boxes and the labels."""
    return _render(source, result, comparison, joints, grey)[1]


@building("study overlay SC")
def build_progress_sc(
    source: Dataset,
    result: StudyResult,
    comparison: Comparison,
    joints: Sequence[JointProgress],
    *,
    series_instance_uid: str,
    sop_instance_uid: str,
    series_number: int = 904,
    grey: np.ndarray | None = None,
) -> SCImage:
    """The study overlay of one hand image as a Secondary Capture in its own series of the
    source's study, as :func:`~dicom_io.sc.build.build_overlay_sc` makes the per-image one
    (derived from ``source``, which it references; RGB; burned-in annotation). ``source``
    may be a header without pixels when ``grey`` is given."""
    header = result_header(source, str(source.SOPInstanceUID))
    grey8, scale = overlay_canvas(source, grey)
    pixels = render_progress(source, result, comparison, joints, grey8)
    identity = (series_instance_uid, series_number, sop_instance_uid, result.version)
    return overlay_image(
        source,
        header,
        pixels,
        scale,
        result.model,
        identity=identity,
        series_description=SERIES_DESCRIPTION,
        derivation=_DERIVATION_DESCRIPTION,
    )
