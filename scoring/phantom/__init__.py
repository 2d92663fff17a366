"""A synthetic hand-radiograph phantom with exact per-joint Sharp/van der Heijde labels.

Real RA radiographs with per-joint scores cannot be had here, so the project makes its own
ground truth. Models trained on it are not for diagnostic use.
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
