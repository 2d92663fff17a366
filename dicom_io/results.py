"""The plain result structure that the result objects (SR, overlay SC, GSPS) are built from.

dicom_io knows nothing of the scoring code: the worker fills these from the scorer's output.
"""

from __future__ import annotations

from dataclasses import dataclass

JSN_GRADES = 5  #: Sharp/van der Heijde joint space narrowing 0–4
EROSION_GRADES = 6  #: Sharp/van der Heijde erosion 0–5
NOT_FOR_DIAGNOSTIC_USE = (
    "NOT FOR DIAGNOSTIC USE. Scores by an algorithm trained on synthetic phantoms; "
    "a site must retrain and validate it on its own labelled images before clinical use."
)


@dataclass(frozen=True)
class JointResult:
    """One scored joint on the source image."""

    label: str  #: ``{side}_{joint}``, e.g. ``R_PIP3`` (DESIGN.md, Joint labels)
    box: tuple[int, int, int, int]  #: source-image pixels: x (column), y (row), width, height
    jsn: int
    erosion: int
    jsn_probs: tuple[float, ...]  #: JSN_GRADES class probabilities
    erosion_probs: tuple[float, ...]  #: EROSION_GRADES class probabilities

    @property
    def side(self) -> str:
        return self.label.split("_", 1)[0]

    @property
    def joint(self) -> str:
        return self.label.split("_", 1)[1]


@dataclass(frozen=True)
class ModelInfo:
    """The algorithm that produced the scores, as it goes into Contributing Equipment."""

    name: str
    version: str
    device_uid: str  #: changes whenever the model is retrained
    manufacturer: str = "rascore"


@dataclass(frozen=True)
class ScoringResult:
    """Everything the result objects say about one source image."""

    source_sop_instance_uid: str
    joints: tuple[JointResult, ...]
    model: ModelInfo

    @property
    def total_jsn(self) -> int:
        return sum(j.jsn for j in self.joints)

    @property
    def total_erosion(self) -> int:
        return sum(j.erosion for j in self.joints)

    def hand_totals(self) -> dict[str, tuple[int, int]]:
        """(JSN, erosion) totals per side present, e.g. ``{"R": (12, 3)}``."""
        totals: dict[str, tuple[int, int]] = {}
        for joint in self.joints:
            jsn, erosion = totals.get(joint.side, (0, 0))
            totals[joint.side] = (jsn + joint.jsn, erosion + joint.erosion)
        return totals
