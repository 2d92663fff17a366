"""The ``rascore`` command line (DESIGN.md, Contracts).

``--json`` output goes to stdout; messages go to stderr; exit code 2 on bad input with a
one-line reason.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import cv2
import numpy as np
import typer
from rich.console import Console
from rich.progress import Progress

from scoring.phantom import PhantomConfig, generate_image
from scoring.phantom.gallery import annotated, contact_sheet

if TYPE_CHECKING:
    from scoring.pipeline import Scorer

app = typer.Typer(
    name="rascore",
    help="Scores RA joint damage on hand radiographs. Trained on phantoms: not for diagnostic use.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err = Console(stderr=True)

GALLERY_TILES = 12


def fail(reason: str) -> typer.Exit:
    """Exit 2 with a one-line reason on stderr."""
    print(f"rascore: error: {reason}", file=sys.stderr)
    return typer.Exit(code=2)


def _phantom_job(args: tuple[int, int, PhantomConfig, str, bool]) -> tuple[dict[str, Any], Any]:
    from worker.phantom_export import write_image

    seed, index, config, out, with_tile = args
    image = generate_image(seed, index, config)
    record = write_image(seed, image, Path(out))
    tile = annotated(image, 560) if with_tile else None
    return record, tile


@app.command()
def phantom(
    out: Annotated[Path, typer.Option(help="Folder for the DICOM files and truth.json.")],
    count: Annotated[int, typer.Option(help="Number of images.")] = 12,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same pixels.")] = 7,
    hands: Annotated[int, typer.Option(help="Hands per image, 1 or 2.")] = 2,
    gallery: Annotated[
        Path | None, typer.Option(help="Write a contact sheet of the first images (PNG).")
    ] = None,
    distribution: Annotated[
        str, typer.Option(help="Class frequencies: 'table2' (the paper's) or 'uniform'.")
    ] = "table2",
    encoding: Annotated[
        list[str] | None,
        typer.Option(help="explicit, jpeg2000-lossless or jpegls-lossless; repeat to mix."),
    ] = None,
    modality: Annotated[list[str] | None, typer.Option(help="CR or DX; repeat to mix.")] = None,
    jobs: Annotated[int, typer.Option(help="Worker processes.")] = 1,
) -> None:
    """Generate synthetic hand radiographs (DICOM) with exact per-joint labels in truth.json."""
    if count < 1:
        raise fail("--count must be at least 1")
    if hands not in (1, 2):
        raise fail("--hands must be 1 or 2")
    if distribution not in ("table2", "uniform"):
        raise fail("--distribution must be 'table2' or 'uniform'")
    encodings = tuple(encoding or ["explicit"])
    bad = [e for e in encodings if e not in ("explicit", "jpeg2000-lossless", "jpegls-lossless")]
    if bad:
        raise fail(f"unknown --encoding {bad[0]!r}")
    modalities = tuple(m.upper() for m in (modality or ["CR", "DX"]))
    if any(m not in ("CR", "DX") for m in modalities):
        raise fail("--modality must be CR or DX")
    if out.exists() and not out.is_dir():
        raise fail(f"{out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)

    from worker.phantom_export import generator_record

    config = PhantomConfig(
        hands=hands,  # type: ignore[arg-type]
        distribution=distribution,  # type: ignore[arg-type]
        encodings=encodings,  # type: ignore[arg-type]
        modalities=modalities,  # type: ignore[arg-type]
    )
    want_tiles = gallery is not None
    tasks = [(seed, i, config, str(out), want_tiles and i < GALLERY_TILES) for i in range(count)]
    records: list[dict[str, Any]] = []
    tiles = []
    with Progress(console=err, transient=True) as progress:
        bar = progress.add_task("phantoms", total=count)
        if jobs > 1:
            with ProcessPoolExecutor(max_workers=jobs) as pool:
                results = pool.map(_phantom_job, tasks)
                for record, tile in results:
                    records.append(record)
                    if tile is not None:
                        tiles.append(tile)
                    progress.advance(bar)
        else:
            for task in tasks:
                record, tile = _phantom_job(task)
                records.append(record)
                if tile is not None:
                    tiles.append(tile)
                progress.advance(bar)

    truth = {"generator": generator_record(seed, count, config), "images": records}
    (out / "truth.json").write_text(json.dumps(truth, indent=1))
    if gallery is not None:
        gallery.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(gallery), contact_sheet(tiles))
        err.print(f"gallery: {gallery}")
    joints = sum(len(r["joints"]) for r in records)
    err.print(f"{count} images, {joints} joints, truth in {out / 'truth.json'}")


@app.command()
def crops(
    data: Annotated[Path, typer.Option(help="Folder with DICOM files and truth.json.")],
    out: Annotated[Path, typer.Option(help="Output .npz of joint clips.")],
    size: Annotated[int, typer.Option(help="Side of each clip in pixels.")] = 48,
) -> None:
    """Clip every labelled joint (the paper's training images) into one .npz file."""
    from dicom_io.reading import UnreadableImage, read_radiograph
    from scoring.crops import crop_joint

    truth_path = data / "truth.json"
    if not truth_path.is_file():
        raise fail(f"{truth_path} not found")
    try:
        truth = json.loads(truth_path.read_text())
        images = truth["images"]
    except (ValueError, KeyError) as exc:
        raise fail(f"{truth_path} is not a truth file: {exc}") from None
    if not 8 <= size <= 512:
        raise fail("--size must be between 8 and 512")
    clips: list[np.ndarray] = []
    meta: dict[str, list[Any]] = {
        k: []
        for k in ("label", "joint_type", "jsn", "erosion", "file", "study_instance_uid", "box")
    }
    with Progress(console=err, transient=True) as progress:
        bar = progress.add_task("crops", total=len(images))
        for record in images:
            try:
                grey = read_radiograph(data / record["file"]).pixels
            except (OSError, UnreadableImage) as exc:
                raise fail(f"{record['file']}: {exc}") from None
            for joint in record["joints"]:
                clips.append(crop_joint(grey, joint["box"], size))
                meta["label"].append(joint["label"])
                meta["joint_type"].append(joint.get("joint_type", ""))
                meta["jsn"].append(joint["jsn"])
                meta["erosion"].append(joint["erosion"])
                meta["file"].append(record["file"])
                meta["study_instance_uid"].append(record["study_instance_uid"])
                meta["box"].append(joint["box"])
            progress.advance(bar)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out,
        images=np.stack(clips) if clips else np.zeros((0, size, size), np.uint8),
        label=np.array(meta["label"], dtype=str),
        joint_type=np.array(meta["joint_type"], dtype=str),
        jsn=np.array(meta["jsn"], dtype=np.int8),
        erosion=np.array(meta["erosion"], dtype=np.int8),
        image_file=np.array(meta["file"], dtype=str),
        study_instance_uid=np.array(meta["study_instance_uid"], dtype=str),
        box=np.array(meta["box"], dtype=np.int32).reshape(-1, 4),
    )
    err.print(f"{len(clips)} clips of {size}x{size} from {len(images)} images in {out}")


def _scorer(model: Path | None) -> Scorer:
    from scoring.pipeline import Scorer

    try:
        return Scorer.load(model)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None


@app.command()
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
    scorer = _scorer(model)
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
        from worker.results_export import write_results

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


@app.command()
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
    from worker.evaluating import evaluate_folder, markdown_table

    truth_path = data / "truth.json"
    if not truth_path.is_file():
        raise fail(f"{truth_path} not found")
    scorer = _scorer(model)
    try:
        figures = evaluate_folder(scorer, data)
    except (KeyError, ValueError) as exc:
        raise fail(f"{data}: {exc}") from None
    if report is not None:
        from worker.report import write_report

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
    from worker.landmark_evaluating import (
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
    scorer = _scorer(model)
    with Progress(console=err, transient=True) as progress:

        def bar(name: str, total: int) -> Callable[[], None]:
            task = progress.add_task(name, total=total)
            return lambda: progress.advance(task)

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


@app.command()
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
) -> None:
    """Run the committed recipe: phantoms (+ real hands) → detector → CNNs → evaluation →
    model."""
    from worker.evaluating import evaluate_phantom_test_set, markdown_card
    from worker.training import Recipe, run_recipe

    if real is not None and not (real / "landmarks.csv").is_file():
        raise fail(f"{real}: no landmarks.csv")
    try:
        recipe = (Recipe().small() if small else Recipe()).with_detector(detector)
    except ValueError as exc:
        raise fail(str(exc)) from None
    tool = None
    if recipe.detector == "cascade":
        from worker.traincascade_tool import find_traincascade

        tool = traincascade or find_traincascade(lambda m: err.print(m))
    with Progress(console=err) as progress:

        def bar(name: str, total: int) -> Callable[[], None]:
            task = progress.add_task(name, total=total)
            return lambda: progress.advance(task)

        card = run_recipe(recipe, out, tool, bar, lambda m: err.print(m), real)
        card["evaluation"] = evaluate_phantom_test_set(out, recipe.test, bar)
        if real is not None:
            from worker.landmark_evaluating import evaluate_real_validation

            card["evaluation_real"] = evaluate_real_validation(out, real, bar)
    (out / "card.json").write_text(json.dumps(card, indent=1))
    (out / "card.md").write_text(markdown_card(card))
    err.print(f"model {card['version']} in {out}")


# The node's own commands live in worker.cli_node (kept apart from the scoring commands).
from worker.cli_node import (  # noqa: E402
    audit,
    db_app,
    demo,
    outbox_app,
    scores,
    serve,
    token_app,
    worker,
)

app.command()(serve)
app.command()(worker)
app.command()(demo)
app.add_typer(db_app, name="db")
app.add_typer(outbox_app, name="outbox")
app.add_typer(token_app, name="token")
app.command()(scores)
app.command()(audit)
