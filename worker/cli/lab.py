"""``rascore score``, ``evaluate`` and ``train``: one file scored, a labelled set or real
pictures measured, the committed recipe run. dicom_io reads, scoring scores, worker.lab joins."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress

from worker.cli.common import bar_factory, err, fail, load_scorer


def score(
    file: Annotated[Path, typer.Argument(help="A DICOM radiograph of one or both hands.")],
    out: Annotated[
        Path | None, typer.Option(help="Write the SR, overlay SC and GSPS to this folder.")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    model: Annotated[Path | None, typer.Option(help="Model directory (default: built in).")] = None,
) -> None:
    """Detect, identify and score the joints of one radiograph."""
    from dicom_io.reading import UnreadableImage
    from worker.scoring_io import as_json, score_file

    if not file.is_file():
        raise fail(f"{file}: no such file")
    scorer = load_scorer(model)
    try:
        scored = score_file(scorer, file)
    except UnreadableImage as exc:
        raise fail(f"{file}: {exc}") from None
    except Exception as exc:  # pydicom raises many kinds for files that are not DICOM
        raise fail(
            f"{file}: not a readable DICOM image ({exc.__class__.__name__}: {exc})"
        ) from None
    result = as_json(scorer, scored)
    if out is not None:
        from dicom_io.results import ResultBuildError
        from worker.scoring_io import write_results

        try:
            result["written"] = [str(p) for p in write_results(scorer, scored, out)]
        except (ResultBuildError, UnreadableImage) as exc:  # one line that says why
            raise fail(f"{file}: scored, but {exc}") from None
    if json_output:
        print(json.dumps(result, indent=1))
    else:
        for joint in result["joints"]:
            if joint.get("assessable", True):
                err.print(f"{joint['label']:8s} JSN {joint['jsn']}  erosion {joint['erosion']}")
            else:
                err.print(f"{joint['label']:8s} not assessable ({joint['reason']})")
        totals = result["totals"]
        err.print(
            f"{result['status']}: JSN total {totals['jsn']}, erosion total {totals['erosion']} "
            f"over {totals['joints_scored']} of {totals['joints_expected']} joints "
            f"(model {result['model']['version']}; NOT FOR DIAGNOSTIC USE)"
        )


def evaluate(
    data: Annotated[
        Path | None, typer.Option(help="Folder with DICOM files and truth.json.")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    report: Annotated[
        Path | None, typer.Option(help="Write Markdown and the paper's Fig. 3 plots here.")
    ] = None,
    model: Annotated[Path | None, typer.Option(help="Model directory (default: built in).")] = None,
    landmarks: Annotated[
        Path | None,
        typer.Option(help="Landmarks CSV of real pictures (image,landmark,name,x,y)."),
    ] = None,
    images: Annotated[
        Path | None, typer.Option(help="Folder of the JPEG/PNG pictures of --landmarks.")
    ] = None,
    gallery: Annotated[
        Path | None, typer.Option(help="With --landmarks: write a contact sheet (PNG).")
    ] = None,
    split: Annotated[str, typer.Option(help="With --landmarks: train, validation or all.")] = "all",
    laterality: Annotated[
        str, typer.Option(help="With --landmarks: laterality told to the scorer (L, R or '').")
    ] = "",
    hand_side: Annotated[
        str,
        typer.Option(help="With --landmarks: the landmarked hands' side if known, for agreement."),
    ] = "",
) -> None:
    """The model against a labelled set (the paper's Table 3, detection and identity), or
    against real pictures with landmarks (--landmarks, --images)."""
    if landmarks is not None or images is not None:
        if data is not None or report is not None:
            raise fail("--landmarks/--images go without --data and --report")
        _evaluate_landmarks(
            landmarks, images, json_output, model, gallery, split, laterality, hand_side
        )
        return
    if data is None:
        raise fail("give --data DIR, or --landmarks FILE.csv --images DIR")
    from worker.lab.evaluate_folder import evaluate_folder, markdown_table

    truth_path = data / "truth.json"
    if not truth_path.is_file():
        raise fail(f"{truth_path} not found")
    scorer = load_scorer(model)
    try:
        figures = evaluate_folder(scorer, data)
    except (KeyError, ValueError) as exc:
        raise fail(f"{data}: {exc}") from None
    if report is not None:
        from worker.lab.report import write_report

        write_report(figures, scorer.bundle.card, report)
    if json_output:
        print(json.dumps(figures, indent=1))
    else:
        err.print(markdown_table(figures))


def _evaluate_landmarks(
    landmarks: Path | None,
    images: Path | None,
    json_output: bool,
    model: Path | None,
    gallery: Path | None,
    split: str,
    laterality: str,
    hand_side: str,
) -> None:
    from worker.lab.evaluate_landmarks import (
        LATERALITIES,
        SPLITS,
        evaluate_landmark_images,
        load_landmarked,
        readable_table,
    )

    if landmarks is None or images is None:
        raise fail("--landmarks and --images go together")
    if not landmarks.is_file():
        raise fail(f"{landmarks}: no such file")
    if not images.is_dir():
        raise fail(f"{images}: no such folder")
    if split not in SPLITS:
        raise fail(f"--split must be one of {', '.join(SPLITS)}")
    if laterality.upper() not in LATERALITIES or hand_side.upper() not in LATERALITIES:
        raise fail("--laterality and --hand-side must be L, R or ''")
    try:
        selected = load_landmarked(landmarks, images, split)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise fail(str(exc)) from None
    scorer = load_scorer(model)
    with Progress(console=err, transient=True) as progress:
        bar = bar_factory(progress)
        try:
            figures = evaluate_landmark_images(
                scorer,
                selected,
                split,
                laterality.upper(),
                hand_side.upper(),
                gallery,
                bar,
            )
        except (OSError, ValueError) as exc:
            raise fail(str(exc).splitlines()[0] if str(exc) else repr(exc)) from None
    if json_output:
        print(json.dumps(figures, indent=1))
    else:
        print(readable_table(figures), file=sys.stderr)
    if gallery is not None:
        err.print(f"gallery: {gallery}")


def train(
    out: Annotated[Path, typer.Option(help="Model directory to write.")],
    real: Annotated[
        Path | None,
        typer.Option(
            help="Folder of real hand pictures with landmarks.csv (Digital Hand Atlas format): "
            "trains on its training split, reports on its validation split."
        ),
    ] = None,
    detector: Annotated[
        str, typer.Option(help="keypoints (the heat-map network) or cascade (the paper's).")
    ] = "keypoints",
    small: Annotated[bool, typer.Option(help="A tiny recipe for smoke tests.")] = False,
    traincascade: Annotated[
        Path | None, typer.Option(help="opencv_traincascade (default: build and cache it).")
    ] = None,
    site: Annotated[
        Path | None,
        typer.Option(help="A site data folder: fine-tune the CNNs on its labelled images."),
    ] = None,
    from_model: Annotated[
        Path | None,
        typer.Option("--from", help="With --site: the model to start from (default: built in)."),
    ] = None,
    scratch: Annotated[
        bool, typer.Option(help="With --site: train the CNNs from random weights.")
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="With --site: print a summary as JSON.")
    ] = False,
) -> None:
    """Run the committed recipe: phantoms (+ real hands) → detector → CNNs → evaluation →
    model; or, with --site, fine-tune the CNNs on a site's own labelled radiographs."""
    if site is not None:
        if real is not None or detector != "keypoints" or traincascade is not None:
            raise fail("--real, --detector and --traincascade go without --site")
        _train_site(out, site, from_model, scratch, small, json_output)
        return
    if from_model is not None or scratch or json_output:
        raise fail("--from, --scratch and --json go with --site")
    from worker.lab.evaluate_folder import evaluate_phantom_test_set, markdown_card
    from worker.lab.recipe import Recipe, run_recipe

    if real is not None and not (real / "landmarks.csv").is_file():
        raise fail(f"{real}: no landmarks.csv")
    try:
        recipe = (Recipe().small() if small else Recipe()).with_detector(detector)
    except ValueError as exc:
        raise fail(str(exc)) from None
    tool = None
    if recipe.detector == "cascade":
        from worker.lab.traincascade_tool import find_traincascade

        tool = traincascade or find_traincascade(lambda m: err.print(m))
    with Progress(console=err) as progress:
        bar = bar_factory(progress)
        card = run_recipe(recipe, out, tool, bar, lambda m: err.print(m), real)
        card["evaluation"] = evaluate_phantom_test_set(out, recipe.test, bar)
        if real is not None:
            from worker.lab.evaluate_landmarks import evaluate_real_validation

            card["evaluation_real"] = evaluate_real_validation(out, real, bar)
    (out / "card.json").write_text(json.dumps(card, indent=1))
    (out / "card.md").write_text(markdown_card(card))
    err.print(f"model {card['version']} in {out}")


def _train_site(
    out: Path, site: Path, from_model: Path | None, scratch: bool, small: bool, json_output: bool
) -> None:
    from scoring.model import ModelRefused
    from worker.lab.site.folder import SiteFolderError
    from worker.lab.site.train import SiteRecipe, summary, train_site

    if not site.is_dir():
        raise fail(f"{site}: no such folder")
    recipe = SiteRecipe().small() if small else SiteRecipe()
    with Progress(console=err, transient=True) as progress:
        try:
            card = train_site(
                site, out, from_model, scratch, recipe, bar_factory(progress), err.print
            )
        except (ModelRefused, SiteFolderError, ValueError) as exc:
            raise fail(str(exc).splitlines()[0]) from None
    if json_output:
        print(json.dumps(summary(card, out), indent=1))
    err.print(
        f"site model {card['version']} in {out}: not for diagnostic use before `rascore "
        "validate` on patients it has not seen"
    )
