"""The scores as a DICOM Structured Report, and back.

:func:`build_sr` writes a Comprehensive 3D SR whose root is TID 1500 "Measurement Report", laid
out as IHE AI Results (AIR) asks:

* the observer is the algorithm (TID 1004 device observer: device UID, name, manufacturer,
  model name); Procedure Reported is the imaging procedure (LOINC hand radiograph for
  arthritis, by the image's laterality);
* an Image Library (TID 1600) entry for the source radiograph;
* one TID 1410 planar ROI group per joint: tracking identifier (the label, e.g. ``R_PIP3``, and
  a UID), the finding site (the coded joint with its laterality), the joint's box as a closed
  5-point POLYLINE of (column, row) points on the source image, the JSN and erosion grades as
  coded qualitative evaluations and the class probabilities of both networks as measurements;
* a joint the model will not grade keeps its group, region and finding site, but both
  sub-scores have the coded value "Not assessable" instead of a grade, and the reason follows as
  a TEXT qualitative evaluation (its class probabilities, if the model gave any, stay as they
  are: they are what the model said, not a grade);
* one TID 1501 group per hand (finding site Hand with laterality) and one for the image, with
  the SvdH JSN and erosion totals over the assessable joints, the number of joints they cover
  ("Number of joints scored") and the number left out as not assessable;
* TID 4019 algorithm identification (name, version, manufacturer) in every group;
* a TID 1500 "Qualitative Evaluations" container with the not-for-diagnostic-use comment;
* the algorithm in the Contributing Equipment Sequence (purpose: Processing Equipment;
  manufacturer, model name, software version, Device UID), VerificationFlag UNVERIFIED,
  PreliminaryFlag PRELIMINARY, and a Series Description that says it is not for diagnosis.

An image with no joints gives a report without measurement groups: TID 1500 needs at least one
of its Imaging Measurements or Qualitative Evaluations containers, and the latter holds the
note and says that no joint was found.

Coordinates: SCOORD image coordinates put (0, 0) at the top left corner of the top left pixel,
so the box ``(x, y, w, h)`` (pixels x..x+w-1, y..y+h-1) is the polygon (x, y), (x+w, y),
(x+w, y+h), (x, y+h), (x, y). Graphic Data is 32-bit float, exact for these integers.

Probabilities: highdicom writes a Python float both as Numeric Value (DS, rounded to 16
characters, for display) and as Floating Point Value (FD, the exact IEEE double);
:func:`read_sr` reads the FD, so probabilities round-trip bit for bit. Integers (totals, counts)
are written as DS only.

:func:`read_sr` turns such a report back into the :class:`~dicom_io.results.ScoringResult`
(labels, boxes, grades, probabilities, model) and checks that the totals agree with the joints.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import highdicom as hd
import numpy as np
from highdicom.sr import (
    AlgorithmIdentification,
    CodedConcept,
    Comprehensive3DSR,
    ContainerContentItem,
    DeviceObserverIdentifyingAttributes,
    FindingSite,
    GraphicTypeValues,
    ImageRegion,
    Measurement,
    MeasurementReport,
    MeasurementsAndQualitativeEvaluations,
    ObservationContext,
    ObserverContext,
    PlanarROIMeasurementsAndQualitativeEvaluations,
    QualitativeEvaluation,
    RelationshipTypeValues,
    SourceImageForMeasurementGroup,
    SourceImageForRegion,
    TextContentItem,
    TrackingIdentifier,
)
from pydicom import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.sr.codedict import codes as dcm_codes
from pydicom.sr.coding import Code
from pydicom.uid import Comprehensive3DSRStorage

from dicom_io import codes
from dicom_io.results import (
    EROSION_GRADES,
    JSN_GRADES,
    NOT_ASSESSABLE,
    NOT_FOR_DIAGNOSTIC_USE,
    JointResult,
    ModelInfo,
    ResultMismatch,
    ScoringResult,
    building,
)
from dicom_io.source_header import header_copy, spacing_pair, values

__all__ = [
    "NO_JOINTS_TEXT",
    "SERIES_DESCRIPTION",
    "SRFormatError",
    "build_sr",
    "read_sr",
]

SERIES_DESCRIPTION = "RA joint scores (SvdH) - NOT FOR DIAGNOSTIC USE"
NO_JOINTS_TEXT = "No hand joint was detected in the image; no joint was scored."
IMAGE_TOTALS_ID = "image totals"
_HAND_TOTALS_ID = "{side} hand totals"
_LABEL = re.compile(r"^(L|R)_(IP|PIP[2-5]|MCP[1-5])$")


class SRFormatError(ValueError):
    """The dataset is not a rascore scoring report, or its content is inconsistent."""


def _software_version() -> str:
    try:
        return f"rascore {version('rascore')}"
    except PackageNotFoundError:  # a source tree that was never installed
        return "rascore (source)"


# --------------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------------


@building("SR")
def build_sr(
    source: Dataset,
    result: ScoringResult,
    *,
    series_instance_uid: str | None = None,
    sop_instance_uid: str | None = None,
    series_number: int = 901,
    instance_number: int = 1,
) -> Comprehensive3DSR:
    """Build the TID 1500 Comprehensive 3D SR of ``result`` for the radiograph ``source``.

    ``source`` needs its header only (pixels are not read). UIDs are generated unless given;
    the tracking UIDs of the groups derive from the SR's SOP Instance UID, so equal inputs and
    UIDs give equal content. Raises :class:`~dicom_io.results.ResultMismatch` (a
    ``ValueError``) when the result does not belong to ``source`` or is not a valid scoring
    (labels, grades, probabilities, boxes in the image), and
    :class:`~dicom_io.results.ResultBuildError` when the report cannot be built for another
    reason, with one line that says why.
    """
    header, unknown = _header_for_highdicom(source)
    _validate(header, result)
    sop_uid = str(sop_instance_uid) if sop_instance_uid else str(hd.UID())
    series_uid = str(series_instance_uid) if series_instance_uid else str(hd.UID())
    model = result.model

    def tracking_uid(key: str) -> str:
        # a name-based (version 5) UUID as a 2.25 UID (PS3.5 B.2): the same for equal inputs
        return f"2.25.{uuid.uuid5(uuid.NAMESPACE_OID, f'{sop_uid}/tracking/{key}').int}"

    algorithm = AlgorithmIdentification(
        name=model.name, version=model.version, manufacturer=model.manufacturer
    )
    region_source = SourceImageForRegion.from_source_image(header)
    group_source = SourceImageForMeasurementGroup.from_source_image(header)

    groups: list[
        PlanarROIMeasurementsAndQualitativeEvaluations | MeasurementsAndQualitativeEvaluations
    ] = []
    for joint in result.joints:
        groups.append(_joint_group(joint, algorithm, region_source, tracking_uid(joint.label)))
    scored_by_side = result.hand_joints_scored()
    for side, (jsn, erosion) in sorted(result.hand_totals().items()):
        n = scored_by_side[side]
        not_assessable = sum(1 for j in result.not_assessable if j.side == side)
        identifier = _HAND_TOTALS_ID.format(side=side)
        groups.append(
            MeasurementsAndQualitativeEvaluations(
                tracking_identifier=TrackingIdentifier(
                    uid=tracking_uid(identifier), identifier=identifier
                ),
                algorithm_id=algorithm,
                finding_sites=[FindingSite(codes.HAND, laterality=codes.LATERALITY[side])],
                measurements=[
                    _measurement(codes.TOTAL_JSN_HAND, jsn),
                    _measurement(codes.TOTAL_EROSION_HAND, erosion),
                    _measurement(codes.NUMBER_OF_JOINTS, n),
                    _measurement(codes.NUMBER_NOT_ASSESSABLE, not_assessable),
                ],
                source_images=[group_source],
            )
        )
    if result.joints:
        groups.append(
            MeasurementsAndQualitativeEvaluations(
                tracking_identifier=TrackingIdentifier(
                    uid=tracking_uid(IMAGE_TOTALS_ID), identifier=IMAGE_TOTALS_ID
                ),
                algorithm_id=algorithm,
                measurements=[
                    _measurement(codes.TOTAL_JSN_IMAGE, result.total_jsn),
                    _measurement(codes.TOTAL_EROSION_IMAGE, result.total_erosion),
                    _measurement(codes.NUMBER_OF_JOINTS, result.joints_scored),
                    _measurement(codes.NUMBER_NOT_ASSESSABLE, len(result.not_assessable)),
                ],
                source_images=[group_source],
            )
        )

    report = _measurement_report(header, model, groups)
    _drop_unknown_descriptors(report, unknown)
    equipment = hd.ContributingEquipment(
        manufacturer=model.manufacturer,
        purpose_of_reference=codes.PROCESSING_EQUIPMENT,
        manufacturer_model_name=model.name,
        software_versions=model.version,
        contribution_description=(
            "Sharp/van der Heijde JSN and erosion scoring algorithm. " + NOT_FOR_DIAGNOSTIC_USE
        )[:1024],
    )
    equipment.DeviceUID = model.device_uid  # changes whenever the model is retrained

    sr = Comprehensive3DSR(
        evidence=[header],
        content=report,
        series_instance_uid=series_uid,
        series_number=series_number,
        sop_instance_uid=sop_uid,
        instance_number=instance_number,
        manufacturer="rascore",
        manufacturer_model_name="rascore",
        software_versions=_software_version(),
        is_complete=True,
        is_final=False,
        is_verified=False,
        series_description=SERIES_DESCRIPTION,
        coding_schemes=[codes.coding_scheme_identification()],
        contributing_equipment=[equipment],
    )
    return sr


#: Image Library descriptors of a projection radiograph (TID 1603) and where they come from
_PROJECTION_DESCRIPTORS = {
    "PatientOrientation": (
        dcm_codes.DCM.PatientOrientationRow,
        dcm_codes.DCM.PatientOrientationColumn,
    ),
    "ImagerPixelSpacing": (
        dcm_codes.DCM.HorizontalPixelSpacing,
        dcm_codes.DCM.VerticalPixelSpacing,
    ),
}


def _header_for_highdicom(source: Dataset) -> tuple[Dataset, list[Code]]:
    """A header-only copy of ``source`` that highdicom can build from, and the descriptors
    it will have to be told to forget.

    highdicom describes a projection radiograph (TID 1603) by its Patient Orientation and its
    Imager Pixel Spacing, and reads both unconditionally. Scanned films and de-identified
    exports often lack them. The spacing descriptors then come from Pixel Spacing, else the
    Nominal Scanned Pixel Spacing of a digitised film (both row, column, as Imager Pixel
    Spacing); what none of them gives gets a placeholder, and the descriptors made from
    placeholders are removed again: the SR never states what the file did not say. The
    patient, study and Type 1 identity are :func:`~dicom_io.source_header.header_copy`'s.
    """
    header = header_copy(source)
    unknown: list[Code] = []
    orientation = list(values(source.get("PatientOrientation")))
    if len(orientation) != 2 or not all(str(v).strip() for v in orientation):
        header.PatientOrientation = ["A", "F"]  # placeholder, removed below
        unknown += _PROJECTION_DESCRIPTORS["PatientOrientation"]
    spacing = next(
        (
            pair
            for keyword in ("ImagerPixelSpacing", "PixelSpacing", "NominalScannedPixelSpacing")
            if (pair := spacing_pair(source.get(keyword))) is not None
        ),
        None,
    )
    if spacing is None:
        header.ImagerPixelSpacing = [1.0, 1.0]  # placeholder, removed below
        unknown += _PROJECTION_DESCRIPTORS["ImagerPixelSpacing"]
    else:
        header.ImagerPixelSpacing = list(spacing)
    return header, unknown


def _drop_unknown_descriptors(report: Dataset, unknown: Sequence[Code]) -> None:
    """Remove the named descriptors from every Image Library entry of ``report``."""
    if not unknown:
        return

    def walk(item: Dataset) -> None:
        children = item.get("ContentSequence")
        if children is None:
            return
        kept = [c for c in children if not (_is_descriptor(c) and _name(c) in unknown)]
        item.ContentSequence = DicomSequence(kept)
        for child in kept:
            walk(child)

    walk(report)


def _is_descriptor(item: Dataset) -> bool:
    return item.get("RelationshipType") == "HAS ACQ CONTEXT" and "ConceptNameCodeSequence" in item


def _validate(source: Dataset, result: ScoringResult) -> None:
    if str(result.source_sop_instance_uid) != str(source.SOPInstanceUID):
        raise ResultMismatch(
            f"the result is for {result.source_sop_instance_uid}, "
            f"the source is {source.SOPInstanceUID}"
        )
    rows, columns = int(source.Rows), int(source.Columns)
    seen: set[str] = set()
    for joint in result.joints:
        if not _LABEL.match(joint.label):
            raise ResultMismatch(f"not a joint label: {joint.label!r}")
        if joint.label in seen:
            raise ResultMismatch(f"joint {joint.label} appears twice")
        seen.add(joint.label)
        probabilities = (len(joint.jsn_probs), len(joint.erosion_probs))
        if joint.assessable:
            if (
                joint.jsn is None
                or joint.erosion is None
                or not 0 <= joint.jsn < JSN_GRADES
                or not 0 <= joint.erosion < EROSION_GRADES
            ):
                raise ResultMismatch(
                    f"{joint.label}: grades out of range ({joint.jsn}, {joint.erosion})"
                )
            if probabilities != (JSN_GRADES, EROSION_GRADES):
                raise ResultMismatch(
                    f"{joint.label}: need {JSN_GRADES} + {EROSION_GRADES} probabilities"
                )
        else:
            if joint.jsn is not None or joint.erosion is not None:
                raise ResultMismatch(f"{joint.label}: {NOT_ASSESSABLE}, yet graded")
            if probabilities not in ((0, 0), (JSN_GRADES, EROSION_GRADES)):
                raise ResultMismatch(
                    f"{joint.label}: need {JSN_GRADES} + {EROSION_GRADES} probabilities or none"
                )
        if not all(0.0 <= p <= 1.0 for p in (*joint.jsn_probs, *joint.erosion_probs)):
            raise ResultMismatch(f"{joint.label}: probabilities must lie in [0, 1]")
        x, y, w, h = joint.box
        if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > columns or y + h > rows:
            raise ResultMismatch(f"{joint.label}: box {joint.box} not inside {columns}x{rows}")


def _measurement(name: Code, value: float) -> Measurement:
    return Measurement(name=name, value=value, unit=codes.NO_UNITS)


def _joint_group(
    joint: JointResult,
    algorithm: AlgorithmIdentification,
    region_source: SourceImageForRegion,
    uid: str,
) -> PlanarROIMeasurementsAndQualitativeEvaluations:
    x, y, w, h = joint.box
    polyline = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h], [x, y]], dtype=np.float64)
    # none for a joint that is not assessable and that the model gave no probabilities for
    probabilities = (
        [
            _measurement(code, float(p))
            for code, p in zip(codes.JSN_PROB_CODES, joint.jsn_probs, strict=True)
        ]
        + [
            _measurement(code, float(p))
            for code, p in zip(codes.EROSION_PROB_CODES, joint.erosion_probs, strict=True)
        ]
        if joint.jsn_probs
        else []
    )
    if joint.assessable:
        assert joint.jsn is not None and joint.erosion is not None  # _validate
        evaluations = [
            QualitativeEvaluation(codes.JSN, codes.JSN_GRADE_CODES[joint.jsn]),
            QualitativeEvaluation(codes.EROSION, codes.EROSION_GRADE_CODES[joint.erosion]),
        ]
    else:
        evaluations = [
            QualitativeEvaluation(codes.JSN, codes.NOT_ASSESSABLE),
            QualitativeEvaluation(codes.EROSION, codes.NOT_ASSESSABLE),
        ]
    group = PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=TrackingIdentifier(uid=uid, identifier=joint.label),
        referenced_region=ImageRegion(
            graphic_type=GraphicTypeValues.POLYLINE,
            graphic_data=polyline,
            source_image=region_source,
        ),
        algorithm_id=algorithm,
        finding_sites=[
            FindingSite(codes.JOINT_SITES[joint.joint], laterality=codes.LATERALITY[joint.side])
        ],
        qualitative_evaluations=evaluations,
        measurements=probabilities or None,
    )
    if not joint.assessable and joint.reason:
        # Free text is a TID 1501/1410 qualitative evaluation too; highdicom takes coded
        # ones only, so it is appended to the group container.
        group[0].ContentSequence.append(
            TextContentItem(
                name=codes.NOT_ASSESSABLE_REASON,
                value=joint.reason,
                relationship_type=RelationshipTypeValues.CONTAINS,
            )
        )
    return group


def _measurement_report(
    source: Dataset,
    model: ModelInfo,
    groups: Sequence[
        PlanarROIMeasurementsAndQualitativeEvaluations | MeasurementsAndQualitativeEvaluations
    ],
) -> Dataset:
    """The TID 1500 root content item, with the Qualitative Evaluations container added."""
    observer = ObserverContext(
        observer_type=dcm_codes.DCM.Device,
        observer_identifying_attributes=DeviceObserverIdentifyingAttributes(
            uid=model.device_uid,
            name=model.name,
            manufacturer_name=model.manufacturer,
            model_name=model.name,
        ),
    )
    laterality = next(
        (
            str(found[0])
            for keyword in ("ImageLaterality", "Laterality")
            if len(found := values(source.get(keyword))) == 1 and str(found[0]).strip()
        ),
        None,
    )
    placeholder = not groups
    if placeholder:
        # highdicom wants one group at least; TID 1500 does not (Imaging Measurements is one
        # of three alternatives). Build with a throw-away group, then drop its container.
        groups = [
            MeasurementsAndQualitativeEvaluations(
                tracking_identifier=TrackingIdentifier(uid=str(hd.UID()), identifier="none")
            )
        ]
    report = MeasurementReport(
        observation_context=ObservationContext(observer_device_context=observer),
        procedure_reported=codes.procedure_reported(laterality),
        imaging_measurements=groups,
        referenced_images=[source],
    )
    root: Dataset = report[0]
    if placeholder:
        root.ContentSequence = DicomSequence(
            [
                item
                for item in root.ContentSequence
                if _name(item) != dcm_codes.DCM.ImagingMeasurements
            ]
        )
    notes = [NOT_FOR_DIAGNOSTIC_USE] + ([NO_JOINTS_TEXT] if placeholder else [])
    evaluations = ContainerContentItem(
        name=codes.QUALITATIVE_EVALUATIONS,
        relationship_type=RelationshipTypeValues.CONTAINS,
    )
    evaluations.ContentSequence = DicomSequence(
        [
            TextContentItem(
                name=codes.COMMENT, value=text, relationship_type=RelationshipTypeValues.CONTAINS
            )
            for text in notes
        ]
    )
    root.ContentSequence.append(evaluations)
    return root


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def _name(item: Dataset) -> CodedConcept:
    return CodedConcept.from_dataset(item.ConceptNameCodeSequence[0])


def _children(item: Dataset) -> list[Dataset]:
    return list(item.get("ContentSequence", []))


def _find(items: Sequence[Dataset], name: Code, value_type: str | None = None) -> list[Dataset]:
    return [
        item
        for item in items
        if _name(item) == name and (value_type is None or item.ValueType == value_type)
    ]


def _one(items: Sequence[Dataset], name: Code, value_type: str, where: str) -> Dataset:
    found = _find(items, name, value_type)
    if len(found) != 1:
        raise SRFormatError(f"{where}: expected one {name.meaning!r}, found {len(found)}")
    return found[0]


def _code_value(item: Dataset) -> CodedConcept:
    return CodedConcept.from_dataset(item.ConceptCodeSequence[0])


def _num(item: Dataset) -> float:
    measured = item.MeasuredValueSequence[0]
    if "FloatingPointValue" in measured:
        return float(measured.FloatingPointValue)
    return float(measured.NumericValue)


def _int(item: Dataset, where: str) -> int:
    value = _num(item)
    if value != int(value):
        raise SRFormatError(f"{where}: {_name(item).meaning} is not a whole number: {value}")
    return int(value)


def _grade(item: Dataset, grade_codes: Sequence[Code], where: str) -> int | None:
    """The grade of a coded sub-score, or None where it says "Not assessable"."""
    value = _code_value(item)
    if value == codes.NOT_ASSESSABLE:
        return None
    for grade, code in enumerate(grade_codes):
        if value == code:
            return grade
    raise SRFormatError(f"{where}: unknown grade code {value.value} ({value.meaning})")


def read_sr(ds: Dataset) -> ScoringResult:
    """The :class:`ScoringResult` a report of :func:`build_sr` was built from.

    Raises :class:`SRFormatError` when ``ds`` is not such a report or is inconsistent.
    """
    if ds.get("SOPClassUID") != Comprehensive3DSRStorage:
        raise SRFormatError(f"not a Comprehensive 3D SR: {ds.get('SOPClassUID')}")
    templates = ds.get("ContentTemplateSequence", [])
    if not templates or templates[0].get("TemplateIdentifier") != "1500":
        raise SRFormatError("the root is not TID 1500 Measurement Report")
    model = _read_model(ds)
    source_uid = _read_source_uid(ds)
    root_items = _children(ds)

    device = _one(root_items, dcm_codes.DCM.DeviceObserverUID, "UIDREF", "observer context")
    if str(device.UID) != model.device_uid:
        raise SRFormatError(
            f"observer device UID {device.UID} differs from the equipment's {model.device_uid}"
        )

    joints: list[JointResult] = []
    hands: dict[str, _Totals] = {}
    image_totals: _Totals | None = None
    for container in _find(root_items, dcm_codes.DCM.ImagingMeasurements, "CONTAINER"):
        for group in _find(_children(container), dcm_codes.DCM.MeasurementGroup, "CONTAINER"):
            items = _children(group)
            identifier = str(
                _one(items, dcm_codes.DCM.TrackingIdentifier, "TEXT", "group").TextValue
            )
            _check_algorithm(items, model, identifier)
            template = group.ContentTemplateSequence[0].TemplateIdentifier
            if template == "1410":
                joints.append(_read_joint(items, identifier, source_uid))
            elif identifier == IMAGE_TOTALS_ID:
                image_totals = _read_totals(
                    items, codes.TOTAL_JSN_IMAGE, codes.TOTAL_EROSION_IMAGE, identifier
                )
            else:
                match = re.fullmatch(_HAND_TOTALS_ID.format(side="(L|R)"), identifier)
                if not match:
                    raise SRFormatError(f"unexpected measurement group {identifier!r}")
                hands[match.group(1)] = _read_totals(
                    items, codes.TOTAL_JSN_HAND, codes.TOTAL_EROSION_HAND, identifier
                )

    result = ScoringResult(source_sop_instance_uid=source_uid, joints=tuple(joints), model=model)
    _check_totals(result, hands, image_totals)
    return result


def _read_model(ds: Dataset) -> ModelInfo:
    candidates = [
        item
        for item in ds.get("ContributingEquipmentSequence", [])
        if "DeviceUID" in item
        and any(
            CodedConcept.from_dataset(code) == codes.PROCESSING_EQUIPMENT
            for code in item.get("PurposeOfReferenceCodeSequence", [])
        )
    ]
    if len(candidates) != 1:
        raise SRFormatError(
            f"expected one algorithm in Contributing Equipment, found {len(candidates)}"
        )
    item = candidates[0]
    versions: Any = item.SoftwareVersions
    software_version = versions if isinstance(versions, str) else versions[0]
    return ModelInfo(
        name=str(item.ManufacturerModelName),
        version=str(software_version),
        device_uid=str(item.DeviceUID),
        manufacturer=str(item.Manufacturer),
    )


def _read_source_uid(ds: Dataset) -> str:
    uids = [
        str(instance.ReferencedSOPInstanceUID)
        for study in ds.get("CurrentRequestedProcedureEvidenceSequence", [])
        for series in study.ReferencedSeriesSequence
        for instance in series.ReferencedSOPSequence
    ]
    if len(uids) != 1:
        raise SRFormatError(f"expected one source image in the evidence, found {len(uids)}")
    return uids[0]


def _check_algorithm(items: Sequence[Dataset], model: ModelInfo, where: str) -> None:
    name = _one(items, dcm_codes.DCM.AlgorithmName, "TEXT", where).TextValue
    algorithm_version = _one(items, dcm_codes.DCM.AlgorithmVersion, "TEXT", where).TextValue
    if (name, algorithm_version) != (model.name, model.version):
        raise SRFormatError(
            f"{where}: algorithm {name} {algorithm_version} differs from the equipment's "
            f"{model.name} {model.version}"
        )


def _read_joint(items: Sequence[Dataset], label: str, source_uid: str) -> JointResult:
    match = _LABEL.match(label)
    if not match:
        raise SRFormatError(f"not a joint label: {label!r}")
    side, joint = match.groups()
    site = _one(items, dcm_codes.SCT.FindingSite, "CODE", label)
    laterality = _one(_children(site), dcm_codes.SCT.Laterality, "CODE", label)
    if (
        _code_value(site) != codes.JOINT_SITES[joint]
        or _code_value(laterality) != (codes.LATERALITY[side])
    ):
        raise SRFormatError(f"{label}: the finding site does not match the label")

    region = _one(items, dcm_codes.DCM.ImageRegion, "SCOORD", label)
    if region.GraphicType != GraphicTypeValues.POLYLINE.value:
        raise SRFormatError(f"{label}: region is {region.GraphicType}, not POLYLINE")
    references = [
        str(ref.ReferencedSOPInstanceUID)
        for child in _children(region)
        for ref in child.get("ReferencedSOPSequence", [])
    ]
    if references != [source_uid]:
        raise SRFormatError(f"{label}: the region is not on the source image {source_uid}")
    box = _box(np.asarray(region.GraphicData, dtype=np.float64).reshape(-1, 2), label)

    jsn = _grade(_one(items, codes.JSN, "CODE", label), codes.JSN_GRADE_CODES, label)
    erosion = _grade(_one(items, codes.EROSION, "CODE", label), codes.EROSION_GRADE_CODES, label)
    if (jsn is None) != (erosion is None):
        raise SRFormatError(f"{label}: one sub-score graded, the other {NOT_ASSESSABLE}")
    assessable = jsn is not None
    reasons = _find(items, codes.NOT_ASSESSABLE_REASON, "TEXT")
    if len(reasons) > 1 or (assessable and reasons):
        raise SRFormatError(f"{label}: unexpected reasons for {NOT_ASSESSABLE}")
    prob_codes = (*codes.JSN_PROB_CODES, *codes.EROSION_PROB_CODES)
    if assessable or any(_find(items, c, "NUM") for c in prob_codes):
        jsn_probs = tuple(_num(_one(items, c, "NUM", label)) for c in codes.JSN_PROB_CODES)
        erosion_probs = tuple(_num(_one(items, c, "NUM", label)) for c in codes.EROSION_PROB_CODES)
    else:  # a joint the model gave no probabilities for
        jsn_probs, erosion_probs = (), ()
    return JointResult(
        label=label,
        box=box,
        jsn=jsn,
        erosion=erosion,
        jsn_probs=jsn_probs,
        erosion_probs=erosion_probs,
        assessable=assessable,
        reason=str(reasons[0].TextValue) if reasons else "",
    )


def _box(points: np.ndarray, label: str) -> tuple[int, int, int, int]:
    """The box of a closed, axis-aligned 5-point polyline as written by :func:`build_sr`."""
    if points.shape != (5, 2) or not np.array_equal(points[0], points[-1]):
        raise SRFormatError(f"{label}: the region is not a closed 5-point polyline")
    if not np.array_equal(points, np.round(points)):
        raise SRFormatError(f"{label}: the region's corners are not whole pixels")
    x0, y0 = points[:, 0].min(), points[:, 1].min()
    x1, y1 = points[:, 0].max(), points[:, 1].max()
    expected = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]])
    if not np.array_equal(points, expected):
        raise SRFormatError(f"{label}: the region is not an axis-aligned box")
    return int(x0), int(y0), int(x1 - x0), int(y1 - y0)


#: (JSN total, erosion total, joints scored, joints not assessable) of a totals group
_Totals = tuple[int, int, int, int]


def _read_totals(
    items: Sequence[Dataset], jsn_code: Code, erosion_code: Code, where: str
) -> _Totals:
    # reports from before not-assessable joints existed have no such count: none were
    not_assessable = _find(items, codes.NUMBER_NOT_ASSESSABLE, "NUM")
    return (
        _int(_one(items, jsn_code, "NUM", where), where),
        _int(_one(items, erosion_code, "NUM", where), where),
        _int(_one(items, codes.NUMBER_OF_JOINTS, "NUM", where), where),
        _int(_one(items, codes.NUMBER_NOT_ASSESSABLE, "NUM", where), where)
        if not_assessable
        else 0,
    )


def _check_totals(
    result: ScoringResult,
    hands: dict[str, _Totals],
    image_totals: _Totals | None,
) -> None:
    scored = result.hand_joints_scored()
    expected_hands = {
        side: (jsn, erosion, scored[side], sum(1 for j in result.not_assessable if j.side == side))
        for side, (jsn, erosion) in result.hand_totals().items()
    }
    if hands != expected_hands:
        raise SRFormatError(f"hand totals {hands} disagree with the joints {expected_hands}")
    expected_image = (
        (
            result.total_jsn,
            result.total_erosion,
            result.joints_scored,
            len(result.not_assessable),
        )
        if result.joints
        else None
    )
    if image_totals != expected_image:
        raise SRFormatError(
            f"image totals {image_totals} disagree with the joints {expected_image}"
        )
