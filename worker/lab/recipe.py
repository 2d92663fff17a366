"""``rascore train``: the whole recipe — phantoms (and real landmarked hands) → detector
(keypoint network, or the paper's cascade) → CNNs → typicality → evaluation → model.

Training images take the same road as images from a PACS: each phantom becomes a DICOM dataset
(dicom_io), is read back to display grey-scale (dicom_io) and only then clipped and learned from
(scoring), so the networks see exactly what they will see in service. Train, validation and test
sets come from different seeds, hence different patients.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scoring.cnn import CLASSES, predict_with_features
from scoring.detection.identify import HandTemplate
from scoring.phantom.disease import TABLE2_EROSION, TABLE2_JSN
from scoring.pipeline import Abstention
from scoring.training.cascade import CascadeRecipe, LabelledImage, train_cascade
from scoring.training.cnn import EpochLog, TrainConfig, TrainedNet, centre, train_net
from scoring.training.keypoints import KeypointConfig, TrainedKeypoints, train_keypoints
from scoring.typicality import Typicality
from worker.lab.model_writer import Trained, write_model
from worker.lab.training_data import (
    PhantomSet,
    Prepared,
    RealData,
    RealPrepared,
    prepare_real_set,
    prepare_set,
    stack_clips,
)

#: ``progress(name, total)`` makes a progress bar and returns what advances it
Progress = Callable[[str, int], Callable[[], None]]


@dataclass(frozen=True)
class Recipe:
    """The committed recipe of the default model."""

    # PhantomSet is frozen: one shared default is safe
    train: PhantomSet = PhantomSet(seed=1001, count=200, distribution="uniform")  # noqa: RUF009
    validation: PhantomSet = PhantomSet(seed=2002, count=40, distribution="uniform")  # noqa: RUF009
    test: PhantomSet = PhantomSet(seed=3003, count=30, distribution="table2")  # noqa: RUF009
    #: "keypoints" (the heat-map network, the default) or "cascade" (the paper's detector)
    detector: str = "keypoints"
    cascade_images: int = 80  #: of the training set, for the cascade
    cascade: CascadeRecipe = field(default_factory=CascadeRecipe)
    keypoint_images: int = 160  #: of the training set, for the keypoint network
    keypoints: KeypointConfig = field(default_factory=KeypointConfig)
    #: each real training hand is shown this many times per keypoint epoch: there are few
    real_repeat: int = 2
    #: every n-th real training hand (by id) is held out to choose epochs and thresholds; the
    #: real validation split is never seen by training
    real_tuning_every: int = 7
    cnn: TrainConfig = field(default_factory=TrainConfig)
    abstention: Abstention = field(default_factory=Abstention)
    #: tasks whose probabilities are moved from the training frequencies to the paper's
    #: Table 2 (real RA joints): erosion, where Table 2 is mostly 0 and the uniform training
    #: phantoms made the network call erosions on healthy joints. Not JSN: Table 2's PIP
    #: joints are mostly grade 2-3 (an established-RA cohort), and moving towards them would
    #: call narrowing on healthy joints.
    class_prior_tasks: tuple[str, ...] = ("erosion",)
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
            keypoint_images=8,
            keypoints=KeypointConfig(max_epochs=2, patience=2, batch_size=4),
            real_tuning_every=3,
            cnn=TrainConfig(max_epochs=2, patience=2, batch_size=64),
            jobs=1,
            detector=self.detector,
        )

    def with_detector(self, detector: str) -> Recipe:
        if detector not in ("keypoints", "cascade"):
            raise ValueError(f"unknown detector {detector!r}: keypoints or cascade")
        return replace(self, detector=detector)


def _ticker(advance: Callable[[], None]) -> Callable[[EpochLog], None]:
    """An epoch callback that moves a progress bar on."""

    def on_epoch(_log: EpochLog) -> None:
        advance()

    return on_epoch


def _clip_features(trained: dict[str, TrainedNet], clips: np.ndarray) -> np.ndarray:
    """Both networks' hidden activations of the clips' joint boxes (no augmentation)."""
    boxes = centre(clips)
    parts = []
    for task in ("jsn", "erosion"):
        chunks = [
            predict_with_features(trained[task].net, boxes[i : i + 2048])[1]
            for i in range(0, len(boxes), 2048)
        ]
        parts.append(np.concatenate(chunks) if chunks else np.zeros((0, 512), np.float32))
    return np.hstack(parts)


@dataclass
class _Data:
    """The prepared phantoms and real hands of a run, and the template learnt from them."""

    train: list[Prepared]
    val: list[Prepared]
    template: HandTemplate
    real: RealData | None
    real_train: list[RealPrepared]
    real_tuning: list[RealPrepared]


def _prepare(recipe: Recipe, progress: Progress, real_folder: Path | None) -> _Data:
    train = prepare_set(recipe.train, recipe.jobs, progress("train phantoms", recipe.train.count))
    val = prepare_set(
        recipe.validation, recipe.jobs, progress("validation phantoms", recipe.validation.count)
    )
    template = HandTemplate.learn([h for p in train for h in p.hands])
    real = RealData.load(real_folder, recipe.real_tuning_every) if real_folder else None
    real_train: list[RealPrepared] = []
    real_tuning: list[RealPrepared] = []
    if real is not None:
        real_train = prepare_real_set(
            real.train, template, recipe.jobs, progress("real hands", len(real.train))
        )
        real_tuning = prepare_real_set(
            real.tuning, template, recipe.jobs, progress("real tuning hands", len(real.tuning))
        )
    return _Data(train, val, template, real, real_train, real_tuning)


class _CascadeRun:
    """The cascade trained in a thread: the trainer keeps about 1.2 of the 2 cores busy (its
    negative mining is serial), so the networks, which do not need the cascade, train beside
    it."""

    def __init__(self, tool: Path, images: list[LabelledImage], recipe: CascadeRecipe) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="rascore-cascade-"))
        self.result: dict[str, Any] = {}
        self.thread = threading.Thread(
            target=self._run, args=(tool, images, recipe), name="cascade"
        )
        self.thread.start()

    def _run(self, tool: Path, images: list[LabelledImage], recipe: CascadeRecipe) -> None:
        t0 = time.perf_counter()
        try:
            self.result["xml"] = train_cascade(tool, images, self.folder, recipe)
        except BaseException as exc:  # re-raised in the main thread
            self.result["error"] = exc
        self.result["seconds"] = time.perf_counter() - t0

    def join(self) -> tuple[Path, float]:
        """The trained cascade (copied out of the trainer's folder, which is removed) and its
        seconds; the trainer's error, raised here."""
        self.thread.join()
        try:
            if "error" in self.result:
                raise self.result["error"]
            xml = Path(tempfile.mkdtemp(prefix="rascore-xml-")) / "cascade.xml"
            shutil.copyfile(self.result["xml"], xml)
            return xml, self.result["seconds"]
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def _start_cascade(
    recipe: Recipe, tool: Path | None, data: _Data, log: Callable[[str], None]
) -> _CascadeRun:
    if tool is None:
        raise ValueError("the cascade detector needs opencv_traincascade")
    # real hands join the phantoms as positives, their DIP joints as hard negatives
    images = [p.working for p in data.train[: recipe.cascade_images]]
    images += [r.working for r in data.real_train if r.working is not None]
    log(f"cascade: {len(images)} images, {recipe.cascade.stages} stages")
    return _CascadeRun(tool, images, recipe.cascade)


def _train_keypoints(
    recipe: Recipe, data: _Data, progress: Progress, log: Callable[[str], None]
) -> TrainedKeypoints:
    kp_train = [p.keypoints for p in data.train[: recipe.keypoint_images] if p.keypoints]
    kp_train += [r.keypoints for r in data.real_train] * recipe.real_repeat
    kp_val = [p.keypoints for p in data.val if p.keypoints]
    kp_val += [r.keypoints for r in data.real_tuning]
    advance = progress("keypoint network (epochs)", recipe.keypoints.max_epochs)
    keypoints = train_keypoints(kp_train, kp_val, recipe.keypoints, on_epoch=lambda _e: advance())
    log(f"keypoints: best epoch {keypoints.best_epoch}")
    return keypoints


@dataclass
class _Clips:
    """The networks' clips and grades: phantoms', with real healthy joints as JSN 0 and
    erosion 0."""

    x_train: np.ndarray
    x_val: np.ndarray
    labels_train: dict[str, np.ndarray]
    labels_val: dict[str, np.ndarray]
    counts: dict[str, int]

    @classmethod
    def of(cls, data: _Data) -> _Clips:
        x_train, jsn_train, ero_train = stack_clips(data.train)
        x_val, jsn_val, ero_val = stack_clips(data.val)
        real = [r.clips for r in data.real_train]
        tuning = [r.clips for r in data.real_tuning]
        x_real = np.concatenate(real) if real else x_train[:0]
        x_tune = np.concatenate(tuning) if tuning else x_val[:0]
        zeros_real = np.zeros(len(x_real), np.int64)
        zeros_tune = np.zeros(len(x_tune), np.int64)
        return cls(
            np.concatenate([x_train, x_real]),
            np.concatenate([x_val, x_tune]),
            {
                "jsn": np.concatenate([jsn_train, zeros_real]),
                "erosion": np.concatenate([ero_train, zeros_real]),
            },
            {
                "jsn": np.concatenate([jsn_val, zeros_tune]),
                "erosion": np.concatenate([ero_val, zeros_tune]),
            },
            {
                "train": len(x_train),
                "validation": len(x_val),
                "real_train": len(x_real),
                "real_tuning": len(x_tune),
            },
        )


def _train_cnns(
    recipe: Recipe, clips: _Clips, progress: Progress, log: Callable[[str], None]
) -> tuple[dict[str, TrainedNet], dict[str, float]]:
    nets: dict[str, TrainedNet] = {}
    seconds = {}
    for task in ("jsn", "erosion"):
        t0 = time.perf_counter()
        advance = progress(f"{task} network (epochs)", recipe.cnn.max_epochs)
        nets[task] = train_net(
            task,
            clips.x_train,
            clips.labels_train[task],
            clips.x_val,
            clips.labels_val[task],
            recipe.cnn,
            on_epoch=_ticker(advance),
        )
        seconds[task] = round(time.perf_counter() - t0, 1)
        log(f"{task}: best epoch {nets[task].best_epoch}")
    return nets, seconds


def _class_prior(recipe: Recipe, train_labels: dict[str, np.ndarray]) -> dict[str, Any]:
    """The training frequencies of the prior tasks and the paper's Table 2 to move them to."""
    return {
        "train": {
            t: np.bincount(train_labels[t], minlength=CLASSES[t]).tolist()
            for t in recipe.class_prior_tasks
        },
        "target": {
            t: {g: list(v) for g, v in (TABLE2_JSN if t == "jsn" else TABLE2_EROSION).items()}
            for t in recipe.class_prior_tasks
        },
        "source": "Hirano et al. 2019, Table 2 (1,860 real RA joints)",
    }


def run_recipe(
    recipe: Recipe,
    out: Path,
    tool: Path | None,
    progress: Progress,
    log: Callable[[str], None],
    real_folder: Path | None = None,
) -> dict[str, Any]:
    """Train everything and write the model directory ``out``; returns the card. ``tool`` is
    opencv_traincascade, needed for the cascade detector only."""
    started = time.perf_counter()
    torch.set_num_threads(max(recipe.cnn_threads, 1))
    data = _prepare(recipe, progress, real_folder)
    seconds: dict[str, Any] = {"preparation": round(time.perf_counter() - started, 1)}
    cascade = None
    if recipe.detector == "cascade":
        cascade = _start_cascade(recipe, tool, data, log)
    else:
        torch.set_num_threads(2)
    keypoints: TrainedKeypoints | None = None
    if recipe.detector == "keypoints":
        t0 = time.perf_counter()
        keypoints = _train_keypoints(recipe, data, progress, log)
        seconds["keypoints"] = round(time.perf_counter() - t0, 1)
    clips = _Clips.of(data)
    nets, seconds["cnn"] = _train_cnns(recipe, clips, progress, log)
    typicality = Typicality.fit(
        _clip_features(nets, clips.x_train), _clip_features(nets, clips.x_val)
    )
    detector: Path | TrainedKeypoints
    if cascade is not None:
        detector, cascade_s = cascade.join()
        seconds["cascade"] = round(cascade_s, 1)
    else:
        assert keypoints is not None
        detector = keypoints
    seconds["total"] = round(time.perf_counter() - started, 1)
    extra: dict[str, Any] = {
        "clips": clips.counts,
        "typicality_threshold": round(typicality.threshold, 3),
        "seconds": seconds,
    }
    if keypoints is not None:
        extra["keypoints"] = {
            "best_epoch": keypoints.best_epoch,
            "epochs": [asdict(e) for e in keypoints.history],
        }
    trained = Trained(detector, data.template, nets["jsn"], nets["erosion"], typicality)
    prior = _class_prior(recipe, clips.labels_train) if recipe.class_prior_tasks else None
    card = write_model(out, trained, recipe, extra, data.real, prior)
    if isinstance(detector, Path):
        shutil.rmtree(detector.parent, ignore_errors=True)
    return card
