"""The training data of the recipe: phantoms and real landmarked hands, each taken the road an
image from a PACS takes (a DICOM dataset read back to display grey-scale by dicom_io), then
clipped and labelled for the networks (scoring)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dicom_io.radiograph import build_radiograph
from dicom_io.reading import read_radiograph
from scoring.crops import crop_joint
from scoring.detection.cascade import working_image
from scoring.detection.geometry import place_template
from scoring.detection.identify import HandTemplate
from scoring.joints import JOINT_NAMES
from scoring.phantom import PhantomConfig, generate_image
from scoring.training.cascade import LabelledImage
from scoring.training.cnn import CLIP_SIZE, CONTEXT
from scoring.training.keypoints import KeypointSample, shrink
from worker.lab.phantom_export import radiograph_spec, study_identity
from worker.lab.pool import map_in_processes
from worker.lab.real_images import LandmarkedImage, read_landmarks, read_picture, real_split


@dataclass(frozen=True)
class PhantomSet:
    seed: int
    count: int
    distribution: str
    hands: int = 2


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
    return map_in_processes(prepare_real, tasks, jobs, advance, chunksize=2)


def prepare_set(phantom_set: PhantomSet, jobs: int, advance: Callable[[], None]) -> list[Prepared]:
    tasks = [(phantom_set, i) for i in range(phantom_set.count)]
    return map_in_processes(prepare, tasks, jobs, advance, chunksize=2)


def stack_clips(items: list[Prepared]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The clips, JSN grades and erosion grades of ``items``, each as one array."""
    return (
        np.concatenate([p.clips for p in items]),
        np.concatenate([p.jsn for p in items]),
        np.concatenate([p.erosion for p in items]),
    )


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
