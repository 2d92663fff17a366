"""``rascore train``: the whole recipe — phantoms (and real landmarked hands) → detector
(keypoint network, or the paper's cascade) → CNNs → typicality → evaluation → model.

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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dicom_io.radiograph import build_radiograph
from dicom_io.reading import read_radiograph
from scoring.cnn import CLASSES, predict_with_features
from scoring.crops import crop_joint
from scoring.detection.cascade import working_image
from scoring.detection.geometry import place_template
from scoring.detection.identify import HandTemplate
from scoring.joints import JOINT_NAMES
from scoring.model import MODEL_NAME, content_hash, device_uid, save_net
from scoring.phantom import GENERATOR_VERSION, PhantomConfig, generate_image
from scoring.phantom.disease import TABLE2_EROSION, TABLE2_JSN
from scoring.pipeline import Abstention
from scoring.training.cascade import CascadeRecipe, LabelledImage, train_cascade
from scoring.training.cnn import (
    CLIP_SIZE,
    CONTEXT,
    EpochLog,
    TrainConfig,
    TrainedNet,
    centre,
    train_net,
)
from scoring.training.keypoints import (
    KeypointConfig,
    KeypointSample,
    TrainedKeypoints,
    shrink,
    train_keypoints,
)
from scoring.typicality import Typicality
from worker.lab.phantom_export import radiograph_spec, study_identity
from worker.lab.real_images import LandmarkedImage, read_landmarks, read_picture, real_split


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
    keypoints: KeypointSample | None = None


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
    points = [(JOINT_NAMES.index(j.label[2:]), *j.center) for j in image.joints]
    return Prepared(
        LabelledImage(small, boxes),  # type: ignore[arg-type]
        clips,
        np.array([j.jsn for j in image.joints], np.int64),
        np.array([j.erosion for j in image.joints], np.int64),
        hands,
        shrink(grey, points, "phantom"),
    )


@dataclass
class RealPrepared:
    """What one real landmarked hand gives the training: the keypoint sample, and clips of
    its healthy joints (JSN 0, erosion 0) sized from the hand itself."""

    image_id: str
    keypoints: KeypointSample
    clips: np.ndarray
    #: the hand at the cascade's working scale (spacing estimated from the hand), its joint
    #: boxes and its DIP joints as look-alikes; None when the hand could not be placed
    working: LabelledImage | None = None


def prepare_real(args: tuple[LandmarkedImage, HandTemplate]) -> RealPrepared:
    """Real picture → CR dataset without spacing → display grey-scale → sample and clips."""
    landmarked, template = args
    grey = read_picture(landmarked.path).pixels
    centres = landmarked.joint_centres()
    points = [(JOINT_NAMES.index(n), x, y) for n, (x, y) in centres.items()]
    placed = place_template(template, centres)
    clips = []
    working = None
    if placed is not None:
        boxes = []
        for name, (x, y) in centres.items():
            side = placed.box_side(template, name)
            box = (x - side / 2, y - side / 2, side, side)
            boxes.append(box)
            clips.append(crop_joint(grey, box, CLIP_SIZE, CONTEXT))
        # DIP joints are a little smaller than PIP joints
        dip_side = 0.8 * float(np.mean([placed.box_side(template, f"PIP{k}") for k in range(2, 6)]))
        dips = [
            (x - dip_side / 2, y - dip_side / 2, dip_side, dip_side)
            for x, y in landmarked.dips().values()
        ]
        small, factor = working_image(grey, 1.0 / placed.scale)
        working = LabelledImage(
            small,
            [tuple(v / factor for v in b) for b in boxes],  # type: ignore[misc]
            [tuple(v / factor for v in b) for b in dips],  # type: ignore[misc]
        )
    return RealPrepared(
        landmarked.image_id,
        shrink(grey, points, "real"),
        np.asarray(clips, np.uint8).reshape(-1, CLIP_SIZE, CLIP_SIZE),
        working,
    )


def prepare_real_set(
    images: list[LandmarkedImage], template: HandTemplate, jobs: int, advance: Callable[[], None]
) -> list[RealPrepared]:
    tasks = [(image, template) for image in images]
    if jobs <= 1:
        out = []
        for task in tasks:
            out.append(prepare_real(task))
            advance()
        return out
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        out = []
        for item in pool.map(prepare_real, tasks, chunksize=2):
            out.append(item)
            advance()
        return out


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


@dataclass
class RealData:
    """The real landmarked hands of a training run, split once by image."""

    folder: Path
    train: list[LandmarkedImage]  #: for fitting
    tuning: list[LandmarkedImage]  #: of the training split, held out for choices
    validation: list[LandmarkedImage]  #: the validation split: never seen by training

    @classmethod
    def load(cls, folder: Path, every: int) -> RealData:
        images = read_landmarks(folder / "landmarks.csv", folder)
        train = [i for i in images if real_split(i.image_id) == "train"]
        tuning = train[::every]
        return cls(
            folder,
            [i for i in train if i not in tuning],
            tuning,
            [i for i in images if real_split(i.image_id) == "validation"],
        )

    def card(self) -> dict[str, Any]:
        return {
            "kind": "real hand radiographs with landmarks (Digital Hand Atlas format)",
            "note": "children and teens 0-18, healthy hands (every joint taken as JSN 0, "
            "erosion 0), scanned films without pixel spacing; research use only; the images "
            "are not part of the model",
            "split": (
                "by image, fixed by a hash of the image id (worker.lab.real_images.real_split)"
            ),
            "train": len(self.train),
            "tuning": len(self.tuning),
            "validation": len(self.validation),
            "tuning_ids": [i.image_id for i in self.tuning],
            "validation_ids": [i.image_id for i in self.validation],
        }


def write_model(
    out: Path,
    detector: Path | TrainedKeypoints,
    template: HandTemplate,
    jsn: TrainedNet,
    erosion: TrainedNet,
    typicality: Typicality,
    recipe: Recipe,
    extra: dict[str, Any],
    real: RealData | None,
    class_prior: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The model directory and its card (JSON and Markdown, evaluation added later)."""
    out.mkdir(parents=True, exist_ok=True)
    for name in ("cascade.xml", "keypoints.pt"):  # a model holds the one detector it names
        (out / name).unlink(missing_ok=True)
    if isinstance(detector, Path):
        shutil.copyfile(detector, out / "cascade.xml")
        detector_card: dict[str, Any] = {
            "kind": "cascade",
            "min_neighbors": recipe.min_neighbors,
            "scale_factor": recipe.scale_factor,
        }
        method = "Haar cascade (OpenCV 3.4 opencv_traincascade) for joint detection"
    else:
        save_net(detector.net, out / "keypoints.pt")
        detector_card = {"kind": "keypoints"}
        method = (
            "a heat-map keypoint network for joint detection (rascore's, in place of the "
            "paper's Haar cascade)"
        )
    (out / "layout.json").write_text(json.dumps(template.to_dict(), indent=1))
    save_net(jsn.net, out / "jsn.pt")
    save_net(erosion.net, out / "erosion.pt")
    typicality.save(out / "typicality.npz")
    settings: dict[str, Any] = {"abstention": asdict(recipe.abstention)}
    if class_prior:
        settings["class_prior"] = class_prior
    (out / "settings.json").write_text(json.dumps(settings, indent=1))
    digest = content_hash(out)
    training_data: dict[str, Any] = {
        "kind": "synthetic hand-radiograph phantom"
        + (" and real landmarked hands" if real else ""),
        "generator_version": GENERATOR_VERSION,
        "train": asdict(recipe.train),
        "validation": asdict(recipe.validation),
        "test": asdict(recipe.test),
    }
    if real is not None:
        training_data["real"] = real.card()
    card: dict[str, Any] = {
        "name": MODEL_NAME,
        "version": f"1.1.0+{digest[:12]}",
        "device_uid": device_uid(digest),
        "content_hash": digest,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "intended_use": (
            "Research and integration testing of the rascore node. NOT FOR DIAGNOSTIC USE. "
            "Trained on synthetic phantoms"
            + (" and healthy children's hands (no RA damage)" if real else " only")
            + "; a site must retrain and validate on its own labelled radiographs before any "
            "clinical use."
        ),
        "method": f"After Hirano et al. 2019: {method}; CNNs for SvdH JSN (0-4) and erosion "
        "(0-5); joints whose clips are unlike the training clips, or whose grade the network "
        "is unsure of, are reported as not assessable.",
        "training_data": training_data,
        "detector": detector_card,
        "abstention": asdict(recipe.abstention),
        "class_prior": class_prior or {},
        "recipe": {
            "detector": recipe.detector,
            "cascade": asdict(recipe.cascade),
            "cascade_images": recipe.cascade_images,
            "keypoints": asdict(recipe.keypoints),
            "keypoint_images": recipe.keypoint_images,
            "real_repeat": recipe.real_repeat,
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


def run_recipe(
    recipe: Recipe,
    out: Path,
    tool: Path | None,
    progress: Callable[[str, int], Callable[[], None]],
    log: Callable[[str], None],
    real_folder: Path | None = None,
) -> dict[str, Any]:
    """Train everything and write the model directory ``out``; returns the card. ``tool`` is
    opencv_traincascade, needed for the cascade detector only."""
    started = time.perf_counter()
    torch.set_num_threads(max(recipe.cnn_threads, 1))
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
    prepared_s = time.perf_counter() - started

    cascade_result: dict[str, Any] = {}
    cascade_dir = Path(tempfile.mkdtemp(prefix="rascore-cascade-"))
    cascade_thread: threading.Thread | None = None
    if recipe.detector == "cascade":
        if tool is None:
            raise ValueError("the cascade detector needs opencv_traincascade")
        # The cascade trainer keeps about 1.2 of the 2 cores busy (its negative mining is
        # serial), so the networks, which do not need the cascade, train beside it.
        # real hands join the phantoms as positives, their DIP joints as hard negatives
        cascade_images = [p.working for p in train[: recipe.cascade_images]]
        cascade_images += [r.working for r in real_train if r.working is not None]
        log(f"cascade: {len(cascade_images)} images, {recipe.cascade.stages} stages")

        def cascade_job() -> None:
            t0 = time.perf_counter()
            try:
                cascade_result["xml"] = train_cascade(
                    tool, cascade_images, cascade_dir, recipe.cascade
                )
            except BaseException as exc:  # re-raised in the main thread
                cascade_result["error"] = exc
            cascade_result["seconds"] = time.perf_counter() - t0

        cascade_thread = threading.Thread(target=cascade_job, name="cascade")
        cascade_thread.start()
    else:
        torch.set_num_threads(2)

    seconds: dict[str, Any] = {"preparation": round(prepared_s, 1)}
    keypoints: TrainedKeypoints | None = None
    if recipe.detector == "keypoints":
        t0 = time.perf_counter()
        kp_train = [p.keypoints for p in train[: recipe.keypoint_images] if p.keypoints]
        kp_train += [r.keypoints for r in real_train] * recipe.real_repeat
        kp_val = [p.keypoints for p in val if p.keypoints] + [r.keypoints for r in real_tuning]
        advance = progress("keypoint network (epochs)", recipe.keypoints.max_epochs)
        keypoints = train_keypoints(
            kp_train, kp_val, recipe.keypoints, on_epoch=lambda _e: advance()
        )
        seconds["keypoints"] = round(time.perf_counter() - t0, 1)
        log(f"keypoints: best epoch {keypoints.best_epoch}")

    # Real healthy joints join the phantoms' clips as JSN 0 / erosion 0.
    real_clips = [r.clips for r in real_train]
    tuning_clips = [r.clips for r in real_tuning]
    x_train, jsn_train, ero_train = _stack(train)
    x_val, jsn_val, ero_val = _stack(val)
    x_real = np.concatenate(real_clips) if real_clips else x_train[:0]
    x_tune = np.concatenate(tuning_clips) if tuning_clips else x_val[:0]
    x_train_all = np.concatenate([x_train, x_real])
    x_val_all = np.concatenate([x_val, x_tune])
    zeros_real = np.zeros(len(x_real), np.int64)
    zeros_tune = np.zeros(len(x_tune), np.int64)
    nets: dict[str, TrainedNet] = {}
    cnn_s = {}
    for task, y_train, y_val in (
        ("jsn", np.concatenate([jsn_train, zeros_real]), np.concatenate([jsn_val, zeros_tune])),
        (
            "erosion",
            np.concatenate([ero_train, zeros_real]),
            np.concatenate([ero_val, zeros_tune]),
        ),
    ):
        t0 = time.perf_counter()
        advance = progress(f"{task} network (epochs)", recipe.cnn.max_epochs)
        nets[task] = train_net(
            task,  # type: ignore[arg-type]
            x_train_all,
            y_train,
            x_val_all,
            y_val,
            recipe.cnn,
            on_epoch=_ticker(advance),
        )
        cnn_s[task] = round(time.perf_counter() - t0, 1)
        log(f"{task}: best epoch {nets[task].best_epoch}")
    seconds["cnn"] = cnn_s
    typicality = Typicality.fit(_clip_features(nets, x_train_all), _clip_features(nets, x_val_all))

    detector: Path | TrainedKeypoints
    if cascade_thread is not None:
        cascade_thread.join()
        if "error" in cascade_result:
            shutil.rmtree(cascade_dir, ignore_errors=True)
            raise cascade_result["error"]
        detector = Path(tempfile.mkdtemp(prefix="rascore-xml-")) / "cascade.xml"
        shutil.copyfile(cascade_result["xml"], detector)
        seconds["cascade"] = round(cascade_result["seconds"], 1)
    else:
        assert keypoints is not None
        detector = keypoints
    shutil.rmtree(cascade_dir, ignore_errors=True)
    seconds["total"] = round(time.perf_counter() - started, 1)
    extra: dict[str, Any] = {
        "clips": {
            "train": len(x_train),
            "validation": len(x_val),
            "real_train": len(x_real),
            "real_tuning": len(x_tune),
        },
        "typicality_threshold": round(typicality.threshold, 3),
        "seconds": seconds,
    }
    if keypoints is not None:
        extra["keypoints"] = {
            "best_epoch": keypoints.best_epoch,
            "epochs": [asdict(e) for e in keypoints.history],
        }
    train_labels = {
        "jsn": np.concatenate([jsn_train, zeros_real]),
        "erosion": np.concatenate([ero_train, zeros_real]),
    }
    class_prior = {
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
    card = write_model(
        out,
        detector,
        template,
        nets["jsn"],
        nets["erosion"],
        typicality,
        recipe,
        extra,
        real,
        class_prior if recipe.class_prior_tasks else None,
    )
    if isinstance(detector, Path):
        shutil.rmtree(detector.parent, ignore_errors=True)
    return card
