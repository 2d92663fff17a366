"""Write a hand radiograph, given its pixels, as a standard CR or DX DICOM file.

The phantom generator makes pixels and geometry; this module makes them into files that a PACS,
a viewer and ``dciodvfy`` accept as they are, so that every later stage (the SCP, the reader,
the scorer) is exercised on the same kind of object it will meet in a hospital.
Everything is derived from the inputs alone (no clock, no random UIDs), so the same inputs give
byte-identical files and phantom sets are reproducible.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Literal

import numpy as np
from pydicom import Dataset, Sequence
from pydicom.dataset import FileMetaDataset
from pydicom.uid import (
    UID,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
)

from dicom_io.codes import code_item

__all__ = [
    "CR_IMAGE_STORAGE",
    "DX_IMAGE_STORAGE_FOR_PRESENTATION",
    "SUPPORTED_TRANSFER_SYNTAXES",
    "RadiographSpec",
    "StudyIdentity",
    "build_radiograph",
    "write_radiograph",
]

CR_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.1")
DX_IMAGE_STORAGE_FOR_PRESENTATION = UID(DigitalXRayImageStorageForPresentation)

#: Lossless only: the scores must not depend on how a file was stored.
SUPPORTED_TRANSFER_SYNTAXES: tuple[UID, ...] = (
    UID(ExplicitVRLittleEndian),
    UID(JPEG2000Lossless),
    UID(JPEGLSLossless),
)


def _software_version() -> str:
    try:
        return f"rascore {version('rascore')}"
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "rascore (source)"


SOFTWARE_VERSION = _software_version()

# SNOMED CT "Hand" (CID 4031 Common Anatomic Regions), the code DX Anatomy Imaged asks for.
_HAND_CODE = ("85562004", "SCT", "Hand")

# CID 4010 DX View, for the View Code Sequence that DX Positioning wants beside ViewPosition.
_VIEW_CODES = {
    "PA": ("272479007", "SCT", "postero-anterior"),
    "AP": ("399348003", "SCT", "antero-posterior"),
}

_UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")
_DATE = re.compile(r"^\d{8}$")
_TIME = re.compile(r"^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$")
_CS = re.compile(r"^[A-Z0-9 _]{0,16}$")


@dataclass(frozen=True)
class StudyIdentity:
    """Patient and study attributes shared by every image of one study."""

    patient_name: str
    patient_id: str
    patient_birth_date: str  # YYYYMMDD or "" (unknown)
    patient_sex: Literal["F", "M", "O", ""]
    study_instance_uid: str
    study_id: str
    accession_number: str
    study_date: str  # YYYYMMDD
    study_time: str  # HHMMSS
    study_description: str
    referring_physician_name: str = ""


@dataclass(frozen=True)
class RadiographSpec:
    """One radiograph: stored pixel values plus what a viewer needs to show and measure it.

    ``rescale`` and ``window`` may be ``None`` only for CR (DX For Presentation requires both);
    ``window`` is in rescaled (modality LUT output) units.
    """

    pixels: np.ndarray  # 2-D, unsigned integers, all < 2**bits_stored
    bits_stored: int  # 10..16
    photometric: Literal["MONOCHROME1", "MONOCHROME2"]
    modality: Literal["CR", "DX"]
    pixel_spacing_mm: float  # square pixels, at the detector plane and (no magnification) the hand
    laterality: Literal["L", "R", "B", "U"]  # B = both hands in one image
    sop_instance_uid: str
    series_instance_uid: str
    series_number: int
    instance_number: int
    series_description: str
    content_date: str  # YYYYMMDD; given, never the wall clock, so output is reproducible
    content_time: str  # HHMMSS
    rescale: tuple[float, float] | None = None  # (slope, intercept)
    window: tuple[float, float] | None = None  # (centre, width)
    window_explanation: str = "HAND"
    transfer_syntax_uid: str = ExplicitVRLittleEndian
    body_part: str = "HAND"
    view_position: str = "PA"
    patient_orientation: tuple[str, str] = ("L", "H")  # (row direction, column direction)
    manufacturer: str = "rascore"
    model_name: str = "rascore hand phantom"
    software_version: str = SOFTWARE_VERSION
    image_comments: str = "SYNTHETIC PHANTOM - NOT FOR DIAGNOSTIC USE"
    kvp: float | None = None
    exposure_mas: int | None = None
    source_to_detector_mm: float | None = None


def _validate(spec: RadiographSpec, study: StudyIdentity) -> np.ndarray:
    """Reject specs that cannot become a valid object; return the pixels as uint16."""
    px = _validated_pixels(spec)
    _validate_image(spec)
    _validate_identity(spec, study)
    return px.astype(np.uint16, copy=False)


def _validated_pixels(spec: RadiographSpec) -> np.ndarray:
    """The pixels, when they are a 2-D array of stored values that fit ``bits_stored``."""
    px = np.asarray(spec.pixels)
    if px.ndim != 2:
        raise ValueError(f"pixels must be a 2-D array, got shape {px.shape}")
    if px.size == 0 or px.shape[0] > 0xFFFF or px.shape[1] > 0xFFFF:
        raise ValueError(f"pixels shape {px.shape} does not fit DICOM Rows/Columns (1..65535)")
    if not np.issubdtype(px.dtype, np.integer):
        raise ValueError(f"pixels must be unsigned integer stored values, got dtype {px.dtype}")
    if not 10 <= spec.bits_stored <= 16:
        raise ValueError(f"bits_stored must be 10..16, got {spec.bits_stored}")
    lo, hi = int(px.min()), int(px.max())
    if lo < 0:
        raise ValueError(f"pixels must be non-negative, minimum is {lo}")
    if hi >= 2**spec.bits_stored:
        raise ValueError(
            f"pixel value {hi} does not fit in bits_stored={spec.bits_stored} "
            f"(maximum {2**spec.bits_stored - 1})"
        )
    return px


def _validate_image(spec: RadiographSpec) -> None:
    """The image's attributes: photometric, modality, laterality, spacing, LUTs, syntax."""
    if spec.photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise ValueError(
            f"photometric must be MONOCHROME1 or MONOCHROME2, not {spec.photometric!r}"
        )
    if spec.modality not in ("CR", "DX"):
        raise ValueError(f"modality must be CR or DX, not {spec.modality!r}")
    if spec.laterality not in ("L", "R", "B", "U"):
        raise ValueError(f"laterality must be L, R, B or U, not {spec.laterality!r}")
    if not (np.isfinite(spec.pixel_spacing_mm) and spec.pixel_spacing_mm > 0):
        raise ValueError(f"pixel_spacing_mm must be positive, got {spec.pixel_spacing_mm}")
    if spec.modality == "DX":
        # DX Image Module: Rescale Slope/Intercept are Type 1 with Enumerated Values 1 and 0,
        # and a For Presentation image must carry a VOI transformation.
        if spec.rescale is None or spec.window is None:
            raise ValueError("DX For Presentation needs both rescale and window")
        if tuple(map(float, spec.rescale)) != (1.0, 0.0):
            raise ValueError(f"DX requires rescale (1, 0) (DX Image Module), got {spec.rescale}")
    if spec.rescale is not None and not (np.isfinite(spec.rescale).all() and spec.rescale[0] != 0):
        raise ValueError(f"rescale slope must be finite and non-zero, got {spec.rescale}")
    if spec.window is not None and not (np.isfinite(spec.window).all() and spec.window[1] >= 1):
        raise ValueError(f"window width must be finite and >= 1, got {spec.window}")
    if UID(spec.transfer_syntax_uid) not in SUPPORTED_TRANSFER_SYNTAXES:
        names = ", ".join(u.name for u in SUPPORTED_TRANSFER_SYNTAXES)
        raise ValueError(f"transfer syntax {spec.transfer_syntax_uid} unsupported; use {names}")


def _validate_identity(spec: RadiographSpec, study: StudyIdentity) -> None:
    """UIDs, dates, times and texts, each as its value representation allows."""
    for name, uid in (
        ("sop_instance_uid", spec.sop_instance_uid),
        ("series_instance_uid", spec.series_instance_uid),
        ("study_instance_uid", study.study_instance_uid),
    ):
        if len(uid) > 64 or not _UID.fullmatch(uid):  # pydicom's UID() would only warn
            raise ValueError(f"{name} {uid!r} is not a valid DICOM UID")
    for name, value in (
        ("content_date", spec.content_date),
        ("study_date", study.study_date),
    ):
        if not _DATE.match(value):
            raise ValueError(f"{name} must be YYYYMMDD, got {value!r}")
    if study.patient_birth_date and not _DATE.match(study.patient_birth_date):
        raise ValueError(
            f"patient_birth_date must be YYYYMMDD or empty, got {study.patient_birth_date!r}"
        )
    for name, value in (("content_time", spec.content_time), ("study_time", study.study_time)):
        if not _TIME.match(value):
            raise ValueError(f"{name} must be HHMMSS[.ffffff], got {value!r}")
    if study.patient_sex not in ("F", "M", "O", ""):
        raise ValueError(f"patient_sex must be F, M, O or empty, got {study.patient_sex!r}")
    for name, value in (("body_part", spec.body_part), ("view_position", spec.view_position)):
        if not _CS.match(value):
            raise ValueError(f"{name} must be a DICOM code string (A-Z, 0-9, ≤16), got {value!r}")
    for name, value, limit in (
        ("patient_id", study.patient_id, 64),
        ("study_id", study.study_id, 16),
        ("accession_number", study.accession_number, 16),
        ("study_description", study.study_description, 64),
        ("series_description", spec.series_description, 64),
        ("window_explanation", spec.window_explanation, 64),
        ("manufacturer", spec.manufacturer, 64),
        ("model_name", spec.model_name, 64),
        ("software_version", spec.software_version, 64),
        ("image_comments", spec.image_comments, 10240),
    ):
        if len(value) > limit:
            raise ValueError(f"{name} must be at most {limit} characters, got {len(value)}")
        if limit <= 64 and "\\" in value:  # the value separator of LO/SH
            raise ValueError(f"{name} must not contain a backslash: {value!r}")


def _ds(value: float) -> str:
    """Format a number as a Decimal String (≤16 characters) the same way on every run."""
    text = f"{value:.10g}"
    if len(text) > 16:
        text = f"{value:.6g}"
    return text


def _patient_and_study(ds: Dataset, study: StudyIdentity) -> None:
    """Patient and General Study, from ``study``."""
    # Patient
    ds.PatientName = study.patient_name
    ds.PatientID = study.patient_id
    ds.PatientBirthDate = study.patient_birth_date
    ds.PatientSex = study.patient_sex

    # General Study
    ds.StudyInstanceUID = study.study_instance_uid
    ds.StudyDate = study.study_date
    ds.StudyTime = study.study_time
    ds.ReferringPhysicianName = study.referring_physician_name
    ds.StudyID = study.study_id
    ds.AccessionNumber = study.accession_number
    ds.StudyDescription = study.study_description


def _series_equipment_and_image(ds: Dataset, spec: RadiographSpec) -> None:
    """General Series (CR or DX Series), General Equipment and General Image."""
    is_dx = spec.modality == "DX"
    # General Series, CR Series / DX Series. The series Laterality (Type 2C) is left out:
    # Image Laterality below carries the side, and dciodvfy errors when both are present.
    ds.Modality = spec.modality
    ds.SeriesInstanceUID = spec.series_instance_uid
    ds.SeriesNumber = int(spec.series_number)
    ds.SeriesDate = spec.content_date
    ds.SeriesTime = spec.content_time
    ds.SeriesDescription = spec.series_description
    ds.BodyPartExamined = spec.body_part
    ds.ViewPosition = spec.view_position  # CR Series; DX Positioning for DX
    if is_dx:
        ds.PresentationIntentType = "FOR PRESENTATION"

    # General Equipment
    ds.Manufacturer = spec.manufacturer
    ds.ManufacturerModelName = spec.model_name
    ds.SoftwareVersions = spec.software_version

    # General Image. Image Laterality is Type 3 here and Type 1 in DX Anatomy Imaged; unlike
    # the series Laterality it can say B (both hands) and U.
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.InstanceNumber = int(spec.instance_number)
    ds.PatientOrientation = list(spec.patient_orientation)
    ds.ContentDate = spec.content_date
    ds.ContentTime = spec.content_time
    ds.ImageLaterality = spec.laterality
    ds.ImageComments = spec.image_comments
    ds.BurnedInAnnotation = "NO"
    ds.RecognizableVisualFeatures = "NO"
    ds.LossyImageCompression = "00"
    # Type 1 in DX Image, Type 3 in General Image (so CR too): states the MONOCHROME1
    # inversion explicitly for viewers that look only here.
    ds.PresentationLUTShape = "INVERSE" if spec.photometric == "MONOCHROME1" else "IDENTITY"


def _pixels_and_detector(ds: Dataset, spec: RadiographSpec, pixels: np.ndarray) -> None:
    """Image Pixel, and CR Image / DX Detector with the pixel spacing."""
    spacing = [_ds(spec.pixel_spacing_mm)] * 2
    # Image Pixel
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = spec.photometric
    ds.Rows, ds.Columns = (int(n) for n in pixels.shape)
    ds.BitsAllocated = 16
    ds.BitsStored = spec.bits_stored
    ds.HighBit = spec.bits_stored - 1
    ds.PixelRepresentation = 0

    # CR Image / DX Detector, with the Basic Pixel Spacing Calibration macro. Pixel Spacing
    # equal to Imager Pixel Spacing means "no magnification correction", which is the truth
    # for a phantom drawn at the detector plane; no calibration type is claimed.
    ds.ImagerPixelSpacing = spacing
    ds.PixelSpacing = spacing
    if spec.kvp is not None:
        ds.KVP = _ds(spec.kvp)
    if spec.source_to_detector_mm is not None:
        ds.DistanceSourceToDetector = _ds(spec.source_to_detector_mm)
    if spec.exposure_mas is not None:
        ds.Exposure = int(spec.exposure_mas)


def _dx_modules(ds: Dataset, spec: RadiographSpec) -> None:
    """What DX adds: DX Detector, Anatomy Imaged, Positioning, Image, Acquisition Context."""
    ds.DetectorType = ""  # Type 2: a phantom has no physical detector
    ds.DetectorConfiguration = "AREA"
    # DX Anatomy Imaged
    ds.AnatomicRegionSequence = Sequence([code_item(*_HAND_CODE)])
    # DX Positioning: ViewPosition brings the module in, so its Type 2 PositionerType
    # must be there, and dciodvfy warns unless the view is also coded.
    ds.PositionerType = ""
    view = _VIEW_CODES.get(spec.view_position)
    if view is not None:
        ds.ViewCodeSequence = Sequence([code_item(*view)])
    # DX Image. LOG: stored values follow the log of exposure. Sign -1: higher values
    # mean less X-ray intensity (bone bright in MONOCHROME2); +1 for MONOCHROME1.
    ds.PixelIntensityRelationship = "LOG"
    ds.PixelIntensityRelationshipSign = -1 if spec.photometric == "MONOCHROME2" else 1
    # Acquisition Context (Mandatory module, Type 2 sequence)
    ds.AcquisitionContextSequence = Sequence([])


def _luts(ds: Dataset, spec: RadiographSpec) -> None:
    """Modality LUT and VOI LUT, when the spec has them."""
    # Modality LUT (for DX the DX Image module fixes slope 1, intercept 0)
    if spec.rescale is not None:
        ds.RescaleIntercept = _ds(spec.rescale[1])
        ds.RescaleSlope = _ds(spec.rescale[0])
        ds.RescaleType = "US"  # unspecified units

    # VOI LUT
    if spec.window is not None:
        ds.WindowCenter = _ds(spec.window[0])
        ds.WindowWidth = _ds(spec.window[1])
        ds.WindowCenterWidthExplanation = spec.window_explanation
        ds.VOILUTFunction = "LINEAR"


def build_radiograph(spec: RadiographSpec, study: StudyIdentity) -> Dataset:
    """Build the dataset (with file meta) for one CR or DX For Presentation radiograph.

    Raises ValueError for a spec that cannot be encoded as a valid instance.
    """
    pixels = _validate(spec, study)
    is_dx = spec.modality == "DX"
    sop_class = DX_IMAGE_STORAGE_FOR_PRESENTATION if is_dx else CR_IMAGE_STORAGE

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = UID(spec.sop_instance_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian

    ds = Dataset()
    ds.file_meta = meta

    # SOP Common
    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: any patient name survives
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = spec.sop_instance_uid
    ds.InstanceCreationDate = spec.content_date
    ds.InstanceCreationTime = spec.content_time

    _patient_and_study(ds, study)
    _series_equipment_and_image(ds, spec)
    _pixels_and_detector(ds, spec, pixels)
    if is_dx:
        _dx_modules(ds, spec)
    _luts(ds, spec)

    ds.PixelData = pixels.astype("<u2", copy=False).tobytes()

    ts = UID(spec.transfer_syntax_uid)
    if ts != ExplicitVRLittleEndian:
        # generate_instance_uid defaults to True in pydicom 3.0 and would replace our UID.
        ds.compress(ts, generate_instance_uid=False)
    return ds


def write_radiograph(spec: RadiographSpec, study: StudyIdentity, path: Path | str) -> Path:
    """Write the radiograph to ``path`` (parents created) and return ``path``.

    The file is written beside the target and renamed into place so that a reader (or an SCU
    watching a folder) never sees half a file.
    """
    ds = build_radiograph(spec, study)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    try:
        ds.save_as(tmp, enforce_file_format=True)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
