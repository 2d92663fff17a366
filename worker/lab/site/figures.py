"""The figures of a site model on the site's test patients, as the scorer gives them in service.

Each test image goes through the whole scorer (detector, networks, abstention), and its graded
joints are compared by label with the readers' consensus (:func:`samples.consensus`). The
paper's agreement figures (PEA, PCA, quadratic weighted κ) come with 95 % bootstrap intervals
over images: the joints of one image are not independent, so images are the unit resampled.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from dicom_io.reading import UnreadableImage
from scoring.cnn import CLASSES
from scoring.evaluation.metrics import (
    Agreement,
    close_agreement,
    exact_agreement,
    quadratic_weighted_kappa,
)
from scoring.pipeline import Scorer
from worker.lab.site.folder import SiteFolder, SiteImage
from worker.lab.site.samples import Key
from worker.lab.site.site_crops import read_site_image

BOOTSTRAP_DRAWS = 1000
FEW_IMAGES = 10  #: below this many test images an interval over images is hardly one
Pairs = list[tuple[int, int]]  #: (truth, predicted) of graded joints of one image


def _finite(value: float) -> float | None:
    """JSON has no NaN: a figure that cannot be computed is null."""
    return None if value is None or not math.isfinite(value) else round(float(value), 4)


def bootstrap_ci(
    per_image: list[Pairs],
    figure: Callable[[np.ndarray, np.ndarray], float],
    draws: int = BOOTSTRAP_DRAWS,
    seed: int = 0,
) -> list[float | None]:
    """95 % percentile interval of ``figure(truth, predicted)`` over images drawn with
    replacement (images without graded joints are left out first)."""
    images = [np.asarray(p, dtype=int).reshape(-1, 2) for p in per_image if p]
    if not images:
        return [None, None]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(draws):
        drawn = np.concatenate([images[i] for i in rng.integers(0, len(images), len(images))])
        value = figure(drawn[:, 0], drawn[:, 1])
        if math.isfinite(value):
            values.append(value)
    if not values:
        return [None, None]
    low, high = np.percentile(values, [2.5, 97.5])
    return [_finite(low), _finite(high)]


@dataclass
class _Tally:
    per_image: dict[str, list[Pairs]] = field(default_factory=lambda: {"jsn": [], "erosion": []})
    labelled: int = 0  #: joints with a consensus grade of either kind
    found: int = 0  #: of those, found by the detector
    graded: int = 0  #: of those found, graded (the rest: not assessable)
    unreadable: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def add(
        self, truth: Mapping[str, tuple[int | None, int | None]], found: dict[str, Any]
    ) -> None:
        pairs: dict[str, Pairs] = {"jsn": [], "erosion": []}
        for label, grades in truth.items():
            if grades == (None, None):
                continue
            self.labelled += 1
            joint = found.get(label)
            if joint is None:
                continue
            self.found += 1
            if not joint.assessable:
                self.reasons[joint.reason] = self.reasons.get(joint.reason, 0) + 1
                continue
            self.graded += 1
            for kind, true, predicted in (
                ("jsn", grades[0], joint.jsn),
                ("erosion", grades[1], joint.erosion),
            ):
                if true is not None and predicted is not None:
                    pairs[kind].append((true, predicted))
        for kind in pairs:
            self.per_image[kind].append(pairs[kind])


def _kind_figures(per_image: list[Pairs], classes: int) -> dict[str, Any]:
    flat = [pair for pairs in per_image for pair in pairs]
    truth = [t for t, _ in flat]
    predicted = [p for _, p in flat]
    figures: dict[str, Any] = {
        k: (_finite(v) if isinstance(v, float) else v)
        for k, v in asdict(Agreement.of(truth, predicted, classes)).items()
    }
    figures["images"] = sum(1 for pairs in per_image if pairs)
    if figures["images"] < FEW_IMAGES:
        figures["ci_note"] = (
            f"only {figures['images']} test image(s): the interval says little; "
            "validate on more of the site's images (rascore validate)"
        )
    figures["pea_ci95"] = bootstrap_ci(per_image, exact_agreement)
    figures["pca_ci95"] = bootstrap_ci(per_image, close_agreement)
    figures["kappa_ci95"] = bootstrap_ci(
        per_image, lambda t, p: quadratic_weighted_kappa(t, p, classes)
    )
    return figures


def evaluate_images(
    scorer: Scorer,
    site: SiteFolder,
    images: list[SiteImage],
    truth: Mapping[Key, tuple[int | None, int | None]],
    advance: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """The scorer's figures on ``images`` against ``truth`` (key → consensus JSN, erosion)."""
    tally = _Tally()
    by_image: dict[str, dict[str, tuple[int | None, int | None]]] = {}
    for (image_id, label), grades in truth.items():
        by_image.setdefault(image_id, {})[label] = grades
    for image in images:
        try:
            grey, spacing = read_site_image(site, image)
        except (UnreadableImage, OSError, ValueError):
            tally.unreadable += 1
            advance()
            continue
        result = scorer.score(grey, spacing, image.hand)
        tally.add(by_image.get(image.image_id, {}), {j.label: j for j in result.joints})
        advance()
    return {
        "model": {"name": scorer.bundle.name, "version": scorer.bundle.version},
        "images": len(images) - tally.unreadable,
        "unreadable_images": tally.unreadable,
        "joints_labelled": tally.labelled,
        "joints_found": tally.found,
        "joints_graded": tally.graded,
        "not_assessable_reasons": dict(sorted(tally.reasons.items())),
        "truth": "the readers' mean grade per joint, rounded half up",
        "ci": f"95 % percentile bootstrap over images ({BOOTSTRAP_DRAWS} draws)",
        "jsn": _kind_figures(tally.per_image["jsn"], CLASSES["jsn"]),
        "erosion": _kind_figures(tally.per_image["erosion"], CLASSES["erosion"]),
    }
