"""Reading a study SR of :func:`~dicom_io.sr.study.build_study_sr` back into its
:class:`~dicom_io.study_results.StudyResult`; the totals are checked against the joints and
the comparisons' totals against their joints."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence

from pydicom import Dataset
from pydicom.sr.codedict import codes as dcm_codes
from pydicom.sr.coding import Code
from pydicom.uid import Comprehensive3DSRStorage

from dicom_io import codes
from dicom_io.sr import study_template as st
from dicom_io.sr.read import (
    _check_algorithm,
    _children,
    _code_value,
    _find,
    _grade,
    _int,
    _num,
    _one,
    _read_model,
)
from dicom_io.sr.template import HAND_TOTALS_ID, LABEL, SRFormatError
from dicom_io.study_results import (
    Comparison,
    JointChange,
    ObjectRef,
    StudyHand,
    StudyJoint,
    StudyResult,
)

_SITES = {(c.value, c.scheme_designator): joint for joint, c in codes.JOINT_SITES.items()}
_SIDES = {(c.value, c.scheme_designator): side for side, c in codes.LATERALITY.items()}


def _key(item: Dataset) -> tuple[str, str]:
    code = _code_value(item)
    return str(code.value), str(code.scheme_designator)


def _refs(sequence: Sequence[Dataset]) -> dict[str, ObjectRef]:
    """The objects of an evidence or predecessor sequence, by SOP Instance UID."""
    return {
        str(i.ReferencedSOPInstanceUID): ObjectRef(
            str(i.ReferencedSOPClassUID),
            str(i.ReferencedSOPInstanceUID),
            str(series.SeriesInstanceUID),
            str(study.StudyInstanceUID),
        )
        for study in sequence
        for series in study.ReferencedSeriesSequence
        for i in series.ReferencedSOPSequence
    }


def _referenced(item: Dataset) -> str:
    return str(item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID)


def _date(value: object) -> dt.date | None:
    text = str(value or "").strip()
    return dt.datetime.strptime(text, "%Y%m%d").date() if text else None


def read_study_sr(ds: Dataset) -> StudyResult:
    """The :class:`StudyResult` a study SR was built from; :class:`SRFormatError` when ``ds``
    is not one or is inconsistent."""
    if ds.get("SOPClassUID") != Comprehensive3DSRStorage:
        raise SRFormatError(f"not a Comprehensive 3D SR: {ds.get('SOPClassUID')}")
    if ds.get("SeriesDescription") != st.STUDY_SERIES_DESCRIPTION:
        raise SRFormatError("not a rascore study SR")
    model = _read_model(ds)
    images = _refs(ds.get("CurrentRequestedProcedureEvidenceSequence", []))
    others = _refs(ds.get("PertinentOtherEvidenceSequence", []))
    predecessors = list(_refs(ds.get("PredecessorDocumentsSequence", [])).values())
    joints: dict[str, list[StudyJoint]] = {"L": [], "R": []}
    hands: dict[str, tuple[str, tuple[str, ...], str, tuple[int, ...]]] = {}
    totals: tuple[int, ...] = ()
    comparisons: list[Comparison] = []
    for container in _find(_children(ds), dcm_codes.DCM.ImagingMeasurements, "CONTAINER"):
        for group in _find(_children(container), dcm_codes.DCM.MeasurementGroup, "CONTAINER"):
            items = _children(group)
            name = str(_one(items, dcm_codes.DCM.TrackingIdentifier, "TEXT", "group").TextValue)
            _check_algorithm(items, model, name)
            if LABEL.match(name):
                joints[name[0]].append(_read_joint(items, name))
            elif name == st.STUDY_TOTALS_ID:
                totals = _counts(
                    items,
                    (st.TOTAL_JSN_STUDY, st.TOTAL_EROSION_STUDY, codes.NUMBER_OF_JOINTS),
                    name,
                ) + _counts(items, (codes.NUMBER_NOT_ASSESSABLE, st.IMAGES_LEFT_OUT), name)
            elif match := re.fullmatch(HAND_TOTALS_ID.format(side="(L|R)"), name):
                hands[match.group(1)] = _read_hand(items, name)
            elif match := re.fullmatch(st.COMPARISON_ID.format(against="(previous|first)"), name):
                comparisons.append(_read_comparison(items, match.group(1), others, name))
            else:
                raise SRFormatError(f"unexpected measurement group {name!r}")
    if any(joints[side] and side not in hands for side in joints):
        raise SRFormatError("joints of a hand without its totals")
    study_hands = tuple(
        StudyHand(side, source, rest, choice, tuple(joints[side]))
        for side, (source, rest, choice, _) in sorted(hands.items())
    )
    if len(totals) != 5:
        raise SRFormatError("no study totals")
    result = StudyResult(
        study_instance_uid=str(ds.StudyInstanceUID),
        study_date=_date(ds.get("StudyDate")),
        version=int(ds.InstanceNumber),
        model=model,
        images=tuple(sorted(images.values(), key=lambda r: r.sop_instance_uid)),
        hands=study_hands,
        comparisons=tuple(comparisons),
        replaces=predecessors[0] if predecessors else None,
        left_out_images=totals[4],
    )
    _check(result, hands, totals)
    return result


def _counts(items: Sequence[Dataset], names: Sequence[Code], where: str) -> tuple[int, ...]:
    return tuple(_int(_one(items, name, "NUM", where), where) for name in names)


def _read_joint(items: Sequence[Dataset], label: str) -> StudyJoint:
    jsn = _grade(_one(items, codes.JSN, "CODE", label), codes.JSN_GRADE_CODES, label)
    erosion = _grade(_one(items, codes.EROSION, "CODE", label), codes.EROSION_GRADE_CODES, label)
    if (jsn is None) != (erosion is None):
        raise SRFormatError(f"{label}: one sub-score graded, the other not")
    reasons = _find(items, codes.NOT_ASSESSABLE_REASON, "TEXT")
    return StudyJoint(label, jsn, erosion, str(reasons[0].TextValue) if reasons else "")


def _read_hand(
    items: Sequence[Dataset], where: str
) -> tuple[str, tuple[str, ...], str, tuple[int, ...]]:
    source = _referenced(_one(items, dcm_codes.DCM.SourceOfMeasurement, "IMAGE", where))
    others = tuple(_referenced(i) for i in _find(items, st.OTHER_IMAGE, "IMAGE"))
    choice = _find(items, st.CHOICE, "TEXT")
    counts = _counts(
        items,
        (
            codes.TOTAL_JSN_HAND,
            codes.TOTAL_EROSION_HAND,
            codes.NUMBER_OF_JOINTS,
            codes.NUMBER_NOT_ASSESSABLE,
        ),
        where,
    )
    return source, others, str(choice[0].TextValue) if choice else "", counts


def _joint_of(item: Dataset, where: str) -> str:
    site = _one(_children(item), dcm_codes.SCT.FindingSite, "CODE", where)
    laterality = _one(_children(site), dcm_codes.SCT.Laterality, "CODE", where)
    try:
        return f"{_SIDES[_key(laterality)]}_{_SITES[_key(site)]}"
    except KeyError as exc:
        raise SRFormatError(f"{where}: unknown joint {exc}") from exc


def _read_comparison(
    items: Sequence[Dataset], against: str, others: dict[str, ObjectRef], where: str
) -> Comparison:
    prior = _referenced(_one(items, st.PRIOR_REPORT, "COMPOSITE", where))
    if prior not in others:
        raise SRFormatError(f"{where}: the earlier report is not in the other evidence")
    date = _date(_one(items, st.PRIOR_DATE, "DATE", where).Date)
    if date is None:
        raise SRFormatError(f"{where}: no Study Date of the earlier study")
    changes: dict[str, dict[str, int]] = {}
    for code, key in ((st.CHANGE_JSN, "jsn"), (st.CHANGE_EROSION, "erosion")):
        for item in _find(items, code, "NUM"):
            if "ContentSequence" in item:
                changes.setdefault(_joint_of(item, where), {})[key] = _int(item, where)
    left_out = _find(items, st.LEFT_OUT, "TEXT")
    comparison = Comparison(
        against=against,
        prior_study_instance_uid=str(_one(items, st.PRIOR_STUDY, "UIDREF", where).UID),
        prior_study_date=date,
        prior_report=others[prior],
        years=_num(_one(items, st.YEARS, "NUM", where)),
        joints=tuple(JointChange(label, c["jsn"], c["erosion"]) for label, c in changes.items()),
        left_out=tuple(str(left_out[0].TextValue).split(", ")) if left_out else (),
    )
    overall = _find(items, st.CHANGE_TOTAL, "NUM") + [
        i for code in (st.CHANGE_JSN, st.CHANGE_EROSION) for i in _find(items, code, "NUM")
        if "ContentSequence" not in i
    ]  # fmt: skip
    stated = tuple(_int(i, where) for i in overall)
    if stated != (comparison.total, comparison.jsn, comparison.erosion):
        raise SRFormatError(f"{where}: totals {stated} disagree with the joints")
    if _int(_one(items, st.JOINTS_COMPARED, "NUM", where), where) != len(comparison.joints):
        raise SRFormatError(f"{where}: the number of joints compared disagrees")
    return comparison


def _check(
    result: StudyResult,
    hands: dict[str, tuple[str, tuple[str, ...], str, tuple[int, ...]]],
    totals: tuple[int, ...],
) -> None:
    for hand in result.hands:
        expected = (hand.jsn, hand.erosion, hand.joints_scored, hand.not_assessable)
        if hands[hand.side][3] != expected:
            raise SRFormatError(f"{hand.side} hand totals disagree with its joints")
    expected_study = (result.jsn, result.erosion, result.joints_scored, result.not_assessable)
    if totals[:4] != expected_study:
        raise SRFormatError(f"study totals {totals[:4]} disagree with the joints")
    labels = [j.label for h in result.hands for j in h.joints]
    if len(set(labels)) != len(labels):
        raise SRFormatError("a joint is listed twice")
