"""Per-joint Sharp/van der Heijde scores with the correlations seen in RA.

Scores come from a Gaussian copula: each joint's latent damage is a sum of a patient term
(severity), a term shared by the same joint of both hands (symmetry) and a joint's own term,
plus a preference for MCP2–3 and the PIP joints. Thresholds on the latent turn it into classes
whose frequencies follow the paper's Table 2 (or are uniform, for training). Erosion is
correlated with JSN through its latent.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np

from .model import JOINT_NAMES, Side, joint_type

Distribution = Literal["table2", "uniform"]

#: Hirano et al. 2019, Table 2: counts of 1,860 real joints by score (JSN 0–4, erosion 0–5).
TABLE2_JSN: dict[str, tuple[int, ...]] = {
    "PIP/IP": (128, 58, 356, 326, 62),
    "MCP": (510, 28, 184, 127, 81),
}
TABLE2_EROSION: dict[str, tuple[int, ...]] = {
    "PIP/IP": (644, 74, 93, 28, 22, 69),
    "MCP": (761, 22, 33, 28, 15, 71),
}

#: Where RA strikes first: MCP2–3 and the PIP joints more than MCP1, MCP5 or the thumb IP.
#: Offsets are in units of the latent's standard deviation and average about zero per group.
_PREFERENCE: dict[str, float] = {
    "IP": -0.25,
    "PIP2": 0.1,
    "PIP3": 0.15,
    "PIP4": 0.05,
    "PIP5": -0.05,
    "MCP1": -0.35,
    "MCP2": 0.35,
    "MCP3": 0.3,
    "MCP4": -0.1,
    "MCP5": -0.2,
}

# Weights of the patient, symmetric-joint and own terms (squares sum to ~1).
_W_PATIENT, _W_SYMMETRIC, _W_OWN = 0.62, 0.5, 0.6
_EROSION_FROM_JSN = 0.7


@dataclass(frozen=True)
class JointScore:
    side: Side
    name: str
    jsn: int
    erosion: int


def _group(name: str) -> str:
    return "MCP" if joint_type(name) == "MCP" else "PIP/IP"


def _thresholds(counts: tuple[int, ...] | int) -> np.ndarray:
    """Latent cut points that give the class frequencies ``counts`` (or uniform classes)."""
    if isinstance(counts, int):
        probs = np.full(counts, 1.0 / counts)
    else:
        probs = np.asarray(counts, dtype=float) / sum(counts)
    cumulative = np.cumsum(probs)[:-1]
    normal = NormalDist()
    return np.array([normal.inv_cdf(float(c)) for c in cumulative])


def sample_scores(
    rng: np.random.Generator,
    severity: float,
    sides: tuple[Side, ...],
    distribution: Distribution = "table2",
) -> list[JointScore]:
    """Scores of the ten joints of each side in ``sides`` for one patient."""
    scores: list[JointScore] = []
    symmetric = {name: rng.standard_normal(2) for name in JOINT_NAMES}
    for side in ("R", "L"):
        own = rng.standard_normal((len(JOINT_NAMES), 2))
        if side not in sides:
            continue
        for j, name in enumerate(JOINT_NAMES):
            group = _group(name)
            shift = _PREFERENCE[name] if distribution == "table2" else 0.0
            latent_jsn = (
                _W_PATIENT * severity
                + _W_SYMMETRIC * symmetric[name][0]
                + _W_OWN * own[j, 0]
                + shift
            )
            latent_erosion = _EROSION_FROM_JSN * latent_jsn + np.sqrt(1 - _EROSION_FROM_JSN**2) * (
                0.6 * symmetric[name][1] + 0.8 * own[j, 1]
            )
            if distribution == "uniform":
                jsn_cuts, erosion_cuts = _thresholds(5), _thresholds(6)
            else:
                jsn_cuts = _thresholds(TABLE2_JSN[group])
                erosion_cuts = _thresholds(TABLE2_EROSION[group])
            jsn = int(np.searchsorted(jsn_cuts, latent_jsn))
            erosion = int(np.searchsorted(erosion_cuts, latent_erosion))
            scores.append(JointScore(side, name, jsn, erosion))
    return scores


def split_erosion(rng: np.random.Generator, erosion: int) -> tuple[int, int]:
    """Share a joint's erosion score between its proximal (head) and distal (base) surface.

    Each surface scores 0, 1, 2, 3 or 5 (collapse); the joint's score is their sum, at most 5.
    """
    options: dict[int, list[tuple[int, int]]] = {
        0: [(0, 0)],
        1: [(1, 0), (0, 1)],
        2: [(2, 0), (0, 2), (1, 1)],
        3: [(3, 0), (0, 3), (2, 1), (1, 2)],
        4: [(3, 1), (1, 3), (2, 2)],
        5: [(5, 0), (0, 5), (5, 0), (0, 5), (3, 2), (2, 3), (3, 3)],
    }
    choices = options[erosion]
    return choices[int(rng.integers(len(choices)))]
