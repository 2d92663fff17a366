"""Plain result types of the phantom generator.

Everything here is in stored-image pixels (x = column, y = row) unless a name says mm, so that
``truth.json`` can be written straight from these objects (DESIGN.md, Contracts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..joints import JOINT_NAMES as JOINT_NAMES
from ..joints import JointType
from ..joints import joint_type as joint_type

Side = Literal["L", "R"]
Photometric = Literal["MONOCHROME1", "MONOCHROME2"]
Modality = Literal["CR", "DX"]
Encoding = Literal["explicit", "jpeg2000-lossless", "jpegls-lossless"]


@dataclass(frozen=True)
class JointTruth:
    """The exact label of one scored joint as drawn in the image."""

    label: str  #: ``{side}_{joint}``, e.g. ``R_PIP3``
    joint_type: JointType
    center: tuple[float, float]  #: pixels (x, y)
    box: tuple[int, int, int, int]  #: pixels (x, y, w, h), top-left corner
    jsn: int  #: 0–4
    erosion: int  #: 0–5
    #: unit vector (x, y) along the finger, proximal → distal, in pixels
    axis: tuple[float, float]
    #: how JSN shows: "normal", "focal", "generalised", "subluxation", "ankylosis", "luxation"
    jsn_form: str
    #: erosion scores of the proximal (head) and distal (base) bone surfaces; the joint's
    #: score is their sum, capped at 5
    erosion_surfaces: tuple[int, int]
    gap_mm: float  #: joint-space width drawn at the joint's centre line
    normal_gap_mm: float  #: the width this patient's healthy joint would have
    width_mm: float  #: width of the proximal bone's head
    osteopenia: float  #: periarticular bone loss, 0–1 (a confounder: changes no label)
    swelling: float  #: soft-tissue swelling, mm (a confounder: changes no label)

    @property
    def side(self) -> str:
        return self.label[0]


@dataclass(frozen=True)
class Acquisition:
    """How the image was "exposed" and how it is to be encoded."""

    modality: Modality
    photometric: Photometric
    bits_stored: int
    pixel_spacing_mm: float
    rows: int
    columns: int
    rescale: tuple[float, float] | None  #: (slope, intercept), or absent
    window: tuple[float, float] | None  #: (centre, width) in rescaled units, or absent
    encoding: Encoding
    kvp: float
    exposure_mas: float


@dataclass(frozen=True)
class Patient:
    """A synthetic patient: index within the set, demographics and disease severity."""

    index: int
    sex: Literal["F", "M"]
    age: int
    severity: float  #: latent patient-level severity, standard normal


@dataclass(frozen=True)
class Visit:
    """Which of a patient's follow-up visits an image belongs to (:mod:`.visits`)."""

    number: int  #: 1 for the first visit
    of: int  #: the patient's visits in the set
    days: int  #: days since the first visit (0 for the first)


@dataclass
class PhantomImage:
    """One generated radiograph: stored pixel values, acquisition and ground truth."""

    pixels: np.ndarray  #: 2-D uint16 stored values (MONOCHROME1 already inverted)
    acquisition: Acquisition
    patient: Patient
    study_index: int  #: index of the study (one per patient) within the set
    image_index: int  #: index of the image within the set
    hands: tuple[Side, ...]  #: patient sides shown, left to right as the hands are listed
    joints: list[JointTruth]
    visit: Visit | None = None  #: set for a follow-up set (``rascore phantom --visits``)

    @property
    def laterality(self) -> Literal["L", "R", "B"]:
        return "B" if len(self.hands) == 2 else self.hands[0]
