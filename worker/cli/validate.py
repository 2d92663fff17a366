"""``rascore validate``: the model against a site's own readers, on the site's data folder.

The figures are the site's evidence for its own decision (ethics board, rheumatologists); the
command computes and shows them and judges nothing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress

from worker.cli.common import bar_factory, err, fail, load_scorer


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _r(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _summary(figures: dict[str, Any]) -> str:
    """The headline figures, one line per comparison and kind, for a terminal."""
    a = figures["abstention"]
    lines = [
        f"{figures['model']['name']} {figures['model']['version']} on site "
        f"{figures['site']['digest'][:12]}: {figures['site']['images']} images, "
        f"{a['labelled_joints']} labelled joints, {a['left_out']} left out by the model "
        f"({_pct(a['rate'])})",
    ]
    for c in figures["comparisons"]:
        for kind in ("jsn", "erosion"):
            b = c[kind]
            lines.append(
                f"{c['compared']} vs {c['reference']} {kind.upper():7s} n={b['joints']:4d} "
                f"PEA {_pct(b['pea'])} PCA {_pct(b['pca'])} sens {_pct(b['sensitivity'])} "
                f"spec {_pct(b['specificity'])} kappa {_r(b['kappa'])} "
                f"r {_r(b['totals']['pearson'])} ICC {_r(b['totals']['icc_2_1'])}"
            )
    lines.append(figures["notice"])
    return "\n".join(lines)


def _model_dir(model: str | None) -> Path | None:
    """The directory of ``--model``: a folder as given, else an installed version; without
    it, the model the node scores with (the active one)."""
    from worker.models_home import ModelRefused, active_model_dir, model_dir_for
    from worker.settings import Settings

    settings = Settings()
    try:
        if model is None:
            return active_model_dir(settings)
        if Path(model).is_dir():
            return Path(model)
        return model_dir_for(settings.home, model)
    except ModelRefused as exc:
        raise fail(str(exc)) from None


def validate(
    site: Annotated[Path, typer.Option(help="A site data folder (rascore site import).")],
    model: Annotated[
        str | None,
        typer.Option(
            help="A model version installed in RASCORE_HOME, or a model directory "
            "(default: the active model)."
        ),
    ] = None,
    report: Annotated[
        Path | None, typer.Option(help="Write a self-contained HTML report to this file.")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    draws: Annotated[int, typer.Option(help="Bootstrap draws for the 95 % intervals.")] = 1000,
) -> None:
    """The model against each reader of a site folder, and reader against reader: the paper's
    Table 3, kappa, Pearson, ICC(2,1), Bland-Altman, abstention, with 95 % intervals."""
    from worker.lab.site.folder import SiteFolderError, open_site
    from worker.lab.site.validate import validate_site

    if not site.is_dir():
        raise fail(f"{site}: no such folder")
    if draws < 0:
        raise fail("--draws must be 0 or more")
    try:
        folder = open_site(site)
    except SiteFolderError as exc:
        raise fail(str(exc)) from None
    scorer = load_scorer(_model_dir(model))
    with Progress(console=err, transient=True) as progress:
        advance = bar_factory(progress)("scoring the site's images", len(folder.images))
        try:
            figures = validate_site(scorer, folder, draws=draws, advance=advance)
        except ValueError as exc:
            raise fail(f"{site}: {exc}") from None
    if report is not None:
        from worker.lab.site.report_html import write_report

        try:
            write_report(figures, report)
        except OSError as exc:
            raise fail(f"{report}: {exc}") from None
        err.print(f"report: {report}")
    if json_output:
        print(json.dumps(figures, indent=1))
    else:
        print(_summary(figures), file=sys.stderr)
