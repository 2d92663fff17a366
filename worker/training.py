"""``rascore train``: the whole recipe — phantoms → crops → cascade → CNNs → evaluation → model.

Training images take the same road as images from a PACS: each phantom becomes a DICOM dataset
(dicom_io), is read back to display grey-scale (dicom_io) and only then clipped and learned from
(scoring), so the networks see exactly what they will see in service. Train, validation and test
sets come from different seeds, hence different patients.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dicom_io.reading import read_radiograph
from dicom_io.writing import build_radiograph
from scoring.bundle import MODEL_NAME, content_hash, device_uid, save_net
from scoring.cascade_training import CascadeRecipe, LabelledImage, train_cascade
from scoring.crops import crop_joint
from scoring.detection import working_image
from scoring.identify import HandTemplate
from scoring.phantom import GENERATOR_VERSION, PhantomConfig, generate_image
from scoring.training import CLIP_SIZE, CONTEXT, EpochLog, TrainConfig, TrainedNet, train_net
from worker.phantom_export import radiograph_spec, study_identity


@dataclass(frozen=True)
class PhantomSet:
    seed: int
    count: int
    distribution: str
    hands: int = 2


@dataclass(frozen=True)
class Recipe:
    """The committed recipe of the default model."""

    train: PhantomSet = PhantomSet(seed=1001, count=200, distribution="uniform")
    validation: PhantomSet = PhantomSet(seed=2002, count=40, distribution="uniform")
    test: PhantomSet = PhantomSet(seed=3003, count=30, distribution="table2")
    cascade_images: int = 80  #: of the training set, for the cascade
    cascade: CascadeRecipe = field(default_factory=CascadeRecipe)
    cnn: TrainConfig = field(default_factory=TrainConfig)
    #: detection settings stored with the model (cv2 detectMultiScale)
    min_neighbors: int = 2
    scale_factor: float = 1.1
    jobs: int = 2  #: processes making phantoms
    #: torch threads of the CNNs, which train while the cascade trainer uses ~1.2 cores
    cnn_threads: int = 1

    def small(self) -> Recipe:
        """A tiny recipe for smoke tests: really trains, in about a minute."""
        return Recipe(
            train=PhantomSet(seed=11, count=8, distribution="uniform"),
            validation=PhantomSet(seed=12, count=2, distribution="uniform"),
            test=PhantomSet(seed=13, count=2, distribution="table2"),
            cascade_images=8,
            # strict enough per stage that detection stays fast: a cascade that lets most
            # windows through makes OpenCV's grouping of its detections quadratic
            cascade=CascadeRecipe(stages=6, max_false_alarm=0.3, negative_tiles_per_image=40),
            cnn=TrainConfig(max_epochs=2, patience=2, batch_size=64),
            jobs=1,
        )


@dataclass
class Prepared:
    """What one phantom gives the training: a working image with boxes, clips and labels."""

    working: LabelledImage
    clips: np.ndarray
    jsn: np.ndarray
    erosion: np.ndarray
    hands: list[tuple[str, dict[str, tuple[float, float]], dict[str, float]]] = field(
        default_factory=list
    )


def prepare(args: tuple[PhantomSet, int]) -> Prepared:
    """Phantom → DICOM dataset → display grey-scale → working image, clips and labels."""
    phantom_set, index = args
    config = PhantomConfig(hands=phantom_set.hands, distribution=phantom_set.distribution)  # type: ignore[arg-type]
    image = generate_image(phantom_set.seed, index, config)
    ds = build_radiograph(
        radiograph_spec(phantom_set.seed, image), study_identity(phantom_set.seed, image)
    )
    grey = read_radiograph(ds).pixels
    spacing = image.acquisition.pixel_spacing_mm
    small, factor = working_image(grey, spacing)
    boxes = [tuple(v / factor for v in j.box) for j in image.joints]
    clips = np.stack([crop_joint(grey, j.box, CLIP_SIZE, CONTEXT) for j in image.joints])
    hands: list[tuple[str, dict[str, tuple[float, float]], dict[str, float]]] = []
    for side in image.hands:
        joints = [j for j in image.joints if j.side == side]
        hands.append(
            (
                side,
                {j.label[2:]: (j.center[0] * spacing, j.center[1] * spacing) for j in joints},
                {j.label[2:]: j.box[2] * spacing for j in joints},
            )
        )
    return Prepared(
        LabelledImage(small, boxes),  # type: ignore[arg-type]
        clips,
        np.array([j.jsn for j in image.joints], np.int64),
        np.array([j.erosion for j in image.joints], np.int64),
        hands,
    )


def prepare_set(phantom_set: PhantomSet, jobs: int, advance: Callable[[], None]) -> list[Prepared]:
    tasks = [(phantom_set, i) for i in range(phantom_set.count)]
    out = []
    if jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            for item in pool.map(prepare, tasks, chunksize=2):
                out.append(item)
                advance()
    else:
        for task in tasks:
            out.append(prepare(task))
            advance()
    return out


def _stack(items: list[Prepared]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.concatenate([p.clips for p in items]),
        np.concatenate([p.jsn for p in items]),
        np.concatenate([p.erosion for p in items]),
    )


def history_dict(trained: TrainedNet) -> dict[str, Any]:
    return {
        "best_epoch": trained.best_epoch,
        "epochs": [asdict(e) for e in trained.history],
    }


def write_model(
    out: Path,
    cascade_xml: Path,
    template: HandTemplate,
    jsn: TrainedNet,
    erosion: TrainedNet,
    recipe: Recipe,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """The model directory and its card (JSON and Markdown, evaluation added later)."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cascade_xml, out / "cascade.xml")
    (out / "layout.json").write_text(json.dumps(template.to_dict(), indent=1))
    save_net(jsn.net, out / "jsn.pt")
    save_net(erosion.net, out / "erosion.pt")
    digest = content_hash(out)
    card: dict[str, Any] = {
        "name": MODEL_NAME,
        "version": f"1.0.0+{digest[:12]}",
        "device_uid": device_uid(digest),
        "content_hash": digest,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "intended_use": (
            "Research and integration testing of the rascore node. NOT FOR DIAGNOSTIC USE. "
            "Trained on synthetic phantoms only; a site must retrain and validate on its own "
            "labelled radiographs before any clinical use."
        ),
        "method": "Hirano et al. 2019: Haar cascade (OpenCV 3.4 opencv_traincascade) for joint "
        "detection; CNNs for SvdH JSN (0-4) and erosion (0-5); joint identity by a fitted "
        "mean hand layout (rascore's addition).",
        "training_data": {
            "kind": "synthetic hand-radiograph phantom",
            "generator_version": GENERATOR_VERSION,
            "train": asdict(recipe.train),
            "validation": asdict(recipe.validation),
            "test": asdict(recipe.test),
        },
        "detector": {"min_neighbors": recipe.min_neighbors, "scale_factor": recipe.scale_factor},
        "recipe": {
            "cascade": asdict(recipe.cascade),
            "cascade_images": recipe.cascade_images,
            "cnn": asdict(recipe.cnn),
            "cnn_threads": recipe.cnn_threads,  # float sums, hence the weights, depend on it
        },
        "training": {
            "jsn": history_dict(jsn),
            "erosion": history_dict(erosion),
            **extra,
            "machine": f"{platform.machine()}, torch {torch.__version__}",
        },
    }
    (out / "card.json").write_text(json.dumps(card, indent=1))
    return card


def _ticker(advance: Callable[[], None]) -> Callable[[EpochLog], None]:
    """An epoch callback that moves a progress bar on."""

    def on_epoch(_log: EpochLog) -> None:
        advance()

    return on_epoch


def run_recipe(
    recipe: Recipe,
    out: Path,
    tool: Path,
    progress: Callable[[str, int], Callable[[], None]],
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Train everything and write the model directory ``out``; returns the card."""
    started = time.perf_counter()
    torch.set_num_threads(max(recipe.cnn_threads, 1))
    train = prepare_set(recipe.train, recipe.jobs, progress("train phantoms", recipe.train.count))
    val = prepare_set(
        recipe.validation, recipe.jobs, progress("validation phantoms", recipe.validation.count)
    )
    prepared_s = time.perf_counter() - started
    template = HandTemplate.learn([h for p in train for h in p.hands])

    # The cascade trainer keeps about 1.2 of the 2 cores busy (its negative mining is serial),
    # so the networks, which do not need the cascade, train beside it on one thread.
    log(
        f"cascade: {recipe.cascade_images} images, {recipe.cascade.stages} stages (beside the CNNs)"
    )
    cascade_dir = Path(tempfile.mkdtemp(prefix="rascore-cascade-"))
    cascade_result: dict[str, Any] = {}

    def cascade_job() -> None:
        t0 = time.perf_counter()
        try:
            cascade_result["xml"] = train_cascade(
                tool, [p.working for p in train[: recipe.cascade_images]], cascade_dir,
                recipe.cascade,
            )  # fmt: skip
        except BaseException as exc:  # re-raised in the main thread
            cascade_result["error"] = exc
        cascade_result["seconds"] = time.perf_counter() - t0

    cascade_thread = threading.Thread(target=cascade_job, name="cascade")
    cascade_thread.start()

    x_train, jsn_train, ero_train = _stack(train)
    x_val, jsn_val, ero_val = _stack(val)
    nets = {}
    cnn_s = {}
    for task, y_train, y_val in (("jsn", jsn_train, jsn_val), ("erosion", ero_train, ero_val)):
        t0 = time.perf_counter()
        advance = progress(f"{task} network (epochs)", recipe.cnn.max_epochs)
        nets[task] = train_net(
            task,  # type: ignore[arg-type]
            x_train,
            y_train,
            x_val,
            y_val,
            recipe.cnn,
            on_epoch=_ticker(advance),
        )
        cnn_s[task] = round(time.perf_counter() - t0, 1)
        log(f"{task}: best epoch {nets[task].best_epoch}")
    cascade_thread.join()
    if "error" in cascade_result:
        shutil.rmtree(cascade_dir, ignore_errors=True)
        raise cascade_result["error"]
    cascade_copy = Path(tempfile.mkdtemp(prefix="rascore-xml-")) / "cascade.xml"
    shutil.copyfile(cascade_result["xml"], cascade_copy)
    shutil.rmtree(cascade_dir, ignore_errors=True)
    cascade_s = cascade_result["seconds"]
    extra = {
        "clips": {"train": len(x_train), "validation": len(x_val)},
        "seconds": {
            "phantoms": round(prepared_s, 1),
            "cascade": round(cascade_s, 1),
            "cnn": cnn_s,
            "total": round(time.perf_counter() - started, 1),
        },
    }
    card = write_model(out, cascade_copy, template, nets["jsn"], nets["erosion"], recipe, extra)
    shutil.rmtree(cascade_copy.parent, ignore_errors=True)
    return card
