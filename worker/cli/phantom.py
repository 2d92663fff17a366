"""``rascore phantom`` and ``rascore crops``: synthetic radiographs with their truth, and the
joint clips the CNNs learn from. The phantom makes pixels and labels, dicom_io the files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import cv2
import numpy as np
import typer
from rich.progress import Progress

from scoring.phantom import PhantomConfig, generate_image, study_layout
from scoring.phantom.gallery import annotated, contact_sheet
from worker.cli.common import err, fail

GALLERY_TILES = 12
MAX_VISITS = 20
MAX_YEARS_APART = 20.0


def _phantom_job(args: tuple[int, int, PhantomConfig, str, bool]) -> tuple[dict[str, Any], Any]:
    from worker.lab.phantom_export import write_image

    seed, index, config, out, with_tile = args
    image = generate_image(seed, index, config)
    record = write_image(seed, image, Path(out))
    tile = annotated(image, 560) if with_tile else None
    return record, tile


def _phantom_config(
    hands: int, distribution: str, encoding: list[str] | None, modality: list[str] | None
) -> PhantomConfig:
    """The generator's configuration from the options; a bad option exits 2."""
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
    return PhantomConfig(
        hands=hands,  # type: ignore[arg-type]
        distribution=distribution,  # type: ignore[arg-type]
        encodings=encodings,  # type: ignore[arg-type]
        modalities=modalities,  # type: ignore[arg-type]
    )


def phantom(
    out: Annotated[Path, typer.Option(help="Folder for the DICOM files and truth.json.")],
    count: Annotated[int, typer.Option(help="Number of images.")] = 12,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same pixels.")] = 7,
    hands: Annotated[
        int | None, typer.Option(help="Hands per image, 1 or 2 (default 2; ra2dream: 1).")
    ] = None,
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
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="dicom (files and truth.json) or ra2dream ({Patient_ID}-{LH|RH}.jpg and "
            "training.csv in the RA2-DREAM columns, for `rascore site import`).",
        ),
    ] = "dicom",
    visits: Annotated[
        int,
        typer.Option(
            help="Visits per patient: 2 or more draws the same patients again years apart, "
            "damage never less, into DIR/visit-1/, DIR/visit-2/ … with DIR/visits.json."
        ),
    ] = 1,
    years_apart: Annotated[
        float, typer.Option(help="Years between visits (each jittered by up to three weeks).")
    ] = 2.0,
) -> None:
    """Generate synthetic hand radiographs (DICOM) with exact per-joint labels in truth.json
    (``--format ra2dream``: one JPEG per hand and an RA2-DREAM label table instead;
    ``--visits``: the same patients followed up, a folder and truth.json per visit)."""
    hands = _checked_options(count, fmt, visits, years_apart, hands)
    config = _phantom_config(hands, distribution, encoding, modality)
    if out.exists() and not out.is_dir():
        raise fail(f"{out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    if fmt == "ra2dream":
        _ra2dream(out, count, seed, config, jobs)
        return
    if visits > 1:
        _visits(out, (count, seed, visits, years_apart), config, jobs, gallery)
        return

    from worker.lab.phantom_export import generator_record
    from worker.lab.pool import map_in_processes

    want_tiles = gallery is not None
    tasks = [(seed, i, config, str(out), want_tiles and i < GALLERY_TILES) for i in range(count)]
    with Progress(console=err, transient=True) as progress:
        bar = progress.add_task("phantoms", total=count)
        made = map_in_processes(_phantom_job, tasks, jobs, lambda: progress.advance(bar))
    records = [record for record, _ in made]
    tiles = [tile for _, tile in made if tile is not None]

    truth = {"generator": generator_record(seed, count, config), "images": records}
    (out / "truth.json").write_text(json.dumps(truth, indent=1))
    if gallery is not None:
        gallery.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(gallery), contact_sheet(tiles))
        err.print(f"gallery: {gallery}")
    joints = sum(len(r["joints"]) for r in records)
    err.print(f"{count} images, {joints} joints, truth in {out / 'truth.json'}")


def _checked_options(
    count: int, fmt: str, visits: int, years_apart: float, hands: int | None
) -> int:
    """The hands per image the options ask for; exits 2 with one line on a bad option."""
    if count < 1:
        raise fail("--count must be at least 1")
    if fmt not in ("dicom", "ra2dream"):
        raise fail("--format must be 'dicom' or 'ra2dream'")
    if not 1 <= visits <= MAX_VISITS:
        raise fail(f"--visits must be between 1 and {MAX_VISITS}")
    if not 0 < years_apart <= MAX_YEARS_APART:
        raise fail(f"--years-apart must be above 0 and at most {MAX_YEARS_APART}")
    if visits > 1 and fmt != "dicom":
        raise fail("--visits works with --format dicom only")
    if fmt == "ra2dream" and hands not in (None, 1):
        raise fail("--format ra2dream has one hand per image: --hands 1")
    if hands is None:
        return 1 if fmt == "ra2dream" else 2
    return hands


def _visits(
    out: Path,
    plan: tuple[int, int, int, float],
    config: PhantomConfig,
    jobs: int,
    gallery: Path | None,
) -> None:
    """A follow-up set: ``plan`` is (count, seed, visits, years apart); the gallery shows the
    first patients' visits side by side."""
    from worker.lab.phantom_export import write_visit_image, write_visit_truth
    from worker.lab.pool import map_in_processes

    count, seed, visits, years = plan
    tasks = [
        (seed, index, number, visits, years, config, str(out))
        for index in range(count)
        for number in range(1, visits + 1)
    ]
    with Progress(console=err, transient=True) as progress:
        bar = progress.add_task("phantoms", total=len(tasks))
        records = map_in_processes(write_visit_image, tasks, jobs, lambda: progress.advance(bar))
    timeline = write_visit_truth(out, seed, count, visits, years, config, records)
    if gallery is not None:
        from scoring.phantom.visits import course, generate_visit_image

        tiles = []
        for seed_, index, number, _, _, _, _ in tasks[:GALLERY_TILES]:
            patient = course(seed_, study_layout(index, config.hands)[0], visits, years, config)
            tiles.append(
                annotated(generate_visit_image(seed_, index, number, patient, config), 560)
            )
        gallery.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(gallery), contact_sheet(tiles))
        err.print(f"gallery: {gallery}")
    patients = len(timeline["patients"])
    err.print(f"{patients} patients, {visits} visits, {len(tasks)} images, timeline in {out}")


def _ra2dream(out: Path, count: int, seed: int, config: PhantomConfig, jobs: int) -> None:
    from worker.lab.ra2dream_export import export_ra2dream

    with Progress(console=err, transient=True) as progress:
        bar = progress.add_task("phantoms", total=count)
        made = export_ra2dream(out, count, seed, config, jobs, lambda: progress.advance(bar))
    err.print(f"{count} hand images of {made['patients']} patients, labels in {made['table']}")


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
