"""A site's patients split into train, validation and test: by patient, never by image.

Both hands of a patient, and every visit, look alike in ways a network learns (bone shape,
exposure, the film marker): an image split would let the test measure recognition of patients
already seen. Each patient's part comes from a hash of the seed and the pseudonym, so it does
not depend on the order of the folder and does not change when the site adds patients (a
patient once in test stays in test for the next model with the same seed). A site too small for
fixed thresholds to give every part a patient is split by rank of the same hash instead, and
the card says so.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

PARTS = ("train", "validation", "test")
#: share of the patients in train and validation; test has the rest
FRACTIONS = (0.6, 0.2)
MIN_PATIENTS = 3  #: one a part


def patient_hash(patient: str, seed: int) -> float:
    """A number in [0, 1) fixed by the seed and the pseudonym."""
    digest = hashlib.sha256(f"{seed}\x00{patient}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


@dataclass(frozen=True)
class PatientSplit:
    seed: int
    #: "hash" (fixed thresholds on each patient's hash) or "hash-rank" (too few patients for
    #: thresholds to fill every part: the patients sorted by hash and cut by the fractions)
    method: str
    train: tuple[str, ...]
    validation: tuple[str, ...]
    test: tuple[str, ...]

    def part(self, patient: str) -> str:
        for name in PARTS:
            if patient in getattr(self, name):
                return name
        raise KeyError(patient)

    def card(self) -> dict[str, object]:
        return {
            "by": "patient (both hands and every image of a patient in one part)",
            "seed": self.seed,
            "method": self.method,
            "fractions": {"train": FRACTIONS[0], "validation": FRACTIONS[1]},
            **{name: list(getattr(self, name)) for name in PARTS},
        }


def split_patients(patients: Iterable[str], seed: int = 0) -> PatientSplit:
    """Train / validation / test patients; raises ValueError with fewer than MIN_PATIENTS."""
    unique = sorted(set(patients))
    if len(unique) < MIN_PATIENTS:
        raise ValueError(
            f"{len(unique)} patient(s): a split by patient needs at least {MIN_PATIENTS}"
        )
    ranked = sorted(unique, key=lambda p: (patient_hash(p, seed), p))
    cut_train, cut_val = FRACTIONS[0], FRACTIONS[0] + FRACTIONS[1]
    parts: dict[str, list[str]] = {name: [] for name in PARTS}
    for patient in ranked:
        u = patient_hash(patient, seed)
        parts["train" if u < cut_train else "validation" if u < cut_val else "test"].append(patient)
    method = "hash"
    if not all(parts.values()):
        n = len(ranked)
        n_val = max(1, round(n * FRACTIONS[1]))
        n_test = max(1, round(n * (1.0 - cut_val)))
        n_train = n - n_val - n_test
        parts = {
            "train": ranked[:n_train],
            "validation": ranked[n_train : n_train + n_val],
            "test": ranked[n_train + n_val :],
        }
        method = "hash-rank"
    return PatientSplit(
        seed,
        method,
        tuple(sorted(parts["train"])),
        tuple(sorted(parts["validation"])),
        tuple(sorted(parts["test"])),
    )
