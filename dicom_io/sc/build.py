"""The overlay as a Secondary Capture Image IOD in a new series of the source's study."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from highdicom.sc import SCImage
from pydicom import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from dicom_io.codes import code_item
from dicom_io.results import (
    NOT_FOR_DIAGNOSTIC_USE,
    ModelInfo,
    ScoringResult,
    building,
)
from dicom_io.sc.render import overlay_canvas, render_overlay
from dicom_io.source_header import (
    body_part,
    result_header,
    series_laterality_applies,
    spacing_pair,
    values,
)

SERIES_DESCRIPTION = "RA joint scores overlay - NOT FOR DIAGNOSTIC USE"

# Conventional DICOM codes for the source reference (PS3.16 CID 7202, CID 7203).
_PURPOSE_SOURCE_IMAGE = ("121322", "DCM", "Source image for image processing operation")
_DERIVATION_DESCRIPTION = (
    "Source image windowed for display, with algorithm joint scores (Sharp/van der Heijde JSN "
    "and erosion) burned in; not for diagnostic use"
)


def _image_reference(source: Dataset, purpose: tuple[str, str, str] | None) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = source.SOPClassUID
    item.ReferencedSOPInstanceUID = source.SOPInstanceUID
    if purpose is not None:
        item.PurposeOfReferenceCodeSequence = DicomSequence([code_item(*purpose)])
    return item


def _scaled_spacing(value: Any, scale: tuple[float, float]) -> tuple[float, float] | None:
    """A (row, column) spacing of the source, on the overlay's grid (``scale``: overlay pixels
    per source pixel, x then y), in at most 16 characters a value (DS)."""
    pair = spacing_pair(value)
    if pair is None:
        return None
    return float(f"{pair[0] / scale[1]:.10g}"), float(f"{pair[1] / scale[0]:.10g}")


def _pixel_spacing(source: Dataset, scale: tuple[float, float]) -> tuple[float, float] | None:
    """Pixel Spacing of the source on the overlay's (shrunk) grid, if the source has one.

    A spacing calibrated at the patient carries over, times the shrink. Imager Pixel Spacing
    alone (at the detector, not corrected for magnification) is not carried: the SC IOD has no
    place for it, and calling it Pixel Spacing would claim a calibration the source does not
    make.
    """
    return _scaled_spacing(source.get("PixelSpacing"), scale)


#: Transfer syntaxes that lose information: JPEG baseline / extended, JPEG-LS near-lossless,
#: JPEG 2000 and HTJ2K that are not lossless-only.
_LOSSY_TRANSFER_SYNTAXES = frozenset(
    {
        "1.2.840.10008.1.2.4.50",
        "1.2.840.10008.1.2.4.51",
        "1.2.840.10008.1.2.4.81",
        "1.2.840.10008.1.2.4.91",
        "1.2.840.10008.1.2.4.203",
    }
)


def _lossy(source: Dataset) -> bool:
    if str(source.get("LossyImageCompression", "") or "").strip() == "01":
        return True
    meta = getattr(source, "file_meta", None)
    syntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    return syntax in _LOSSY_TRANSFER_SYNTAXES


def _set_laterality(sc: Dataset, source: Dataset) -> None:
    """Image Laterality, else the series Laterality, of the source: exactly one of the two.

    Image Laterality (General Image) can say B (both hands) and U; the series Laterality only
    R or L. dciodvfy wants the series Laterality (Type 2C) exactly when Image Laterality is
    absent, and errors when both are there; an unknown side is Laterality present and empty.
    A series of an unpaired body part (CHEST) has neither.
    """
    for keyword in ("ImageLaterality", "Laterality"):
        if keyword in sc:
            del sc[keyword]
    image = str(source.get("ImageLaterality", "") or "").strip().upper()
    series = str(source.get("Laterality", "") or "").strip().upper()
    if image in ("L", "R", "B", "U"):
        sc.ImageLaterality = image
    elif not series_laterality_applies(source):
        return  # an unpaired body part (a chest): no Laterality at all
    elif series in ("L", "R"):
        sc.Laterality = series
    else:
        sc.Laterality = ""


@building("overlay SC")
def build_overlay_sc(
    source: Dataset,
    result: ScoringResult,
    *,
    series_instance_uid: str | None = None,
    sop_instance_uid: str | None = None,
    series_number: int = 902,
    instance_number: int = 1,
    grey: np.ndarray | None = None,
) -> SCImage:
    """The overlay as a Secondary Capture Image in a new series of the source's study.

    RGB, same patient and study as ``source``, Burned In Annotation YES, the source named in
    the Source Image and Referenced Image Sequences. UIDs are generated when not given.
    ``grey`` is the display grey-scale already at hand (see :func:`render_overlay`), so that
    ``source`` may be a header without pixels; without it the source is decoded. Raises
    :class:`~dicom_io.results.ResultMismatch` when ``result`` is about another image,
    :class:`dicom_io.reading.UnreadableImage` when the source's pixels must be decoded and
    cannot be, and :class:`~dicom_io.results.ResultBuildError` when the SC cannot be built for
    another reason.
    """
    header = result_header(source, result.source_sop_instance_uid)
    grey8, scale = overlay_canvas(source, grey)
    pixels = render_overlay(source, result, grey8)

    return overlay_image(
        source,
        header,
        pixels,
        scale,
        result.model,
        identity=(
            series_instance_uid or generate_uid(),
            series_number,
            sop_instance_uid or generate_uid(),
            instance_number,
        ),
        series_description=SERIES_DESCRIPTION,
    )


def overlay_image(
    source: Dataset,
    header: Dataset,
    pixels: np.ndarray,
    scale: tuple[float, float],
    model: ModelInfo,
    *,
    identity: tuple[str, int, str, int],
    series_description: str,
    derivation: str = _DERIVATION_DESCRIPTION,
) -> SCImage:
    """An RGB overlay drawn from ``source`` as a Secondary Capture in a new series of its
    study: derived from it and referencing it, burned-in annotation, not for diagnostic use.
    ``identity`` is (series UID, series number, SOP instance UID, instance number);
    ``derivation`` says what was drawn. The
    per-image overlay and the study's overlay of changes (:mod:`dicom_io.sc.progress`) are
    both made here."""
    series_instance_uid, series_number, sop_instance_uid, instance_number = identity
    sc = SCImage.from_ref_dataset(
        ref_dataset=header,
        pixel_array=pixels,
        photometric_interpretation="RGB",
        bits_allocated=8,
        coordinate_system="PATIENT",
        series_instance_uid=series_instance_uid,
        series_number=series_number,
        sop_instance_uid=sop_instance_uid,
        instance_number=instance_number,
        manufacturer=model.manufacturer,
        manufacturer_model_name=model.name,
        software_versions=model.version,
        series_description=series_description,
        pixel_spacing=_pixel_spacing(source, scale),  # type: ignore[arg-type]  # highdicom says int
        # highdicom insists on an orientation for PATIENT images and accepts single letters
        # only; the source's own value (or an empty Type 2 one) replaces this below.
        patient_orientation=("L", "F"),
        transfer_syntax_uid=ExplicitVRLittleEndian,
    )
    # Study attributes beyond what highdicom copies (Study Description, ...), so that
    # dcentvfy sees the same study entity in the source and its results.
    sc.copy_patient_and_study_information(header)
    _from_source(sc, source, scale)

    sc.DeviceUID = model.device_uid
    sc.ConversionType = "WSD"  # made on a workstation from another image
    sc.BurnedInAnnotation = "YES"
    sc.ImageComments = NOT_FOR_DIAGNOSTIC_USE
    sc.DerivationDescription = derivation
    sc.SourceImageSequence = DicomSequence([_image_reference(header, _PURPOSE_SOURCE_IMAGE)])
    sc.ReferencedImageSequence = DicomSequence([_image_reference(header, None)])
    return sc


def _from_source(sc: Dataset, source: Dataset, scale: tuple[float, float]) -> None:
    """What the overlay carries over from its source: orientation, laterality, body part, the
    film's scanned spacing, and the flags for recognisable features and lossy compression."""
    orientation = values(source.get("PatientOrientation"))
    if len(orientation) == 2 and all(str(v).strip() for v in orientation):
        sc["PatientOrientation"] = copy.deepcopy(source["PatientOrientation"])
    else:
        sc.PatientOrientation = []  # Type 2: present, empty (unknown)
    _set_laterality(sc, source)
    if body_part(source) is not None:  # Type 3: a mangled one is left out
        sc.BodyPartExamined = body_part(source)
    scanned = _scaled_spacing(source.get("NominalScannedPixelSpacing"), scale)
    if scanned is not None:  # a digitised film: its grid, shrunk as the overlay is
        sc.NominalScannedPixelSpacing = list(scanned)
    sc.RecognizableVisualFeatures = _yes_no(source.get("RecognizableVisualFeatures"), "NO")
    # Once lossy, always flagged (PS3.3 C.7.6.1.1.5): the overlay is as lossy as its source.
    sc.LossyImageCompression = "01" if _lossy(source) else "00"
    for keyword in ("LossyImageCompressionRatio", "LossyImageCompressionMethod"):
        if keyword in source and source[keyword].value and sc.LossyImageCompression == "01":
            sc[keyword] = copy.deepcopy(source[keyword])


def _yes_no(value: Any, default: str) -> str:
    """YES or NO from a source's value; ``default`` for anything else (empty, mangled)."""
    text = str(value or "").strip().upper()
    return text if text in ("YES", "NO") else default
