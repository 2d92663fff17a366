"""``rascore validate --report FILE.html``: the validation figures as one self-contained page.

Made only from the figures ``--json`` prints, so the page and the JSON cannot disagree. The
plots are inline PNGs (base64), with no script, font or style sheet fetched from anywhere: the
file can be mailed to an ethics board and opened offline.
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

KIND_NAMES = {"jsn": "JSN", "erosion": "Erosion"}
#: the paper's Table 3 and text, model against its two clinicians, for orientation only
PAPER = {
    "jsn": "PEA 49.3–65.4 %, PCA 64.0–85.3 %, sensitivity 88.0–94.2 %, "
    "specificity 52.0–74.8 %, Pearson r of totals 0.72–0.88",
    "erosion": "PEA 70.6–74.1 %, PCA 84.3 %, sensitivity 34.8–42.4 %, "
    "specificity 88.2–89.4 %, Pearson r of totals 0.54–0.75",
}
_MODEL_COLOUR = "black"
_READER_GREYS = ("#bdbdbd", "#737373", "#d9d9d9", "#525252")

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;margin:24px auto;
max-width:1100px;color:#1a1a1a;line-height:1.45;padding:0 16px}
h1{font-size:1.6em;margin-bottom:4px}h2{font-size:1.25em;margin-top:34px;
border-bottom:1px solid #ccc;padding-bottom:4px}h3{font-size:1.05em;margin-bottom:6px}
.notice{border:2px solid #b45309;background:#fff7ed;padding:10px 14px;border-radius:6px;
font-weight:600}
table{border-collapse:collapse;margin:8px 0 4px 0;font-size:.93em}
th,td{border:1px solid #d0d0d0;padding:4px 9px;text-align:right}
th{background:#f2f2f2}td.l,th.l{text-align:left}
.ci{color:#555;font-size:.86em}.muted{color:#555;font-size:.9em}
dl{display:grid;grid-template-columns:max-content auto;gap:3px 16px;margin:10px 0}
dt{font-weight:600}dd{margin:0}code{font-size:.9em;word-break:break-all}
figure{margin:14px 0}figcaption{color:#444;font-size:.9em;max-width:900px}
img{max-width:100%}tr.readers td{background:#f4f4f4}
"""


def _fmt(value: Any, percent: bool = False) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{100 * value:.1f} %" if percent else f"{value:.2f}"


def _ci(pair: list[float] | None, percent: bool = False) -> str:
    if not pair or any(v is None or not math.isfinite(v) for v in pair):
        return ""
    lo, hi = (_fmt(v, percent) for v in pair)
    return f'<br><span class="ci">95 % CI {lo} to {hi}</span>'


def _title(comparison: dict[str, Any]) -> str:
    return f"{comparison['compared']} vs {comparison['reference']}"


def _row_class(comparison: dict[str, Any]) -> str:
    """Reader against reader is shaded: the yardstick the model's rows are read against."""
    return "" if comparison["compared"] == "model" else ' class="readers"'


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="" src="data:image/png;base64,{data}">'


def _figure(image: str, caption: str) -> str:
    return f"<figure>{image}<figcaption>{caption}</figcaption></figure>"


def _distributions(figures: dict[str, Any]) -> str:
    """The paper's Fig. 3E and 3G: the model's grades in black, the readers' in greys."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    for ax, (kind, raters) in zip(axes, figures["distributions"].items(), strict=True):
        names = ["model", *(n for n in raters if n != "model")]
        width = 0.8 / len(names)
        for r, name in enumerate(names):
            counts = raters[name]
            colour = _MODEL_COLOUR if name == "model" else _READER_GREYS[(r - 1) % 4]
            x = np.arange(len(counts)) + (r - (len(names) - 1) / 2) * width
            ax.bar(x, counts, width, color=colour, edgecolor="black", linewidth=0.5, label=name)
        ax.set_xticks(range(len(raters[names[0]])))
        ax.set_xlabel(f"{KIND_NAMES[kind]} score")
        ax.set_ylabel("joints")
        ax.set_title(f"{'E' if kind == 'jsn' else 'G'}: distribution of {KIND_NAMES[kind]} scores")
        ax.legend(fontsize=8)
    return _png(fig)


def _scatter(ax: Axes, block: dict[str, Any], ref_name: str, comp_name: str) -> None:
    ref, comp = block["totals"]["reference"], block["totals"]["compared"]
    ax.scatter(ref, comp, s=18, color="black", alpha=0.7)
    top = max([*ref, *comp, 1]) * 1.05
    ax.plot([0, top], [0, top], color="grey", ls=":", lw=1)
    ax.set_xlim(-0.5, top)
    ax.set_ylim(-0.5, top)
    ax.set_title(f"r = {_fmt(block['totals']['pearson'])}, "
                 f"ICC = {_fmt(block['totals']['icc_2_1'])}", fontsize=8)  # fmt: skip
    ax.set_xlabel(f"{ref_name}: total per image", fontsize=8)
    ax.set_ylabel(f"{comp_name}: total per image", fontsize=8)


def _bland_altman(ax: Axes, block: dict[str, Any], ref_name: str, comp_name: str) -> None:
    ref = np.asarray(block["totals"]["reference"], float)
    comp = np.asarray(block["totals"]["compared"], float)
    limits = block["totals"]["bland_altman"]
    ax.axhline(0, color="grey", lw=0.6)
    ax.scatter((ref + comp) / 2, comp - ref, s=18, color="black", alpha=0.7)
    mean, lower, upper = limits["mean_difference"], limits["lower"], limits["upper"]
    if mean is not None:
        ax.axhline(mean, color="#b45309", lw=1.2, label=f"mean {mean:+.1f}")
    if lower is not None and upper is not None:
        ax.axhline(lower, color="#b45309", ls="--", lw=1, label=f"95 % limits {lower:+.1f}, "
                   f"{upper:+.1f}")  # fmt: skip
        ax.axhline(upper, color="#b45309", ls="--", lw=1)
    if mean is not None:
        ax.legend(fontsize=7, loc="best")
    ax.set_xlabel(f"mean of {ref_name} and {comp_name} totals", fontsize=8)
    ax.set_ylabel(f"{comp_name} − {ref_name}", fontsize=8)


def _differences(ax: Axes, block: dict[str, Any], ref_name: str, comp_name: str) -> None:
    counts = {int(d): c for d, c in block["differences"].items()}
    colours = ["#1a1a1a" if d == 0 else "#8c8c8c" if abs(d) == 1 else "#c9c9c9" for d in counts]
    ax.bar(list(counts), list(counts.values()), color=colours, width=0.8, edgecolor="black",
           linewidth=0.4)  # fmt: skip
    ax.set_xticks(list(counts))
    ax.set_xlabel(f"{comp_name} − {ref_name}, per joint", fontsize=8)
    ax.set_ylabel("joints", fontsize=8)


def _confusion(ax: Axes, block: dict[str, Any], ref_name: str, comp_name: str) -> None:
    matrix = np.asarray(block["confusion"])
    ax.imshow(matrix, cmap="Greys", vmin=0, vmax=max(1, int(matrix.max()) * 1.6))
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=8)
    ax.set_xticks(range(matrix.shape[1]))
    ax.set_yticks(range(matrix.shape[0]))
    ax.set_xlabel(comp_name, fontsize=8)
    ax.set_ylabel(ref_name, fontsize=8)


def _grid(figures: dict[str, Any], draw: Any, height: float, width: float = 9) -> str:
    """One panel per comparison (rows) and kind (columns), titled with both."""
    rows = figures["comparisons"]
    fig, axes = plt.subplots(
        len(rows), 2, figsize=(width, height * len(rows)), constrained_layout=True, squeeze=False
    )
    for r, comparison in enumerate(rows):
        for c, kind in enumerate(KIND_NAMES):
            ax = axes[r, c]
            draw(ax, comparison[kind], comparison["reference"], comparison["compared"])
            title = f"{KIND_NAMES[kind]}: {_title(comparison)}"
            ax.set_title(f"{title}\n{ax.get_title()}" if ax.get_title() else title, fontsize=9)
    return _png(fig)


def _table3(figures: dict[str, Any]) -> str:
    head = "".join(f"<th>{g}</th>" for g in ("Total", "PIP/IP", "MCP", "PIP", "IP"))
    out = [f'<table><tr><th class="l">Comparison</th><th class="l">Index</th>{head}</tr>']
    for kind in KIND_NAMES:
        out.append(f'<tr><th class="l" colspan="7">For {KIND_NAMES[kind]}</th></tr>')
        for comparison in figures["comparisons"]:
            block = comparison[kind]
            for index in ("pea", "pca"):
                cells = [_fmt(block[index], True) + _ci(block["ci95"][index], True)]
                cells += [
                    _fmt(block["per_type"][g][index], True)
                    + f'<br><span class="ci">n = {block["per_type"][g]["joints"]}</span>'
                    for g in ("PIP/IP", "MCP", "PIP", "IP")
                ]
                first = f'<td class="l" rowspan="2">{html.escape(_title(comparison))}</td>'
                out.append(
                    f"<tr{_row_class(comparison)}>{first if index == 'pea' else ''}"
                    f'<td class="l">{index.upper()}</td>'
                    + "".join(f"<td>{c}</td>" for c in cells)
                    + "</tr>"
                )
    out.append("</table>")
    return "".join(out)


def _agreement_table(figures: dict[str, Any]) -> str:
    heads = ("Joints", "Sensitivity", "Specificity", "κ (all)", "κ PIP/IP", "κ MCP", "κ PIP",
             "κ IP")  # fmt: skip
    out = ['<table><tr><th class="l">Comparison</th>']
    out += [f"<th>{h}</th>" for h in heads] + ["</tr>"]
    for kind in KIND_NAMES:
        out.append(f'<tr><th class="l" colspan="9">For {KIND_NAMES[kind]}</th></tr>')
        for comparison in figures["comparisons"]:
            b, ci = comparison[kind], comparison[kind]["ci95"]
            cells = [
                str(b["joints"]),
                _fmt(b["sensitivity"], True) + _ci(ci["sensitivity"], True),
                _fmt(b["specificity"], True) + _ci(ci["specificity"], True),
                _fmt(b["kappa"]) + _ci(ci["kappa"]),
            ] + [_fmt(b["per_type"][g]["kappa"]) for g in ("PIP/IP", "MCP", "PIP", "IP")]
            out.append(
                f"<tr{_row_class(comparison)}>"
                f'<td class="l">{html.escape(_title(comparison))}</td>'
                + "".join(f"<td>{c}</td>" for c in cells)
                + "</tr>"
            )
    out.append("</table>")
    return "".join(out)


def _totals_table(figures: dict[str, Any]) -> str:
    heads = ("Images", "Pearson r", "ICC(2,1)", "Mean difference", "95 % limits of agreement")
    out = ['<table><tr><th class="l">Comparison</th>']
    out += [f"<th>{h}</th>" for h in heads] + ["</tr>"]
    for kind in KIND_NAMES:
        out.append(f'<tr><th class="l" colspan="6">For {KIND_NAMES[kind]} totals</th></tr>')
        for comparison in figures["comparisons"]:
            t, ci = comparison[kind]["totals"], comparison[kind]["ci95"]
            ba = t["bland_altman"]
            cells = [
                str(comparison[kind]["images"]),
                _fmt(t["pearson"]) + _ci(ci["pearson_total"]),
                _fmt(t["icc_2_1"]) + _ci(ci["icc_total"]),
                _fmt(ba["mean_difference"]) + _ci(ci["mean_difference_total"]),
                f"{_fmt(ba['lower'])} to {_fmt(ba['upper'])}",
            ]
            out.append(
                f"<tr{_row_class(comparison)}>"
                f'<td class="l">{html.escape(_title(comparison))}</td>'
                + "".join(f"<td>{c}</td>" for c in cells)
                + "</tr>"
            )
    out.append("</table>")
    return "".join(out)


def _abstention(figures: dict[str, Any]) -> str:
    a = figures["abstention"]
    rows = "".join(
        f'<tr><td class="l">{html.escape(reason)}</td><td>{count}</td></tr>'
        for reason, count in a["reasons"].items()
    )
    types = "".join(
        f'<tr><td class="l">{t}</td><td>{c["left_out"]} of {c["labelled"]}</td>'
        f"<td>{_fmt(c['rate'], True)}</td></tr>"
        for t, c in a["per_type"].items()
    )
    return (
        f"<p>Of {a['labelled_joints']} joints labelled by at least one reader, the model graded "
        f"{a['graded']} and left out {a['left_out']} ({_fmt(a['rate'], True)}): these are in "
        "none of the agreement figures above.</p>"
        '<table><tr><th class="l">Why left out</th><th>Joints</th></tr>'
        + (rows or '<tr><td class="l">none</td><td>0</td></tr>')
        + '</table><table><tr><th class="l">Joint type</th><th>Left out</th><th>Rate</th></tr>'
        + types
        + "</table>"
    )


def _header(figures: dict[str, Any]) -> str:
    model, site = figures["model"], figures["site"]
    readers = ", ".join(
        f"{html.escape(name)} ({count} joints labelled)" for name, count in site["readers"].items()
    )
    status = ", ".join(f"{html.escape(k)}: {v}" for k, v in site["image_status"].items())
    seconds = figures.get("seconds_per_image")
    return (
        f"<h1>Site validation of {html.escape(model['name'])} {html.escape(model['version'])}</h1>"
        f'<p class="notice">{html.escape(figures["notice"])}</p>'
        "<dl>"
        f"<dt>Model</dt><dd>{html.escape(model['name'])}, version "
        f"{html.escape(model['version'])}</dd>"
        f"<dt>Site folder digest</dt><dd><code>{site['digest']}</code></dd>"
        f"<dt>Date</dt><dd>{html.escape(figures['date'])}</dd>"
        f"<dt>Images</dt><dd>{site['images']} from {site['patients']} patients "
        f"(model: {status})</dd>"
        + (
            f"<dt>Left out</dt><dd>{site['left_out_patients']} patients: "
            f"{html.escape(site['left_out_why'])}</dd>"
            if site.get("left_out_patients")
            else ""
        )
        + f"<dt>Readers</dt><dd>{readers}</dd>"
        f"<dt>Seconds per image</dt><dd>{_fmt(seconds)}</dd>"
        "</dl>"
    )


_READING = """<h2>How these figures are made</h2><ul class="muted">
<li>“A vs B” compares A with B taken as reference: sensitivity and specificity are for score 0
versus at least 1 with B as truth; differences are A − B; confusion-matrix rows are B.</li>
<li>Per joint: PEA, exact agreement; PCA, agreement within one grade (the paper's Table 3);
κ, Cohen's kappa with quadratic weights. Per image: the JSN or erosion total over the joints
<em>both</em> sides graded; Pearson r; ICC(2,1), two-way random effects, absolute agreement,
single rater (Shrout &amp; Fleiss 1979); Bland–Altman mean difference ± 1.96 SD.</li>
<li>A joint a reader did not label is left out for that reader, never counted as 0; a joint
the model did not grade (not assessable, not found) is left out and counted under
Abstention.</li>
<li>95 % confidence intervals: percentile bootstrap over images ({draws} draws, seed
{seed}); an image keeps all its joints.</li></ul>"""


def render(figures: dict[str, Any]) -> str:
    """The whole page as one string."""
    boot = figures["bootstrap"]
    paper = "".join(f"<li>{KIND_NAMES[k]}: {html.escape(v)}</li>" for k, v in PAPER.items())
    body = [
        _header(figures),
        "<h2>Agreement per joint (the paper's Table 3)</h2>",
        '<p class="muted">Read the model\'s rows against the shaded rows of two readers: how '
        "well this site's readers agree with each other is the yardstick for the model.</p>",
        _table3(figures),
        '<p class="muted">For orientation, Hirano et al. 2019 (model vs two clinicians, '
        f'286 joints):</p><ul class="muted">{paper}</ul>',
        "<h2>Zero versus any damage, and weighted κ</h2>",
        _agreement_table(figures),
        "<h2>Per-image totals</h2>",
        _totals_table(figures),
        "<h2>Abstention</h2>",
        _abstention(figures),
        "<h2>Figures</h2>",
        "<h3>Score distributions (the paper's Fig. 3E and 3G)</h3>",
        _figure(
            _distributions(figures),
            "The grades given by the model (black) and by each "
            "reader (greys), on the joints all of them graded.",
        ),
        "<h3>Totals per image (the paper's Fig. 3F and 3H)</h3>",
        _figure(
            _grid(figures, _scatter, 3.0, 8),
            "Each point is one image: the sum of its "
            "grades over the joints both sides graded; the dotted line is perfect "
            "agreement.",
        ),
        "<h3>Bland–Altman plots of the totals</h3>",
        _figure(
            _grid(figures, _bland_altman, 2.8),
            "Difference of the two totals of an image "
            "against their mean: mean difference (solid, a systematic offset) and 95 % "
            "limits of agreement (dashed, mean ± 1.96 SD).",
        ),
        "<h3>Differences per joint</h3>",
        _figure(
            _grid(figures, _differences, 2.4),
            "How many joints differ by each number of "
            "grades: black, exact agreement (PEA); dark grey, one grade apart (PCA adds "
            "them); light grey, further apart.",
        ),
        "<h3>Confusion matrices</h3>",
        _figure(
            _grid(figures, _confusion, 3.2, 8),
            "Joints by the reference's grade (rows) "
            "and the compared side's (columns); the diagonal is exact agreement.",
        ),
        _READING.format(draws=boot["draws"], seed=boot["seed"]),
    ]
    title = html.escape(f"Site validation: {figures['model']['name']}")
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{_STYLE}</style></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    )


def write_report(figures: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(figures), encoding="utf-8")
    return path
