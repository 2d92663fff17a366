"""A synthetic hand-radiograph phantom with exact per-joint Sharp/van der Heijde labels.

Real RA radiographs with per-joint scores cannot be had here, so the project makes its own
ground truth. Models trained on it are not for diagnostic use.

The flow, patient → hands → pose and field → exposure → stored pixels, is
:func:`generate_image` (:mod:`.generator`). Its parts: :mod:`.disease` samples the scores,
:mod:`.anatomy` builds each hand's bones (:mod:`.hand`) with the joints' lesions drawn in
(:mod:`.lesions`), :mod:`.render` and :mod:`.soft_tissue` project them into attenuation,
:mod:`.acquisition` exposes and quantises; :mod:`.model` holds the plain result types and
:mod:`.gallery` draws contact sheets.

Imports only :mod:`scoring.joints`. The scorer never imports this package: pixels, geometry and
labels go out as plain data, and ``worker`` turns them into DICOM through ``dicom_io``.
"""

from .generator import GENERATOR_VERSION, PhantomConfig, generate_image, generate_set, study_layout
from .model import JOINT_NAMES, Acquisition, JointTruth, Patient, PhantomImage, joint_type

__all__ = [
    "GENERATOR_VERSION",
    "JOINT_NAMES",
    "Acquisition",
    "JointTruth",
    "Patient",
    "PhantomConfig",
    "PhantomImage",
    "generate_image",
    "generate_set",
    "joint_type",
    "study_layout",
]
