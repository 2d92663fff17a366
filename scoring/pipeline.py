"""Image in, joints and scores out: detect → identify → clip → score (both networks, batched).

The input is a display-ready grey-scale array (bone bright, 0–1) with its pixel spacing and
laterality; the output is plain dataclasses. Nothing here knows DICOM, networking or SQL.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .bundle import ModelBundle
from .cnn import INPUT_SIZE, predict
from .crops import crop_joint
from .detection import CascadeDetector, working_image
from .identify import Detection, identify
from .phantom.model import JOINT_NAMES, joint_type

#: assumed when the image carries no pixel spacing (typical of CR hand plates)
FALLBACK_SPACING_MM = 0.15
#: the most confident detections kept for identification: two hands have 20 scored joints,
#: and a weak cascade or an unusual image must not make identification take minutes
MAX_CANDIDATES = 60


#: an image whose hands have fewer assessable joints than this fraction of the expected ones
#: gets the status "too few assessable joints": its totals cover too little of the hand
MIN_ASSESSABLE_FRACTION = 0.5


@dataclass(frozen=True)
class ScoredJoint:
    """One found joint. A joint the model will not grade keeps its place and box, with
    ``jsn``/``erosion`` None, ``assessable`` False and the ``reason`` (never a guessed grade)."""

    label: str
    joint_type: str
    box: tuple[int, int, int, int]  #: x, y, w, h in pixels of the input image
    jsn: int | None
    erosion: int | None
    jsn_probs: tuple[float, ...]
    erosion_probs: tuple[float, ...]
    confidence: float  #: the detector's confidence for this joint
    #: "keypoints", "cascade", or "cascade-local" when found by the search where it belonged
    found_by: str
    assessable: bool = True
    reason: str = ""  #: why a joint is not assessable, e.g. "unlike the training images"


@dataclass(frozen=True)
class ImageScore:
    #: "scored"; "partial" (some expected joints not found or not imaged); "too few assessable
    #: joints"; or "no hand found"
    status: str
    joints: tuple[ScoredJoint, ...]
    hands: tuple[str, ...]
    missing: tuple[str, ...]  #: expected joints that were not found
    unplaced: tuple[tuple[int, int, int, int], ...]  #: detections that are no scored joint
    spacing_mm: float
    spacing_assumed: bool
    timings_ms: dict[str, float] = field(default_factory=dict)
    #: label → why an expected joint is missing: "not imaged" (outside the image or the
    #: collimation) or "not found"
    missing_reasons: dict[str, str] = field(default_factory=dict)

    @property
    def total_jsn(self) -> int:
        """Sum over the assessable joints only: read it with ``joints_scored``."""
        return sum(j.jsn for j in self.joints if j.jsn is not None)

    @property
    def total_erosion(self) -> int:
        return sum(j.erosion for j in self.joints if j.erosion is not None)

    @property
    def joints_scored(self) -> int:
        """How many joints the totals cover."""
        return sum(1 for j in self.joints if j.assessable)

    @property
    def joints_expected(self) -> int:
        return 10 * len(self.hands)


class Scorer:
    """A loaded model, ready to score many images (load once per process)."""

    def __init__(self, bundle: ModelBundle) -> None:
        self.bundle = bundle
        settings = bundle.card.get("detector", {})
        self.detector = CascadeDetector(bundle.cascade_path, **settings)

    @classmethod
    def load(cls, directory: Path | None = None) -> Scorer:
        return cls(ModelBundle.load(directory))

    def score(self, grey: np.ndarray, spacing_mm: float | None, laterality: str) -> ImageScore:
        timings: dict[str, float] = {}
        start = time.perf_counter()
        spacing = spacing_mm or FALLBACK_SPACING_MM
        small, factor = working_image(grey, spacing)
        detections = sorted(self.detector.detect(small, factor), key=lambda d: -d.confidence)
        detections = detections[:MAX_CANDIDATES]
        timings["detect"] = (time.perf_counter() - start) * 1e3

        start = time.perf_counter()
        found = identify(detections, spacing, laterality, self.bundle.template)
        found_by = {label: "cascade" for label in found.joints}
        for label, centre in found.missing.items():
            extra = self.detector.detect_near(small, factor, centre, found.expected_size[label])
            if extra is not None:
                found.joints[label] = extra
                found_by[label] = "cascade-local"
        missing = tuple(sorted(set(found.missing) - set(found.joints)))
        timings["identify"] = (time.perf_counter() - start) * 1e3

        start = time.perf_counter()
        labels = sorted(found.joints, key=_report_order)
        boxes = [_square(found.joints[label], found.expected_size[label]) for label in labels]
        clips = (
            np.stack([crop_joint(grey, box, INPUT_SIZE) for box in boxes])
            if boxes
            else np.zeros((0, INPUT_SIZE, INPUT_SIZE), np.uint8)
        )
        jsn_probs = predict(self.bundle.jsn, clips)
        erosion_probs = predict(self.bundle.erosion, clips)
        timings["score"] = (time.perf_counter() - start) * 1e3

        joints = tuple(
            ScoredJoint(
                label=label,
                joint_type=joint_type(label.split("_", 1)[1]),
                box=box,
                jsn=int(np.argmax(jsn_probs[i])),
                erosion=int(np.argmax(erosion_probs[i])),
                jsn_probs=tuple(round(float(p), 6) for p in jsn_probs[i]),
                erosion_probs=tuple(round(float(p), 6) for p in erosion_probs[i]),
                confidence=round(found.joints[label].confidence, 4),
                found_by=found_by[label],
            )
            for i, (label, box) in enumerate(zip(labels, boxes, strict=True))
        )
        status = "no hand found" if not joints else "partial" if missing else "scored"
        return ImageScore(
            status=status,
            joints=joints,
            hands=tuple(found.hands),
            missing=missing,
            unplaced=tuple(_square(d) for d in found.unplaced),
            spacing_mm=spacing,
            spacing_assumed=spacing_mm is None,
            timings_ms={k: round(v, 2) for k, v in timings.items()},
        )


def _square(detection: Detection, side: float | None = None) -> tuple[int, int, int, int]:
    """A square box (x, y, w, h) around the detection's centre, ``side`` wide (default: the
    detection's own larger side)."""
    x, y, w, h = detection.box
    side = side or max(w, h)
    cx, cy = x + w / 2, y + h / 2
    return (
        round(cx - side / 2),
        round(cy - side / 2),
        round(side),
        round(side),
    )


def _report_order(label: str) -> tuple[int, int]:
    side, name = label.split("_", 1)
    return (0 if side == "R" else 1, JOINT_NAMES.index(name))
