"""Building the TID 1500 Comprehensive 3D SR of a scoring (see :mod:`dicom_io.sr`)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version

import highdicom as hd
import numpy as np
from highdicom.sr import (
    AlgorithmIdentification,
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
from dicom_io.sr.fast import imaging_measurements
from dicom_io.sr.template import (
    HAND_TOTALS_ID,
    IMAGE_TOTALS_ID,
    LABEL,
    NO_JOINTS_TEXT,
    SERIES_DESCRIPTION,
    concept_name,
)


def _software_version() -> str:
    try:
        return f"rascore {version('rascore')}"
    except PackageNotFoundError:  # a source tree that was never installed
        return "rascore (source)"


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

    The same report as :func:`build_sr_reference`, in tens of milliseconds: highdicom builds
    the document around the Imaging Measurements container only, which
    :func:`dicom_io.sr.fast.imaging_measurements` assembles directly. Arguments and
    exceptions are :func:`build_sr_reference`'s.
    """
    return _build(
        source,
        result,
        (series_instance_uid, sop_instance_uid, series_number, instance_number),
        fast=True,
    )


@building("SR")
def build_sr_reference(
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
    reason, with one line that says why. Every content item goes through highdicom: this is
    the reference the fast :func:`build_sr` is tested against.
    """
    return _build(
        source,
        result,
        (series_instance_uid, sop_instance_uid, series_number, instance_number),
        fast=False,
    )


def _build(
    source: Dataset,
    result: ScoringResult,
    identity: tuple[str | None, str | None, int, int],
    *,
    fast: bool,
) -> Comprehensive3DSR:
    """The report; with ``fast``, highdicom builds all but the Imaging Measurements."""
    series_instance_uid, sop_instance_uid, series_number, instance_number = identity
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
    if not fast:
        for joint in result.joints:
            groups.append(_joint_group(joint, algorithm, region_source, tracking_uid(joint.label)))
        groups += _totals_groups(result, algorithm, group_source, tracking_uid)

    notes = [NOT_FOR_DIAGNOSTIC_USE] + ([] if result.joints else [NO_JOINTS_TEXT])
    report = _measurement_report(
        [header], model, groups, laterality=_laterality(header), notes=notes
    )
    _drop_unknown_descriptors(report, unknown)
    equipment = _equipment(model)

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
    if fast and result.joints:
        # before the Qualitative Evaluations container, where highdicom puts it
        source_ref = (str(header.SOPClassUID), str(header.SOPInstanceUID))
        items = list(sr.ContentSequence)  # highdicom's sequence takes its own items only
        items.insert(len(items) - 1, imaging_measurements(result, source_ref, tracking_uid))
        sr.ContentSequence = DicomSequence(items)
    return sr


def _totals_groups(
    result: ScoringResult,
    algorithm: AlgorithmIdentification,
    group_source: SourceImageForMeasurementGroup,
    tracking_uid: Callable[[str], str],
) -> list[MeasurementsAndQualitativeEvaluations]:
    """One TID 1501 group of totals per hand, and one for the image when it has joints."""
    groups: list[MeasurementsAndQualitativeEvaluations] = []
    scored_by_side = result.hand_joints_scored()
    for side, (jsn, erosion) in sorted(result.hand_totals().items()):
        n = scored_by_side[side]
        not_assessable = sum(1 for j in result.not_assessable if j.side == side)
        identifier = HAND_TOTALS_ID.format(side=side)
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
    return groups


def _equipment(model: ModelInfo) -> hd.ContributingEquipment:
    """The algorithm as Contributing Equipment (Processing Equipment) with its Device UID."""
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
    return equipment


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
        kept = [c for c in children if not (_is_descriptor(c) and concept_name(c) in unknown)]
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
        if not LABEL.match(joint.label):
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


def _laterality(source: Dataset) -> str | None:
    """The image's laterality when it states one (Image Laterality, else Laterality)."""
    return next(
        (
            str(found[0])
            for keyword in ("ImageLaterality", "Laterality")
            if len(found := values(source.get(keyword))) == 1 and str(found[0]).strip()
        ),
        None,
    )


def _measurement_report(
    sources: Sequence[Dataset],
    model: ModelInfo,
    groups: Sequence[
        PlanarROIMeasurementsAndQualitativeEvaluations | MeasurementsAndQualitativeEvaluations
    ],
    *,
    laterality: str | None,
    notes: Sequence[str],
) -> Dataset:
    """The TID 1500 root content item of ``sources`` (the Image Library), with ``notes`` in a
    Qualitative Evaluations container. Used by the image's and the study's report.

    Without ``groups`` it has no Imaging Measurements container (the caller adds it).
    """
    observer = ObserverContext(
        observer_type=dcm_codes.DCM.Device,
        observer_identifying_attributes=DeviceObserverIdentifyingAttributes(
            uid=model.device_uid,
            name=model.name,
            manufacturer_name=model.manufacturer,
            model_name=model.name,
        ),
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
        referenced_images=list(sources),
    )
    root: Dataset = report[0]
    if placeholder:
        root.ContentSequence = DicomSequence(
            [
                item
                for item in root.ContentSequence
                if concept_name(item) != dcm_codes.DCM.ImagingMeasurements
            ]
        )
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
