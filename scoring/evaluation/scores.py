"""The model against the truth, in the figures of the paper's Table 3 (DESIGN.md, Contracts).

A true joint is *detected* when a scored joint's box centre falls inside its box; the detected
joint's *identity* is right when the labels agree. Scores are compared on detected joints, as the
paper compared the joints its model found; per-radiograph totals sum everything each side gave.

A joint the model found but would not grade (not assessable) counts as detected, and its
identity is checked, but it has no grade to agree or disagree with: it is left out of the JSN
and erosion figures, and of both sides' totals (the model's total says it covers only the joints
it graded, so the truth's is taken over the same joints). ``not_assessable`` counts them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .metrics import Agreement, confusion_matrix, pearson


@dataclass(frozen=True)
class TrueJoint:
    label: str
    joint_type: str  #: PIP, IP or MCP
    box: tuple[float, float, float, float]
    jsn: int
    erosion: int


@dataclass(frozen=True)
class PredictedJoint:
    label: str
    box: tuple[float, float, float, float]
    jsn: int | None  #: None when not assessable
    erosion: int | None
    assessable: bool = True
    reason: str = ""  #: why not assessable
    jsn_probs: tuple[float, ...] = ()  #: the network's class probabilities, for calibration
    erosion_probs: tuple[float, ...] = ()


def _graded(p: PredictedJoint) -> bool:
    return p.assessable and p.jsn is not None and p.erosion is not None


@dataclass
class ImageComparison:
    truth: Sequence[TrueJoint]
    predicted: Sequence[PredictedJoint]
    seconds: float = 0.0


@dataclass
class _Pairs:
    jsn_true: list[int] = field(default_factory=list)
    jsn_pred: list[int] = field(default_factory=list)
    ero_true: list[int] = field(default_factory=list)
    ero_pred: list[int] = field(default_factory=list)

    def add(self, t: TrueJoint, p: PredictedJoint) -> None:
        assert p.jsn is not None and p.erosion is not None  # graded joints only
        self.jsn_true.append(t.jsn)
        self.jsn_pred.append(p.jsn)
        self.ero_true.append(t.erosion)
        self.ero_pred.append(p.erosion)


def _inside(p: PredictedJoint, t: TrueJoint) -> bool:
    x, y, w, h = p.box
    cx, cy = x + w / 2, y + h / 2
    tx, ty, tw, th = t.box
    return tx <= cx <= tx + tw and ty <= cy <= ty + th


def _match(image: ImageComparison) -> list[tuple[TrueJoint, PredictedJoint | None]]:
    """Each true joint with the prediction inside its box (the same label first, else the
    nearest centre); a prediction serves one true joint at most."""
    free = list(image.predicted)
    pairs: list[tuple[TrueJoint, PredictedJoint | None]] = []
    for t in image.truth:
        candidates = [p for p in free if _inside(p, t)]
        chosen = None
        if candidates:
            same = [p for p in candidates if p.label == t.label]
            tx, ty = t.box[0] + t.box[2] / 2, t.box[1] + t.box[3] / 2
            chosen = (
                same[0]
                if same
                else min(
                    candidates,
                    key=lambda p: math.hypot(
                        p.box[0] + p.box[2] / 2 - tx, p.box[1] + p.box[3] / 2 - ty
                    ),
                )
            )
            free.remove(chosen)
        pairs.append((t, chosen))
    return pairs


def _agreement(true: list[int], pred: list[int], classes: int) -> dict[str, Any]:
    a = Agreement.of(true, pred, classes)
    return {
        "n": a.n,
        "pea": a.pea,
        "pca": a.pca,
        "sensitivity": a.sensitivity,
        "specificity": a.specificity,
        "kappa": a.kappa,
    }


def expected_calibration_error(
    probs: Sequence[Sequence[float]], truth: Sequence[int], bins: int = 10
) -> float:
    """ECE of the most probable class: the mean gap between confidence and accuracy over
    equal-width confidence bins, weighted by how many answers fall in each."""
    if not probs:
        return float("nan")
    p = np.asarray(probs, dtype=float)
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == np.asarray(truth)).astype(float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    gap = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            gap += members.mean() * abs(confidence[members].mean() - correct[members].mean())
    return float(gap)


def _bootstrap(
    per_image: Sequence[tuple[float, float]], draws: int = 1000, seed: int = 0
) -> list[float]:
    """95 % interval of sum(hits) / sum(totals) over images drawn with replacement."""
    counts = np.asarray([c for c in per_image if c[1] > 0], dtype=float).reshape(-1, 2)
    if len(counts) == 0:
        return [float("nan"), float("nan")]
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(counts), (draws, len(counts)))
    sums = counts[picks].sum(axis=1)
    rates = sums[:, 0] / np.maximum(sums[:, 1], 1e-12)
    return [float(np.quantile(rates, 0.025)), float(np.quantile(rates, 0.975))]


@dataclass
class _Tally:
    """What :func:`evaluate` counts over the images, before any figure is made of it."""

    #: joint type → [found, true joints]
    detected: dict[str, list[int]] = field(
        default_factory=lambda: {"PIP": [0, 0], "IP": [0, 0], "MCP": [0, 0]}
    )
    #: "jsn" / "erosion" → (the network's probabilities, the true grade) of every found joint
    calibration: dict[str, tuple[list[Sequence[float]], list[int]]] = field(
        default_factory=lambda: {"jsn": ([], []), "erosion": ([], [])}
    )
    #: "detection" / "jsn" / "erosion" → (hits, total) per image, for the bootstrap
    per_image: dict[str, list[tuple[float, float]]] = field(
        default_factory=lambda: {"detection": [], "jsn": [], "erosion": []}
    )
    identity: list[int] = field(default_factory=lambda: [0, 0])
    pairs: dict[str, _Pairs] = field(
        default_factory=lambda: {"all": _Pairs(), "PIP/IP": _Pairs(), "MCP": _Pairs()}
    )
    #: per-image totals: (true, predicted) for "jsn" and "erosion"
    totals: dict[str, tuple[list[int], list[int]]] = field(
        default_factory=lambda: {"jsn": ([], []), "erosion": ([], [])}
    )
    not_assessable: dict[str, int] = field(default_factory=dict)  #: reason → joints

    def add(self, image: ImageComparison) -> None:
        ungraded: list[TrueJoint] = []  # true joints whose match the model did not grade
        found = jsn_hits = ero_hits = graded_here = 0
        matched = _match(image)
        for t, p in matched:
            self.detected[t.joint_type][1] += 1
            if p is None:
                continue
            self.detected[t.joint_type][0] += 1
            found += 1
            for kind, probs, true in (
                ("jsn", p.jsn_probs, t.jsn),
                ("erosion", p.erosion_probs, t.erosion),
            ):
                if probs:
                    self.calibration[kind][0].append(probs)
                    self.calibration[kind][1].append(true)
            self.identity[1] += 1
            self.identity[0] += p.label == t.label
            if not _graded(p):
                ungraded.append(t)
                continue
            self.pairs["all"].add(t, p)
            self.pairs["MCP" if t.joint_type == "MCP" else "PIP/IP"].add(t, p)
            graded_here += 1
            jsn_hits += p.jsn == t.jsn
            ero_hits += p.erosion == t.erosion
        self.per_image["detection"].append((found, len(matched)))
        self.per_image["jsn"].append((jsn_hits, graded_here))
        self.per_image["erosion"].append((ero_hits, graded_here))
        self._add_totals(image, ungraded)

    def _add_totals(self, image: ImageComparison, ungraded: list[TrueJoint]) -> None:
        """Both sides' totals over the joints the model graded, and why it graded no others."""
        for p in image.predicted:
            if not _graded(p):
                reason = p.reason or "no reason given"
                self.not_assessable[reason] = self.not_assessable.get(reason, 0) + 1
        counted = [t for t in image.truth if not any(t is u for u in ungraded)]
        graded = [p for p in image.predicted if _graded(p)]
        self.totals["jsn"][0].append(sum(t.jsn for t in counted))
        self.totals["jsn"][1].append(sum(p.jsn or 0 for p in graded))
        self.totals["erosion"][0].append(sum(t.erosion for t in counted))
        self.totals["erosion"][1].append(sum(p.erosion or 0 for p in graded))

    def score_block(self, kind: str, classes: int) -> dict[str, Any]:
        """The figures of one score (``"jsn"`` or ``"erosion"``)."""
        q = self.pairs

        def get(pairs: _Pairs) -> tuple[list[int], list[int]]:
            if kind == "jsn":
                return pairs.jsn_true, pairs.jsn_pred
            return pairs.ero_true, pairs.ero_pred

        block = _agreement(*get(q["all"]), classes)
        block["pearson_total"] = pearson(*self.totals[kind])
        block["per_type"] = {g: _agreement(*get(q[g]), classes) for g in ("PIP/IP", "MCP")}
        block["confusion"] = confusion_matrix(*get(q["all"]), classes).tolist()
        block["pea_ci95"] = _bootstrap(self.per_image[kind])
        #: of the network's raw answers on every found joint, graded or not
        block["ece"] = expected_calibration_error(*self.calibration[kind])
        return block


def _rate(hit: int, total: int) -> float:
    return hit / total if total else float("nan")


def evaluate(images: Sequence[ImageComparison]) -> dict[str, Any]:
    """The evaluation figures (DESIGN.md, ``rascore evaluate --json``), plus confusion matrices,
    calibration, abstention and 95 % bootstrap intervals over images."""
    tally = _Tally()
    for image in images:
        tally.add(image)
    hits = sum(v[0] for v in tally.detected.values())
    total = sum(v[1] for v in tally.detected.values())
    abstained = sum(tally.not_assessable.values())
    seconds = [image.seconds for image in images]
    return {
        "images": len(images),
        "joints": total,
        "detection": {
            "sensitivity": _rate(hits, total),
            "per_type": {k: _rate(*v) for k, v in tally.detected.items()},
            "identity_accuracy": _rate(*tally.identity),
            "sensitivity_ci95": _bootstrap(tally.per_image["detection"]),
        },
        "abstention_rate": _rate(abstained, hits),
        #: joints found but not graded (left out of the JSN and erosion figures), by reason
        "not_assessable": abstained,
        "not_assessable_reasons": dict(sorted(tally.not_assessable.items())),
        "jsn": tally.score_block("jsn", 5),
        "erosion": tally.score_block("erosion", 6),
        "totals": {
            kind: {"true": tally.totals[kind][0], "predicted": tally.totals[kind][1]}
            for kind in ("jsn", "erosion")
        },
        "seconds_per_image": sum(seconds) / len(seconds) if seconds else float("nan"),
    }
