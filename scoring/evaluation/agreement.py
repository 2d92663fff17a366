"""Agreement of two raters on the same joints: what a site needs to judge a model on its own
radiographs (``rascore validate``), model against each reader and reader against reader.

The joint-level figures are the paper's Table 3 and its companions (from :mod:`.metrics`); the
image-level ones (Pearson r, ICC(2,1), Bland–Altman) are of per-image totals over the joints
*both* raters graded, so that a joint one side left out never counts as 0 on the other. 95 %
intervals come from resampling images, not joints: the joints of one hand are not independent.

Plain numpy; imports nothing outside :mod:`scoring.evaluation`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .metrics import (
    close_agreement,
    confusion_matrix,
    exact_agreement,
    pearson,
    quadratic_weighted_kappa,
    sensitivity_specificity,
)

#: the paper's Table 3 groups (PIP/IP, MCP) and each joint type on its own
GROUPS: dict[str, tuple[str, ...]] = {
    "PIP/IP": ("PIP", "IP"),
    "PIP": ("PIP",),
    "IP": ("IP",),
    "MCP": ("MCP",),
}
#: 1.96: the normal quantile of Bland and Altman's 95 % limits of agreement
LIMITS_Z = 1.96


@dataclass(frozen=True)
class Paired:
    """Two raters' grades of one kind (JSN or erosion) on the joints both graded.

    ``reference`` is the side taken as truth for sensitivity, specificity and the rows of the
    confusion matrix; differences are ``compared - reference``.
    """

    reference: np.ndarray  #: int grades
    compared: np.ndarray  #: int grades
    image: np.ndarray  #: int: which image each joint is on (totals, bootstrap)
    joint_type: np.ndarray  #: str: "PIP", "IP" or "MCP"
    classes: int  #: 5 for JSN, 6 for erosion

    @classmethod
    def of(cls, rows: Sequence[tuple[int, str, int, int]], classes: int) -> Paired:
        """From ``(image, joint_type, reference, compared)`` rows."""
        return cls(
            reference=np.asarray([r[2] for r in rows], dtype=int),
            compared=np.asarray([r[3] for r in rows], dtype=int),
            image=np.asarray([r[0] for r in rows], dtype=int),
            joint_type=np.asarray([r[1] for r in rows], dtype=str),
            classes=classes,
        )

    def __len__(self) -> int:
        return int(self.reference.size)

    def select(self, mask: np.ndarray) -> Paired:
        return Paired(
            self.reference[mask],
            self.compared[mask],
            self.image[mask],
            self.joint_type[mask],
            self.classes,
        )

    def group(self, types: Sequence[str]) -> Paired:
        return self.select(np.isin(self.joint_type, list(types)))

    def totals(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-image sums of each side over the joints both graded (images with none left out)."""
        images, index = np.unique(self.image, return_inverse=True)
        ref = np.bincount(index, weights=self.reference, minlength=images.size)
        comp = np.bincount(index, weights=self.compared, minlength=images.size)
        return ref, comp


def icc_2_1(ratings: np.ndarray | Sequence[Sequence[float]]) -> float:
    """ICC(2,1) of Shrout and Fleiss (1979): two-way random effects, absolute agreement, one
    rater; ``ratings`` is subjects × raters. Unlike Pearson's r it counts a rater who is
    systematically higher as disagreeing. NaN with fewer than two subjects or no variance."""
    y = np.asarray(ratings, dtype=float)
    n, k = y.shape if y.ndim == 2 else (0, 0)
    if n < 2 or k < 2:
        return float("nan")
    grand = y.mean()
    ss_rows = k * float(np.sum((y.mean(axis=1) - grand) ** 2))
    ss_cols = n * float(np.sum((y.mean(axis=0) - grand) ** 2))
    ss_error = float(np.sum((y - grand) ** 2)) - ss_rows - ss_cols
    ms_rows = ss_rows / (n - 1)
    ms_cols = ss_cols / (k - 1)
    ms_error = ss_error / ((n - 1) * (k - 1))
    denominator = ms_rows + (k - 1) * ms_error + k * (ms_cols - ms_error) / n
    if denominator <= 0:
        return float("nan")
    return (ms_rows - ms_error) / denominator


@dataclass(frozen=True)
class BlandAltman:
    """Mean of ``compared - reference`` and the 95 % limits of agreement (mean ± 1.96 SD)."""

    n: int
    mean_difference: float
    sd: float  #: sample standard deviation (n − 1)
    lower: float
    upper: float

    @classmethod
    def of(
        cls, reference: Sequence[float] | np.ndarray, compared: Sequence[float] | np.ndarray
    ) -> BlandAltman:
        d = np.asarray(compared, dtype=float) - np.asarray(reference, dtype=float)
        if d.size == 0:
            nan = float("nan")
            return cls(0, nan, nan, nan, nan)
        mean = float(d.mean())
        sd = float(d.std(ddof=1)) if d.size > 1 else float("nan")
        return cls(int(d.size), mean, sd, mean - LIMITS_Z * sd, mean + LIMITS_Z * sd)


def differences(paired: Paired) -> dict[int, int]:
    """How many joints have each difference ``compared - reference``, −(classes−1) to +."""
    top = paired.classes - 1
    counts = np.bincount(paired.compared - paired.reference + top, minlength=2 * top + 1)
    return {d - top: int(c) for d, c in enumerate(counts)}


def grade_counts(grades: Sequence[int] | np.ndarray, classes: int) -> list[int]:
    """How many joints got each grade: the paper's Fig. 3E and 3G."""
    return np.bincount(np.asarray(grades, dtype=int), minlength=classes)[:classes].tolist()


def _sensitivity(p: Paired) -> float:
    return sensitivity_specificity(p.reference, p.compared)[0]


def _specificity(p: Paired) -> float:
    return sensitivity_specificity(p.reference, p.compared)[1]


def _totals_pearson(p: Paired) -> float:
    return pearson(*p.totals())


def _totals_icc(p: Paired) -> float:
    return icc_2_1(np.column_stack(p.totals()))


def _totals_mean_difference(p: Paired) -> float:
    return BlandAltman.of(*p.totals()).mean_difference


#: the headline figures, each with a 95 % bootstrap interval over images
HEADLINE: dict[str, Callable[[Paired], float]] = {
    "pea": lambda p: exact_agreement(p.reference, p.compared),
    "pca": lambda p: close_agreement(p.reference, p.compared),
    "sensitivity": _sensitivity,
    "specificity": _specificity,
    "kappa": lambda p: quadratic_weighted_kappa(p.reference, p.compared, p.classes),
    "pearson_total": _totals_pearson,
    "icc_total": _totals_icc,
    "mean_difference_total": _totals_mean_difference,
}


def bootstrap_over_images(
    paired: Paired,
    statistics: dict[str, Callable[[Paired], float]],
    draws: int = 1000,
    seed: int = 0,
) -> dict[str, list[float]]:
    """95 % percentile intervals of each statistic over images drawn with replacement (the
    same draw for all, as :func:`scoring.evaluation.scores._bootstrap` draws: a drawn image
    keeps all its joints, and one drawn twice counts as two images). NaN when fewer than half
    the draws give the statistic a value (say, no reference 0 for a specificity)."""
    images = np.unique(paired.image)
    nan = [float("nan"), float("nan")]
    if images.size == 0 or draws < 1:
        return {name: nan for name in statistics}
    members = [np.flatnonzero(paired.image == i) for i in images]
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, images.size, (draws, images.size))
    values = np.full((draws, len(statistics)), np.nan)
    for d, pick in enumerate(picks):
        index = np.concatenate([members[i] for i in pick])
        position = np.repeat(np.arange(pick.size), [members[i].size for i in pick])
        sample = Paired(
            paired.reference[index],
            paired.compared[index],
            position,
            paired.joint_type[index],
            paired.classes,
        )
        for s, statistic in enumerate(statistics.values()):
            values[d, s] = statistic(sample)
    out = {}
    for s, name in enumerate(statistics):
        column = values[:, s][np.isfinite(values[:, s])]
        out[name] = (
            [float(np.quantile(column, 0.025)), float(np.quantile(column, 0.975))]
            if column.size >= draws // 2
            else nan
        )
    return out


def _joint_figures(p: Paired) -> dict[str, Any]:
    sens, spec = sensitivity_specificity(p.reference, p.compared)
    return {
        "joints": len(p),
        "pea": exact_agreement(p.reference, p.compared),
        "pca": close_agreement(p.reference, p.compared),
        "sensitivity": sens,
        "specificity": spec,
        "kappa": quadratic_weighted_kappa(p.reference, p.compared, p.classes),
    }


def compare(paired: Paired, draws: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Every figure of one pair of raters and one kind, as plain JSON-ready values."""
    ref_totals, comp_totals = paired.totals()
    limits = BlandAltman.of(ref_totals, comp_totals)
    block = _joint_figures(paired)
    block |= {
        "images": int(ref_totals.size),
        "per_type": {name: _joint_figures(paired.group(types)) for name, types in GROUPS.items()},
        "confusion": confusion_matrix(paired.reference, paired.compared, paired.classes).tolist(),
        "differences": {str(d): c for d, c in differences(paired).items()},
        "totals": {
            "reference": ref_totals.astype(int).tolist(),
            "compared": comp_totals.astype(int).tolist(),
            "pearson": pearson(ref_totals, comp_totals),
            "icc_2_1": icc_2_1(np.column_stack([ref_totals, comp_totals])),
            "bland_altman": {
                "mean_difference": limits.mean_difference,
                "sd": limits.sd,
                "lower": limits.lower,
                "upper": limits.upper,
            },
        },
        "ci95": bootstrap_over_images(paired, HEADLINE, draws, seed),
    }
    return block
