"""Image in, joints and scores out: detect → identify → clip → score (both networks, batched).

The input is a display-ready grey-scale array (bone bright, 0–1) with its pixel spacing and
laterality; the output is plain dataclasses. Nothing here knows DICOM, networking or SQL.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .cnn import INPUT_SIZE, predict_with_features
from .crops import crop_joint
from .detection.cascade import CascadeDetector, working_image
from .detection.hands import find_hands, load_keypoint_net
from .detection.identify import Detection, identify
from .detection.keypoints import KeypointNet
from .joints import JOINT_NAMES, joint_type
from .model.bundle import ModelBundle

#: assumed when the image carries no pixel spacing (typical of CR hand plates)
FALLBACK_SPACING_MM = 0.15
#: pixel spacing a hand radiograph can have, mm (detectors 0.05–0.2, scanned films up to about
#: 1); a spacing outside is ignored as if absent, whatever the caller checked before
PLAUSIBLE_SPACING_MM = (0.02, 2.0)
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
    #: why the spacing given was not used ("" when it was, or none was given)
    spacing_note: str = ""

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


@dataclass(frozen=True)
class _Located:
    """A joint placed by a detector, before scoring."""

    label: str
    box: tuple[int, int, int, int]
    confidence: float
    found_by: str


@dataclass
class _Detected:
    joints: list[_Located]
    hands: tuple[str, ...]
    missing: dict[str, str]  #: label → "not imaged" or "not found"
    unplaced: tuple[tuple[int, int, int, int], ...]
    spacing_mm: float
    spacing_assumed: bool


@dataclass(frozen=True)
class Abstention:
    """When a joint is reported as not assessable instead of graded (stored in the card)."""

    #: a keypoint peak below this height is too faint a finding to grade
    min_detection: float = 0.3
    #: a grade is given only when the network puts at least this much probability within one
    #: grade of its answer (SvdH readers themselves agree within one grade, not exactly)
    min_close_probability: float = 0.6
    #: a severe grade (3 or more) is given only when the network puts at most this much
    #: probability on grades 0–1: torn between healthy and destroyed, it is unsure, and
    #: calling a healthy joint destroyed is the costliest error
    max_mild_for_severe: float = 0.1


@dataclass(frozen=True)
class ClassPrior:
    """Bayes' rule for a change of class frequencies between training and service.

    The networks learn from phantoms drawn with every grade equally common (so that rare
    grades are learned at all) plus healthy real joints; in a clinic most erosion scores are 0.
    A network's output is proportional to likelihood × training prior, so multiplying by
    target / training frequencies (per joint group) and renormalising gives the probabilities
    under the clinic's frequencies. The card names both and the tasks it applies to.
    """

    train: dict[str, tuple[float, ...]] = field(default_factory=dict)
    #: task → joint group ("PIP/IP" or "MCP") → class frequencies in service
    target: dict[str, dict[str, tuple[float, ...]]] = field(default_factory=dict)

    @classmethod
    def from_card(cls, data: dict[str, Any] | None) -> ClassPrior:
        if not data:
            return cls()
        return cls(
            {k: tuple(float(x) for x in v) for k, v in data["train"].items()},
            {
                task: {g: tuple(float(x) for x in v) for g, v in groups.items()}
                for task, groups in data["target"].items()
            },
        )

    def adjust(self, task: str, probs: np.ndarray, types: Sequence[str]) -> np.ndarray:
        if task not in self.target or task not in self.train or not len(probs):
            return probs
        train = np.asarray(self.train[task], dtype=np.float64)
        train = train / train.sum()
        out = probs.astype(np.float64).copy()
        for i, kind in enumerate(types):
            target = np.asarray(self.target[task]["MCP" if kind == "MCP" else "PIP/IP"])
            out[i] *= (target / target.sum()) / np.maximum(train, 1e-9)
            out[i] /= max(out[i].sum(), 1e-12)
        return out.astype(np.float32)


class Scorer:
    """A loaded model, ready to score many images (load once per process)."""

    def __init__(self, bundle: ModelBundle) -> None:
        self.bundle = bundle
        settings = dict(bundle.card.get("detector", {}))
        self.abstention = Abstention(**bundle.settings.get("abstention", {}))
        self.prior = ClassPrior.from_card(bundle.settings.get("class_prior"))
        self.keypoints: KeypointNet | None = None
        self.detector: CascadeDetector | None = None
        if bundle.detector_kind == "keypoints":
            self.keypoints = load_keypoint_net(bundle.keypoints_path)
        else:
            settings.pop("kind", None)
            self.detector = CascadeDetector(bundle.cascade_path, **settings)

    @classmethod
    def load(cls, directory: Path | None = None) -> Scorer:
        return cls(ModelBundle.load(directory))

    def score(self, grey: np.ndarray, spacing_mm: float | None, laterality: str) -> ImageScore:
        timings: dict[str, float] = {}
        spacing_mm, spacing_note = plausible_spacing(spacing_mm)
        start = time.perf_counter()
        if self.keypoints is not None:
            detected = self._detect_keypoints(grey, spacing_mm, laterality, timings)
        else:
            detected = self._detect_cascade(grey, spacing_mm, laterality, timings)
        timings["detect"] = (time.perf_counter() - start) * 1e3 - timings.get("identify", 0.0)

        start = time.perf_counter()
        located = sorted(detected.joints, key=lambda j: _report_order(j.label))
        jsn_probs, erosion_probs, distance = self._grade(grey, located)
        timings["score"] = (time.perf_counter() - start) * 1e3
        joints = tuple(
            self._scored_joint(joint, jsn_probs[i], erosion_probs[i], float(distance[i]))
            for i, joint in enumerate(located)
        )
        return ImageScore(
            status=_status(joints, detected),
            joints=joints,
            hands=detected.hands,
            missing=tuple(sorted(detected.missing, key=_report_order)),
            unplaced=detected.unplaced,
            spacing_mm=detected.spacing_mm,
            spacing_assumed=detected.spacing_assumed,
            timings_ms={k: round(v, 2) for k, v in timings.items()},
            missing_reasons=dict(sorted(detected.missing.items())),
            spacing_note=spacing_note,
        )

    def _grade(
        self, grey: np.ndarray, located: list[_Located]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Both networks' class probabilities (after the class prior) for each located joint,
        and how far its features lie from what the networks saw in training."""
        clips = (
            np.stack([crop_joint(grey, j.box, INPUT_SIZE) for j in located])
            if located
            else np.zeros((0, INPUT_SIZE, INPUT_SIZE), np.uint8)
        )
        jsn_probs, jsn_features = predict_with_features(self.bundle.jsn, clips)
        erosion_probs, erosion_features = predict_with_features(self.bundle.erosion, clips)
        types = [joint_type(j.label.split("_", 1)[1]) for j in located]
        jsn_probs = self.prior.adjust("jsn", jsn_probs, types)
        erosion_probs = self.prior.adjust("erosion", erosion_probs, types)
        typicality = self.bundle.typicality
        distance = (
            typicality.distance(np.hstack([jsn_features, erosion_features]))
            if typicality is not None and len(located)
            else np.zeros(len(located))
        )
        return jsn_probs, erosion_probs, distance

    def _scored_joint(
        self, joint: _Located, jsn: np.ndarray, erosion: np.ndarray, distance: float
    ) -> ScoredJoint:
        """The joint's grades, or none with the reason it is not assessable."""
        reason = self._not_assessable(joint, jsn, erosion, distance)
        return ScoredJoint(
            label=joint.label,
            joint_type=joint_type(joint.label.split("_", 1)[1]),
            box=joint.box,
            jsn=None if reason else int(np.argmax(jsn)),
            erosion=None if reason else int(np.argmax(erosion)),
            jsn_probs=tuple(round(float(p), 6) for p in jsn),
            erosion_probs=tuple(round(float(p), 6) for p in erosion),
            confidence=round(joint.confidence, 4),
            found_by=joint.found_by,
            assessable=not reason,
            reason=reason,
        )

    def _not_assessable(
        self, joint: _Located, jsn: np.ndarray, erosion: np.ndarray, distance: float
    ) -> str:
        """The reason a joint is not graded, or "" when it is."""
        rules = self.abstention
        if joint.found_by == "keypoints" and joint.confidence < rules.min_detection:
            return "joint not clearly found"
        typicality = self.bundle.typicality
        if typicality is not None and distance > typicality.threshold:
            return "unlike the training images"
        if min(_close_mass(jsn), _close_mass(erosion)) < rules.min_close_probability:
            return "model unsure"
        for probs in (jsn, erosion):
            if int(np.argmax(probs)) >= 3 and float(probs[:2].sum()) > rules.max_mild_for_severe:
                return "model unsure"
        return ""

    def _detect_keypoints(
        self,
        grey: np.ndarray,
        spacing_mm: float | None,
        laterality: str,
        timings: dict[str, float],
    ) -> _Detected:
        """Heat-map peaks → hands; boxes sized from each hand's own scale."""
        assert self.keypoints is not None
        template = self.bundle.template
        start = time.perf_counter()
        clock: dict[str, float] = {}
        hands = find_hands(self.keypoints, grey, laterality, template, clock)
        # the network detects; grouping peaks into named hands is identification
        timings["identify"] = (time.perf_counter() - start) * 1e3 - clock["network"]
        joints = []
        missing: dict[str, str] = {}
        for hand in hands:
            for name, peak in hand.joints.items():
                side = hand.placed.box_side(template, name)
                box = (
                    round(peak.x - side / 2),
                    round(peak.y - side / 2),
                    round(side),
                    round(side),
                )
                joints.append(_Located(f"{hand.side}_{name}", box, peak.score, "keypoints"))
            missing.update({f"{hand.side}_{n}": why for n, why in hand.missing.items()})
        if spacing_mm:
            spacing, assumed = spacing_mm, False
        elif hands:  # the mean hand's millimetres over the pixels of the hands seen
            spacing, assumed = float(1.0 / np.mean([h.placed.scale for h in hands])), True
        else:
            spacing, assumed = FALLBACK_SPACING_MM, True
        return _Detected(joints, tuple(h.side for h in hands), missing, (), spacing, assumed)

    def _detect_cascade(
        self, grey: np.ndarray, spacing_mm: float | None, laterality: str, timings: dict[str, float]
    ) -> _Detected:
        """The paper's cascade at a fixed working scale, then the fitted mean hand's layout."""
        assert self.detector is not None
        spacing = spacing_mm or FALLBACK_SPACING_MM
        small, factor = working_image(grey, spacing)
        detections = sorted(self.detector.detect(small, factor), key=lambda d: -d.confidence)
        detections = detections[:MAX_CANDIDATES]
        start = time.perf_counter()
        found = identify(detections, spacing, laterality, self.bundle.template)
        found_by = {label: "cascade" for label in found.joints}
        for label, centre in found.missing.items():
            extra = self.detector.detect_near(small, factor, centre, found.expected_size[label])
            if extra is not None:
                found.joints[label] = extra
                found_by[label] = "cascade-local"
        missing = {label: "not found" for label in set(found.missing) - set(found.joints)}
        timings["identify"] = (time.perf_counter() - start) * 1e3
        joints = [
            _Located(
                label,
                _square(found.joints[label], found.expected_size[label]),
                found.joints[label].confidence,
                found_by[label],
            )
            for label in found.joints
        ]
        return _Detected(
            joints,
            tuple(found.hands),
            missing,
            tuple(_square(d) for d in found.unplaced),
            spacing,
            spacing_mm is None,
        )


def plausible_spacing(spacing_mm: float | None) -> tuple[float | None, str]:
    """The spacing when a hand radiograph can have it, else None (so the scorer derives or
    assumes one) with the reason."""
    if spacing_mm is None:
        return None, ""
    lo, hi = PLAUSIBLE_SPACING_MM
    if np.isfinite(spacing_mm) and lo <= spacing_mm <= hi:
        return spacing_mm, ""
    return None, f"pixel spacing {spacing_mm:g} mm ignored: outside the {lo:g}–{hi:g} mm of a hand"


def _close_mass(probs: np.ndarray) -> float:
    """The probability within one grade of the most probable grade."""
    best = int(np.argmax(probs))
    return float(probs[max(best - 1, 0) : best + 2].sum())


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


def _status(joints: tuple[ScoredJoint, ...], detected: _Detected) -> str:
    """The image's outcome, as the results say it: scored, partial (joints missing), too few
    assessable joints, or no hand found."""
    expected = 10 * len(detected.hands)
    scored = sum(1 for j in joints if j.assessable)
    if not joints:
        return "no hand found"
    if scored < MIN_ASSESSABLE_FRACTION * expected:
        return "too few assessable joints"
    if detected.missing:
        return "partial"
    return "scored"
