"""Agreement figures of the paper's Table 3, and quadratic weighted kappa.

All functions take integer class arrays of equal length. "Positive" means a score of at least 1
(the paper's sensitivity and specificity, zero versus any damage).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

IntArray = Sequence[int] | np.ndarray


def _pair(truth: IntArray, predicted: IntArray) -> tuple[np.ndarray, np.ndarray]:
    t, p = np.asarray(truth, dtype=int), np.asarray(predicted, dtype=int)
    if t.shape != p.shape:
        raise ValueError(f"truth has {t.size} values, prediction {p.size}")
    return t, p


def exact_agreement(truth: IntArray, predicted: IntArray) -> float:
    """PEA: the share of joints given exactly the true score."""
    t, p = _pair(truth, predicted)
    return float(np.mean(t == p)) if t.size else float("nan")


def close_agreement(truth: IntArray, predicted: IntArray, within: int = 1) -> float:
    """PCA: the share of joints scored within ``within`` of the truth."""
    t, p = _pair(truth, predicted)
    return float(np.mean(np.abs(t - p) <= within)) if t.size else float("nan")


def sensitivity_specificity(truth: IntArray, predicted: IntArray) -> tuple[float, float]:
    """Zero versus at least one: sensitivity TP/(TP+FN), specificity TN/(TN+FP)."""
    t, p = _pair(truth, predicted)
    positive, called = t >= 1, p >= 1
    tp, fn = int(np.sum(positive & called)), int(np.sum(positive & ~called))
    tn, fp = int(np.sum(~positive & ~called)), int(np.sum(~positive & called))
    sens = tp / (tp + fn) if tp + fn else float("nan")
    spec = tn / (tn + fp) if tn + fp else float("nan")
    return sens, spec


def pearson(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Pearson's r; NaN when either side is constant or there are fewer than two values."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.size < 2 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def confusion_matrix(truth: IntArray, predicted: IntArray, classes: int) -> np.ndarray:
    """Rows are the true class, columns the predicted class."""
    t, p = _pair(truth, predicted)
    matrix = np.zeros((classes, classes), dtype=int)
    np.add.at(matrix, (t, p), 1)
    return matrix


def quadratic_weighted_kappa(truth: IntArray, predicted: IntArray, classes: int) -> float:
    """Cohen's kappa with quadratic weights: agreement beyond chance, near misses cost less."""
    observed = confusion_matrix(truth, predicted, classes).astype(float)
    n = observed.sum()
    if n == 0:
        return float("nan")
    i, j = np.indices((classes, classes))
    weights = (i - j) ** 2 / (classes - 1) ** 2
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / n
    denominator = float(np.sum(weights * expected))
    if denominator == 0:
        return 1.0 if np.array_equal(np.asarray(truth), np.asarray(predicted)) else float("nan")
    return 1.0 - float(np.sum(weights * observed)) / denominator


@dataclass(frozen=True)
class Agreement:
    """Table 3 of the paper for one score (JSN or erosion) and one set of joints."""

    n: int
    pea: float
    pca: float
    sensitivity: float
    specificity: float
    kappa: float

    @classmethod
    def of(cls, truth: IntArray, predicted: IntArray, classes: int) -> Agreement:
        sens, spec = sensitivity_specificity(truth, predicted)
        return cls(
            n=len(truth),
            pea=exact_agreement(truth, predicted),
            pca=close_agreement(truth, predicted),
            sensitivity=sens,
            specificity=spec,
            kappa=quadratic_weighted_kappa(truth, predicted, classes),
        )
