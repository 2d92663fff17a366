"""Which IOD module each top-level attribute of a created object belongs to.

The builders decide which attributes an object has; this map only names their modules (as
PS3.3 lists them for the IOD), so a new attribute shows up in the document under
"(module not named)" until it is placed here. ``tests/test_conformance.py`` checks every
placement against the module dciodvfy verified the attribute in.
"""

from __future__ import annotations

#: module -> the names dciodvfy gives it or the macros it includes (for the test)
DCIODVFY_NAMES: dict[str, tuple[str, ...]] = {
    "Patient": ("Patient",),
    "General Study": ("GeneralStudy",),
    "General Series": ("GeneralSeries",),
    "SR Document Series": ("SRDocumentSeries",),
    "Presentation Series": ("PresentationSeries",),
    "General Equipment": ("GeneralEquipment",),
    "SC Equipment": ("SCEquipment",),
    "SR Document General": ("SRDocumentGeneral",),
    "SR Document Content": ("DocumentContentMacro", "ContainerMacro", "DocumentRelationshipMacro"),
    "General Image": ("GeneralImage",),
    "General Reference": ("GeneralReference",),
    "Image Pixel": ("ImagePixel", "ImagePixelDescriptionMacro"),
    "SC Image": ("SCImage", "BasicPixelSpacingCalibrationMacro"),
    "Presentation State Identification": (
        "PresentationStateIdentification",
        "ContentIdentificationMacro",
        "ContentCreatorMacro",
    ),
    "Presentation State Relationship": ("PresentationStateRelationshipMacro",),
    "Displayed Area": ("DisplayedArea",),
    "Graphic Annotation": ("GraphicAnnotation",),
    "Graphic Layer": ("GraphicLayer",),
    "Graphic Group": ("GraphicGroup",),
    "Softcopy VOI LUT": ("SoftcopyVOILUT",),
    "Softcopy Presentation LUT": ("SoftcopyPresentationLUT",),
    "SOP Common": ("SOPCommon",),
}
"""Modules in the order the document lists them (PS3.3's IOD tables, roughly)."""

_COMMON: dict[str, tuple[str, ...]] = {
    "Patient": ("PatientName", "PatientID", "PatientBirthDate", "PatientSex"),
    "General Study": (
        "StudyInstanceUID",
        "StudyDate",
        "StudyTime",
        "ReferringPhysicianName",
        "StudyID",
        "AccessionNumber",
        "StudyDescription",
    ),
    "General Equipment": ("Manufacturer", "ManufacturerModelName", "SoftwareVersions", "DeviceUID"),
    "SOP Common": (
        "SOPClassUID",
        "SOPInstanceUID",
        "SpecificCharacterSet",
        "InstanceCreationDate",
        "InstanceCreationTime",
        "CodingSchemeIdentificationSequence",
        "ContributingEquipmentSequence",
    ),
}
_SERIES = ("Modality", "SeriesInstanceUID", "SeriesNumber", "SeriesDescription")

_BY_FAMILY: dict[str, dict[str, tuple[str, ...]]] = {
    "SR": {
        "SR Document Series": (*_SERIES, "ReferencedPerformedProcedureStepSequence"),
        "SR Document General": (
            "InstanceNumber",
            "ContentDate",
            "ContentTime",
            "CompletionFlag",
            "VerificationFlag",
            "PreliminaryFlag",
            "PerformedProcedureCodeSequence",
            "CurrentRequestedProcedureEvidenceSequence",
            "PertinentOtherEvidenceSequence",
            "PredecessorDocumentsSequence",
        ),
        "SR Document Content": (
            "ValueType",
            "ConceptNameCodeSequence",
            "ContinuityOfContent",
            "ContentTemplateSequence",
            "ContentSequence",
        ),
    },
    "SC": {
        "General Series": (*_SERIES, "BodyPartExamined", "Laterality"),
        "SC Equipment": ("ConversionType",),
        "General Image": (
            "InstanceNumber",
            "PatientOrientation",
            "ContentDate",
            "ContentTime",
            "ImageType",
            "ImageComments",
            "BurnedInAnnotation",
            "RecognizableVisualFeatures",
            "LossyImageCompression",
            "LossyImageCompressionRatio",
            "LossyImageCompressionMethod",
            "ImageLaterality",
        ),
        "General Reference": (
            "ReferencedImageSequence",
            "DerivationDescription",
            "SourceImageSequence",
        ),
        "Image Pixel": (
            "SamplesPerPixel",
            "PhotometricInterpretation",
            "Rows",
            "Columns",
            "BitsAllocated",
            "BitsStored",
            "HighBit",
            "PixelRepresentation",
            "PlanarConfiguration",
            "PixelData",
        ),
        "SC Image": ("DateOfSecondaryCapture", "TimeOfSecondaryCapture", "PixelSpacing"),
    },
    "PR": {
        "Presentation Series": ("Modality",),
        "General Series": (*_SERIES, "BodyPartExamined", "Laterality"),
        "Presentation State Identification": (
            "InstanceNumber",
            "ContentLabel",
            "ContentDescription",
            "PresentationCreationDate",
            "PresentationCreationTime",
            "ContentCreatorName",
        ),
        "Presentation State Relationship": ("ReferencedSeriesSequence",),
        "Displayed Area": ("DisplayedAreaSelectionSequence",),
        "Graphic Annotation": ("GraphicAnnotationSequence",),
        "Graphic Layer": ("GraphicLayerSequence",),
        "Graphic Group": ("GraphicGroupSequence",),
        "Softcopy VOI LUT": ("SoftcopyVOILUTSequence",),
        "Softcopy Presentation LUT": ("PresentationLUTShape",),
    },
}

UNPLACED = "(module not named)"


def module_of(family: str, keyword: str) -> str:
    """The module of ``keyword`` in an object of ``family`` (``SR``, ``SC`` or ``PR``)."""
    for module, keywords in (*_BY_FAMILY[family].items(), *_COMMON.items()):
        if keyword in keywords:
            return module
    return UNPLACED


def order(module: str) -> int:
    names = list(DCIODVFY_NAMES)
    return names.index(module) if module in names else len(names)
