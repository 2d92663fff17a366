"""The study SR: both hands of one study, their totals, and the change since earlier studies.

A Comprehensive 3D SR with TID 1500 as root, written as the per-image report is
(:mod:`dicom_io.sr.build`): the algorithm as observer and in Contributing Equipment,
VerificationFlag UNVERIFIED, PreliminaryFlag PRELIMINARY, the private scheme declared, the
not-for-diagnostic-use comment. Its Image Library and Current Requested Procedure Evidence
name every source image. The Imaging Measurements container holds TID 1501 groups:

* one per joint of each hand (``L_MCP2``): the grades or "Not assessable" with the reason, the
  finding site, and the image the grades come from (Source of Measurement);
* one per hand (``L hand totals``): totals over its assessable joints, how many that is and
  how many are not, the chosen image, the other images of the same hand and why the choice;
* ``study totals``: over both hands, with every source image and the images left out;
* one per comparison (``progression since previous study``, ``... first study``): the earlier
  study's report (COMPOSITE, also in the Pertinent Other Evidence), its Study Instance UID and
  Date, the years between, the change in JSN, erosion and total over the joints assessable at
  both times and its rate per year, how many joints were compared and left out (and which),
  and each compared joint's change (a NUM with the joint as finding site).

A report that replaces an earlier version of the same study names it in the Predecessor
Documents Sequence; its Instance Number is its version. :func:`read_study_sr` reads it back.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence

from highdicom.sr import (
    Comprehensive3DSR,
)
from pydicom import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.sr.codedict import codes as dcm_codes
from pydicom.sr.coding import Code
from pydicom.tag import BaseTag
from pydicom.uid import UID
from pydicom.valuerep import DA, DS

from dicom_io import codes
from dicom_io.results import NOT_FOR_DIAGNOSTIC_USE, ModelInfo, ResultMismatch, building
from dicom_io.sr import study_template as st
from dicom_io.sr.build import (
    _drop_unknown_descriptors,
    _equipment,
    _header_for_highdicom,
    _measurement_report,
    _software_version,
)
from dicom_io.sr.fast import (
    _CONTENT,
    _FLOAT,
    _MEASURED,
    _NUMERIC,
    _REF_CLASS,
    _REF_INSTANCE,
    _REF_SOP,
    _UID,
    _UNITS,
    _code,
    _coded,
    _container,
    _context,
    _dataset,
    _image,
    _item,
    _num,
    _put,
    _text,
)
from dicom_io.sr.template import HAND_TOTALS_ID
from dicom_io.study_results import Comparison, ObjectRef, StudyHand, StudyResult

_DATE = BaseTag(0x0040A121)
Tracking = Callable[[str], str]


def _num_in(name: Code, value: float, unit: Code) -> Dataset:
    """A NUM in ``unit``; a float goes as FD too (read back exactly)."""
    measured = _dataset(
        (_UNITS, "SQ", DicomSequence([_code(unit)])),
        *([(_FLOAT, "FD", value)] if isinstance(value, float) else []),
        (_NUMERIC, "DS", DS(value, auto_format=True)),
    )
    return _item("CONTAINS", "NUM", name, (_MEASURED, "SQ", DicomSequence([measured])))


def _composite(name: Code, ref: ObjectRef) -> Dataset:
    reference = _dataset(
        (_REF_CLASS, "UI", UID(ref.sop_class_uid)), (_REF_INSTANCE, "UI", UID(ref.sop_instance_uid))
    )
    return _item("CONTAINS", "COMPOSITE", name, (_REF_SOP, "SQ", DicomSequence([reference])))


def _source(uid: str, classes: dict[str, str]) -> tuple[str, str]:
    return classes[uid], uid


def _joint_groups(
    hand: StudyHand, model: ModelInfo, classes: dict[str, str], tracking: Tracking
) -> list[Dataset]:
    groups = []
    for joint in hand.joints:
        site = codes.JOINT_SITES[joint.label.split("_", 1)[1]]
        items = _context(joint.label, tracking(joint.label), model, site, hand.side)
        if joint.assessable:
            assert joint.jsn is not None and joint.erosion is not None
            grades = (codes.JSN_GRADE_CODES[joint.jsn], codes.EROSION_GRADE_CODES[joint.erosion])
        else:
            grades = (codes.NOT_ASSESSABLE, codes.NOT_ASSESSABLE)
        items.append(_coded("CONTAINS", codes.JSN, grades[0]))
        items.append(_coded("CONTAINS", codes.EROSION, grades[1]))
        if not joint.assessable:
            items.append(_text("CONTAINS", codes.NOT_ASSESSABLE_REASON, joint.reason or "-"))
        source = _source(hand.source, classes)
        items.append(_image("CONTAINS", dcm_codes.DCM.SourceOfMeasurement, source))
        groups.append(_container(dcm_codes.DCM.MeasurementGroup, items, "1501"))
    return groups


def _hand_group(
    hand: StudyHand, model: ModelInfo, classes: dict[str, str], tracking: Tracking
) -> Dataset:
    identifier = HAND_TOTALS_ID.format(side=hand.side)
    items = _context(identifier, tracking(identifier), model, codes.HAND, hand.side)
    items += [
        _num(codes.TOTAL_JSN_HAND, hand.jsn),
        _num(codes.TOTAL_EROSION_HAND, hand.erosion),
        _num(codes.NUMBER_OF_JOINTS, hand.joints_scored),
        _num(codes.NUMBER_NOT_ASSESSABLE, hand.not_assessable),
        _image("CONTAINS", dcm_codes.DCM.SourceOfMeasurement, _source(hand.source, classes)),
    ]
    items += [_image("CONTAINS", st.OTHER_IMAGE, _source(u, classes)) for u in hand.others]
    if hand.choice:
        items.append(_text("CONTAINS", st.CHOICE, hand.choice))
    return _container(dcm_codes.DCM.MeasurementGroup, items, "1501")


def _study_group(
    result: StudyResult, model: ModelInfo, classes: dict[str, str], tracking: Tracking
) -> Dataset:
    items = _context(st.STUDY_TOTALS_ID, tracking(st.STUDY_TOTALS_ID), model, None, None)
    items += [
        _num(st.TOTAL_JSN_STUDY, result.jsn),
        _num(st.TOTAL_EROSION_STUDY, result.erosion),
        _num(codes.NUMBER_OF_JOINTS, result.joints_scored),
        _num(codes.NUMBER_NOT_ASSESSABLE, result.not_assessable),
        _num(st.IMAGES_LEFT_OUT, result.left_out_images),
    ]
    items += [
        _image("CONTAINS", dcm_codes.DCM.SourceOfMeasurement, _source(i.sop_instance_uid, classes))
        for i in result.images
    ]
    return _container(dcm_codes.DCM.MeasurementGroup, items, "1501")


def _joint_change(name: Code, label: str, value: int) -> Dataset:
    side, joint = label.split("_", 1)
    item = _num(name, value)
    finding = _coded("HAS CONCEPT MOD", dcm_codes.SCT.FindingSite, codes.JOINT_SITES[joint])
    laterality = _coded("HAS CONCEPT MOD", dcm_codes.SCT.Laterality, codes.LATERALITY[side])
    _put(finding, _CONTENT, "SQ", DicomSequence([laterality]))
    _put(item, _CONTENT, "SQ", DicomSequence([finding]))
    return item


def _comparison_group(c: Comparison, model: ModelInfo, tracking: Tracking) -> Dataset:
    identifier = st.COMPARISON_ID.format(against=c.against)
    items = _context(identifier, tracking(identifier), model, None, None)
    prior_study = _item("CONTAINS", "UIDREF", st.PRIOR_STUDY)
    _put(prior_study, _UID, "UI", UID(c.prior_study_instance_uid))
    prior_date = _item("CONTAINS", "DATE", st.PRIOR_DATE)
    _put(prior_date, _DATE, "DA", DA(c.prior_study_date.strftime("%Y%m%d")))
    items += [_composite(st.PRIOR_REPORT, c.prior_report), prior_study, prior_date]
    items.append(_num_in(st.YEARS, float(c.years), st.YEAR))
    for name, rate_name, change in (
        (st.CHANGE_JSN, st.RATE_JSN, c.jsn),
        (st.CHANGE_EROSION, st.RATE_EROSION, c.erosion),
        (st.CHANGE_TOTAL, st.RATE_TOTAL, c.total),
    ):
        items.append(_num(name, change))
        rate = c.per_year(change)
        if rate is not None:
            items.append(_num_in(rate_name, float(rate), st.PER_YEAR))
    items += [_num(st.JOINTS_COMPARED, len(c.joints)), _num(st.JOINTS_LEFT_OUT, len(c.left_out))]
    if c.left_out:
        items.append(_text("CONTAINS", st.LEFT_OUT, ", ".join(c.left_out)))
    for joint in c.joints:
        items.append(_joint_change(st.CHANGE_JSN, joint.label, joint.jsn))
        items.append(_joint_change(st.CHANGE_EROSION, joint.label, joint.erosion))
    return _container(dcm_codes.DCM.MeasurementGroup, items, "1501")


def _validate(headers: Sequence[Dataset], result: StudyResult) -> dict[str, str]:
    """SOP Class UID by SOP Instance UID of the sources; refuses a result they do not fit."""
    classes = {str(h.SOPInstanceUID): str(h.SOPClassUID) for h in headers}
    wanted = [i.sop_instance_uid for i in result.images]
    if sorted(classes) != sorted(wanted) or len(set(wanted)) != len(wanted):
        raise ResultMismatch("the source headers are not the report's images")
    for header in headers:
        if str(header.StudyInstanceUID) != result.study_instance_uid:
            raise ResultMismatch(f"image {header.SOPInstanceUID} is of another study")
    for hand in result.hands:
        if hand.side not in codes.LATERALITY or any(
            u not in classes for u in (hand.source, *hand.others)
        ):
            raise ResultMismatch(f"hand {hand.side}: its images are not among the sources")
        for joint in hand.joints:
            if not joint.label.startswith(f"{hand.side}_"):
                raise ResultMismatch(f"hand {hand.side} lists {joint.label}")
    if result.version < 1:
        raise ResultMismatch(f"version {result.version}: versions start at 1")
    return classes


def _stub(ref: ObjectRef) -> Dataset:
    """An earlier report as highdicom's evidence and predecessor lists take it."""
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = ref.sop_class_uid, ref.sop_instance_uid
    ds.SeriesInstanceUID, ds.StudyInstanceUID = ref.series_instance_uid, ref.study_instance_uid
    return ds


def _notes(result: StudyResult) -> list[str]:
    model = result.model
    notes = [
        NOT_FOR_DIAGNOSTIC_USE,
        f"Only images scored by {model.name} {model.version} count; every comparison is "
        "with reports of earlier studies scored by the same model.",
    ]
    if result.left_out_images:
        notes.append(
            f"{result.left_out_images} image(s) of the study were left out: failed, skipped, "
            "or not scored by this model."
        )
    return notes


@building("study SR")
def build_study_sr(
    sources: Sequence[Dataset],
    result: StudyResult,
    *,
    series_instance_uid: str,
    sop_instance_uid: str,
    series_number: int = 902,
) -> Comprehensive3DSR:
    """The study SR of ``result``; ``sources`` are the headers of ``result.images`` (pixels
    are not read; the first gives the patient and study). Raises
    :class:`~dicom_io.results.ResultMismatch` when the result does not fit the sources."""
    prepared = [_header_for_highdicom(s) for s in sources]
    headers = [h for h, _ in prepared]
    unknown = [code for _, codes_ in prepared for code in codes_]
    classes = _validate(headers, result)

    def tracking(key: str) -> str:
        return f"2.25.{uuid.uuid5(uuid.NAMESPACE_OID, f'{sop_instance_uid}/tracking/{key}').int}"

    model = result.model
    groups: list[Dataset] = []
    for hand in result.hands:
        groups += _joint_groups(hand, model, classes, tracking)
    groups += [_hand_group(h, model, classes, tracking) for h in result.hands]
    groups.append(_study_group(result, model, classes, tracking))
    groups += [_comparison_group(c, model, tracking) for c in result.comparisons]

    sides = {h.side for h in result.hands}
    laterality = "B" if sides == {"L", "R"} else next(iter(sides), None)
    report = _measurement_report(
        headers, result.model, [], laterality=laterality, notes=_notes(result)
    )
    _drop_unknown_descriptors(report, unknown)
    priors = {c.prior_report.sop_instance_uid: _stub(c.prior_report) for c in result.comparisons}
    sr = Comprehensive3DSR(
        evidence=[*headers, *priors.values()],
        content=report,
        series_instance_uid=series_instance_uid,
        series_number=series_number,
        sop_instance_uid=sop_instance_uid,
        instance_number=result.version,
        manufacturer="rascore",
        manufacturer_model_name="rascore",
        software_versions=_software_version(),
        is_complete=True,
        is_final=False,
        is_verified=False,
        series_description=st.STUDY_SERIES_DESCRIPTION,
        coding_schemes=[codes.coding_scheme_identification()],
        contributing_equipment=[_equipment(model)],
        previous_versions=[_stub(result.replaces)] if result.replaces else None,
    )
    items = list(sr.ContentSequence)  # before the Qualitative Evaluations container
    items.insert(len(items) - 1, _container(dcm_codes.DCM.ImagingMeasurements, groups, None))
    sr.ContentSequence = DicomSequence(items)
    return sr
