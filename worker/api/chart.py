"""A patient's JSN, erosion and total over time as an SVG drawn on the server: no JavaScript,
no external asset, readable by a screen reader (a <title> per point; the page puts a table of
the same numbers beneath).

Dates are to scale on the x axis (a two-year gap looks twice as long as a one-year gap). A
point whose totals cover fewer joints than the patient's best-covered study is drawn hollow:
its total is not comparable at face value (fewer joints add up to less).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 760, 340
LEFT, RIGHT, TOP, BOTTOM = 64, 150, 20, 56


@dataclass(frozen=True)
class Measure:
    key: str
    name: str
    colour: str
    dash: str  #: stroke-dasharray ("" for solid): the lines differ without colour too
    marker: str  #: circle | square | diamond


#: Okabe–Ito colours (told apart with colour-blindness), and a dash and a marker each
MEASURES = (
    Measure("total", "Total (SvdH)", "#000000", "", "circle"),
    Measure("jsn", "JSN", "#0072B2", "7 4", "square"),
    Measure("erosion", "Erosion", "#D55E00", "2 3", "diamond"),
)


@dataclass(frozen=True)
class ChartPoint:
    """One assessed study."""

    study_date: dt.date
    jsn: int
    erosion: int
    joints_scored: int
    study_instance_uid: str

    @property
    def total(self) -> int:
        return self.jsn + self.erosion


def _nice_step(top: float) -> int:
    """A y tick step giving four to eight ticks (1, 2, 5 times a power of ten)."""
    raw = max(top, 1) / 6
    power = 10 ** math.floor(math.log10(raw))
    return int(next(m * power for m in (1, 2, 5, 10) if m * power >= raw) or 1)


def _x_ticks(first: dt.date, last: dt.date) -> list[dt.date]:
    """1 January of each year in range (every n-th year past eight), or the first of each
    quarter for a span under two years."""
    if (last - first).days < 730:
        months = [dt.date(y, m, 1) for y in range(first.year, last.year + 1) for m in (1, 4, 7, 10)]
        return [d for d in months if first <= d <= last]
    years = list(range(first.year + (first > dt.date(first.year, 1, 1)), last.year + 1))
    step = max(1, math.ceil(len(years) / 8))
    return [dt.date(y, 1, 1) for y in years[::step]]


def _marker(shape: str, x: float, y: float, colour: str, hollow: bool, title: str) -> str:
    fill = "#ffffff" if hollow else colour
    style = f'fill="{fill}" stroke="{colour}" stroke-width="2"'
    if shape == "square":
        body = f'<rect x="{x - 4.5:.1f}" y="{y - 4.5:.1f}" width="9" height="9" {style}>'
        end = "</rect>"
    elif shape == "diamond":
        pts = f"{x:.1f},{y - 6:.1f} {x + 6:.1f},{y:.1f} {x:.1f},{y + 6:.1f} {x - 6:.1f},{y:.1f}"
        body, end = f'<polygon points="{pts}" {style}>', "</polygon>"
    else:
        body, end = f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" {style}>', "</circle>"
    return f"{body}<title>{escape(title)}</title>{end}" if title else body[:-1] + "/>"


def _point_title(p: ChartPoint, measure: Measure, value: int, best: int) -> str:
    note = "" if p.joints_scored >= best else f"; fewer joints than at best ({best})"
    return (
        f"{p.study_date.isoformat()}: {measure.name} {value} "
        f"({p.joints_scored} joints scored{note})"
    )


def _axes(
    x_range: tuple[dt.date, dt.date],
    x: Callable[[dt.date], float],
    y: Callable[[float], float],
    top: int,
) -> list[str]:
    base = HEIGHT - BOTTOM
    out = ['<g class="axes" font-size="12" fill="#333">',
           f'<line x1="{LEFT}" y1="{base}" x2="{WIDTH - RIGHT}" y2="{base}" stroke="#555"/>',
           f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{base}" stroke="#555"/>']  # fmt: skip
    step = _nice_step(top)
    for value in range(0, top + 1, step):
        yy = y(value)
        out.append(f'<line x1="{LEFT}" y1="{yy:.1f}" x2="{WIDTH - RIGHT}" y2="{yy:.1f}" '
                   f'stroke="#e3e6ea"/><text x="{LEFT - 8}" y="{yy + 4:.1f}" '
                   f'text-anchor="end">{value}</text>')  # fmt: skip
    lo, hi = x_range
    for tick in _x_ticks(lo, hi):
        xx = x(tick)
        label = str(tick.year) if tick.month == 1 else tick.strftime("%b %Y")
        out.append(f'<line x1="{xx:.1f}" y1="{HEIGHT - BOTTOM}" x2="{xx:.1f}" '
                   f'y2="{HEIGHT - BOTTOM + 5}" stroke="#555"/><text x="{xx:.1f}" '
                   f'y="{HEIGHT - BOTTOM + 19}" text-anchor="middle">{label}</text>')  # fmt: skip
    out.append(f'<text x="{(LEFT + WIDTH - RIGHT) / 2:.0f}" y="{HEIGHT - 10}" '
               f'text-anchor="middle">Study Date</text>'
               f'<text transform="translate(16 {(TOP + HEIGHT - BOTTOM) / 2:.0f}) rotate(-90)" '
               f'text-anchor="middle">score (points)</text></g>')  # fmt: skip
    return out


def _legend(any_hollow: bool) -> list[str]:
    x0 = WIDTH - RIGHT + 18
    out = ['<g class="legend" font-size="12" fill="#222">']
    for n, m in enumerate(MEASURES):
        yy = TOP + 12 + n * 22
        dash = f' stroke-dasharray="{m.dash}"' if m.dash else ""
        out.append(f'<line x1="{x0}" y1="{yy}" x2="{x0 + 30}" y2="{yy}" stroke="{m.colour}" '
                   f'stroke-width="2"{dash}/>'
                   + _marker(m.marker, x0 + 15, yy, m.colour, False, "")
                   + f'<text x="{x0 + 38}" y="{yy + 4}">{m.name}</text>')  # fmt: skip
    if any_hollow:
        yy = TOP + 12 + len(MEASURES) * 22 + 6
        out.append(_marker("circle", x0 + 15, yy, "#555", True, "")
                   + f'<text x="{x0 + 38}" y="{yy + 4}">fewer joints</text>'
                   f'<text x="{x0 + 38}" y="{yy + 18}">scored</text>')  # fmt: skip
    out.append("</g>")
    return out


def timeline_svg(points: Sequence[ChartPoint], title: str) -> str:
    """The chart of ``points`` (sorted here by Study Date); "" for no point."""
    points = sorted(points, key=lambda p: (p.study_date, p.study_instance_uid))
    if not points:
        return ""
    first, last = points[0].study_date, points[-1].study_date
    span = max((last - first).days, 1)
    pad = span * 0.06 if first != last else 180
    start = first - dt.timedelta(days=int(pad))
    days = (last - first).days + 2 * int(pad)
    top = max(max(p.total for p in points), 1)
    top = math.ceil(top * 1.1 / _nice_step(top * 1.1)) * _nice_step(top * 1.1)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(d: dt.date) -> float:
        return LEFT + plot_w * (d - start).days / days

    def y(v: float) -> float:
        return TOP + plot_h * (1 - v / top)

    best = max(p.joints_scored for p in points)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
           f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-labelledby="chart-title" '
           f'id="timeline-chart" font-family="system-ui, sans-serif">'
           f'<title id="chart-title">{escape(title)}</title>',
           *_axes((start, start + dt.timedelta(days=days)), x, y, top)]  # fmt: skip
    for m in MEASURES:
        coords = " ".join(f"{x(p.study_date):.1f},{y(getattr(p, m.key)):.1f}" for p in points)
        dash = f' stroke-dasharray="{m.dash}"' if m.dash else ""
        out.append(f'<g class="measure" data-measure="{m.key}">'
                   f'<polyline points="{coords}" fill="none" stroke="{m.colour}" '
                   f'stroke-width="2"{dash}/>')  # fmt: skip
        for p in points:
            value = getattr(p, m.key)
            out.append(f'<g class="point" data-study="{escape(p.study_instance_uid)}" '
                       f'data-date="{p.study_date.isoformat()}" data-value="{value}">'
                       + _marker(m.marker, x(p.study_date), y(value), m.colour,
                                 p.joints_scored < best, _point_title(p, m, value, best))
                       + "</g>")  # fmt: skip
        if m.key == "total":  # the total's value written above its point
            out += [f'<text class="value" x="{x(p.study_date):.1f}" y="{y(p.total) - 10:.1f}" '
                    f'text-anchor="middle" font-size="12" font-weight="600">{p.total}</text>'
                    for p in points]  # fmt: skip
        out.append("</g>")
    out += _legend(any(p.joints_scored < best for p in points))
    out.append("</svg>")
    return "".join(out)
