"""How typical a joint clip is of what the scoring networks were trained on.

A network answers every input with a grade, however unlike its training images the input is.
So each clip's hidden-layer activations (both networks') are compared with those of the
training clips: the Mahalanobis distance in their leading principal components. Beyond a
threshold set on held-out clips, the joint is reported as not assessable ("unlike the training
images") instead of graded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

COMPONENTS = 24
#: held-out clips of the training kinds farther than this quantile are called atypical
QUANTILE = 0.995


@dataclass(frozen=True)
class Typicality:
    mean: np.ndarray  #: (d,)
    components: np.ndarray  #: (k, d) principal axes
    variances: np.ndarray  #: (k,)
    threshold: float

    def distance(self, features: np.ndarray) -> np.ndarray:
        """Mahalanobis distance of each row of ``features`` (n × d) from the training clips."""
        projected = (features - self.mean) @ self.components.T
        return np.sqrt(np.sum(projected**2 / self.variances, axis=1))

    @classmethod
    def fit(cls, train: np.ndarray, held_out: np.ndarray) -> Typicality:
        """Axes and spreads from the training features; threshold from held-out ones."""
        mean = train.mean(axis=0)
        _, s, vt = np.linalg.svd(train - mean, full_matrices=False)
        k = min(COMPONENTS, len(s))
        variances = (s[:k] ** 2) / max(len(train) - 1, 1) + 1e-6
        model = cls(mean, vt[:k], variances, 0.0)
        threshold = float(np.quantile(model.distance(held_out), QUANTILE))
        return cls(mean, vt[:k], variances, threshold)

    def save(self, path: Path) -> None:
        with open(path, "wb") as f:  # np.savez on a path adds ".npz" to other names
            np.savez(
                f,
                mean=self.mean.astype(np.float32),
                components=self.components.astype(np.float32),
                variances=self.variances.astype(np.float32),
                threshold=np.float32(self.threshold),
            )

    @classmethod
    def load(cls, path: Path) -> Typicality:
        with np.load(path) as data:
            return cls(
                data["mean"].astype(np.float64),
                data["components"].astype(np.float64),
                data["variances"].astype(np.float64),
                float(data["threshold"]),
            )
