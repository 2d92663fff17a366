"""What the SCP negotiates: the SOP classes it stores and the transfer syntaxes it accepts."""

from __future__ import annotations

from collections.abc import Iterable

from pydicom.uid import (
    JPEG2000,
    UID,
    ComputedRadiographyImageStorage,
    DeflatedExplicitVRLittleEndian,
    DigitalXRayImageStorageForPresentation,
    DigitalXRayImageStorageForProcessing,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
    SecondaryCaptureImageStorage,
)
from pynetdicom import build_context
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

STORAGE_SOP_CLASSES: tuple[UID, ...] = (
    ComputedRadiographyImageStorage,
    DigitalXRayImageStorageForPresentation,
    DigitalXRayImageStorageForProcessing,
    SecondaryCaptureImageStorage,
)
"""The radiograph storage SOP classes the SCP accepts (besides Verification)."""

RESULT_SOP_CLASSES: tuple[UID, ...] = (
    UID("1.2.840.10008.5.1.4.1.1.88.34"),  # Comprehensive 3D SR
    UID("1.2.840.10008.5.1.4.1.1.11.1"),  # Grayscale Softcopy Presentation State
    SecondaryCaptureImageStorage,
)
"""What rascore sends back: an SCP standing in for a PACS (demo, benchmark) accepts these."""

TRANSFER_SYNTAXES: tuple[UID, ...] = (
    # The acceptor takes the first of these that the sender proposes in a context, so the
    # uncompressed ones come first: a sender is never asked to compress (let alone lossily)
    # an image it holds uncompressed. Compressed images offered only compressed arrive as
    # they are.
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    JPEGLosslessSV1,
    JPEGLossless,
    RLELossless,
    JPEG2000,
    JPEGLSNearLossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
)
"""Transfer syntaxes accepted for the storage SOP classes, in order of preference."""


def supported_contexts(
    sop_classes: Iterable[str] = STORAGE_SOP_CLASSES,
) -> list[PresentationContext]:
    """The presentation contexts the SCP supports: Verification and ``sop_classes``."""
    contexts = [build_context(Verification, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])]
    contexts += [build_context(sop, list(TRANSFER_SYNTAXES)) for sop in sop_classes]
    return contexts
