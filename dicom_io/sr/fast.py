"""The Imaging Measurements container of a rascore report, assembled as plain pydicom.

highdicom builds the same content items but deep-copies and re-parses all of them (about 1,400
for 20 joints) when the SR is made, which costs 0.3-1.4 s. Here each item is written once,
element by element, in exactly the layout highdicom gives (TID 1410 per joint, TID 1501 per
hand and for the image); ``tests/test_sr_fast.py`` proves the result equal, byte for byte, to
the highdicom-built report (:func:`dicom_io.sr.build.build_sr_reference`).
"""

from __future__ import annotations

from collections.abc import Callable

from pydicom import Dataset
from pydicom.dataelem import DataElement
from pydicom.sequence import Sequence as DicomSequence
from pydicom.sr.codedict import codes as dcm_codes
from pydicom.sr.coding import Code
from pydicom.tag import BaseTag
from pydicom.uid import UID
from pydicom.valuerep import DS

from dicom_io import codes
from dicom_io.results import JointResult, ModelInfo, ScoringResult
from dicom_io.sr.template import HAND_TOTALS_ID, IMAGE_TOTALS_ID

# (group, element) tags of the few attributes written here
_CODE_VALUE = BaseTag(0x00080100)
_SCHEME = BaseTag(0x00080102)
_SCHEME_VERSION = BaseTag(0x00080103)
_MEANING = BaseTag(0x00080104)
_MAPPING_RESOURCE = BaseTag(0x00080105)
_REF_SOP = BaseTag(0x00081199)
_REF_CLASS = BaseTag(0x00081150)
_REF_INSTANCE = BaseTag(0x00081155)
_UNITS = BaseTag(0x004008EA)
_RELATIONSHIP = BaseTag(0x0040A010)
_VALUE_TYPE = BaseTag(0x0040A040)
_NAME = BaseTag(0x0040A043)
_CONTINUITY = BaseTag(0x0040A050)
_UID = BaseTag(0x0040A124)
_TEXT = BaseTag(0x0040A160)
_FLOAT = BaseTag(0x0040A161)
_CONCEPT = BaseTag(0x0040A168)
_MEASURED = BaseTag(0x0040A300)
_NUMERIC = BaseTag(0x0040A30A)
_TEMPLATE_SEQ = BaseTag(0x0040A504)
_CONTENT = BaseTag(0x0040A730)
_TEMPLATE_ID = BaseTag(0x0040DB00)
_GRAPHIC_DATA = BaseTag(0x00700022)
_GRAPHIC_TYPE = BaseTag(0x00700023)

#: highdicom names it "Source", pydicom "Source (attribute)"
_SOURCE = Code("260753009", "SCT", "Source")

Source = tuple[str, str]  # (SOP Class UID, SOP Instance UID) of the radiograph


Element = tuple[BaseTag, str, object]


def _dataset(*elements: Element) -> Dataset:
    """An item of ``(tag, VR, value)`` elements whose values are already in pydicom's own
    types (str, UID, DS, float, Sequence). Conversion, validation and ``Dataset.__setitem__``'s
    checks are most of the cost of a pydicom element; the values here are those the
    highdicom reference validates (``tests/test_sr_fast.py``)."""
    return Dataset(
        {tag: DataElement(tag, vr, value, already_converted=True) for tag, vr, value in elements}
    )


def _put(ds: Dataset, tag: BaseTag, vr: str, value: object) -> None:
    """Add one element to an item made by :func:`_dataset`."""
    ds.add(DataElement(tag, vr, value, already_converted=True))


def _code(code: Code) -> Dataset:
    if code.scheme_version:
        return _dataset(
            (_CODE_VALUE, "SH", code.value),
            (_SCHEME, "SH", code.scheme_designator),
            (_SCHEME_VERSION, "SH", code.scheme_version),
            (_MEANING, "LO", code.meaning),
        )
    return _dataset(
        (_CODE_VALUE, "SH", code.value),
        (_SCHEME, "SH", code.scheme_designator),
        (_MEANING, "LO", code.meaning),
    )


def _item(relationship: str, value_type: str, name: Code, *more: Element) -> Dataset:
    return _dataset(
        (_RELATIONSHIP, "CS", relationship),
        (_VALUE_TYPE, "CS", value_type),
        (_NAME, "SQ", DicomSequence([_code(name)])),
        *more,
    )


def _text(relationship: str, name: Code, value: str) -> Dataset:
    return _item(relationship, "TEXT", name, (_TEXT, "UT", value))


def _coded(relationship: str, name: Code, value: Code) -> Dataset:
    return _item(relationship, "CODE", name, (_CONCEPT, "SQ", DicomSequence([_code(value)])))


def _num(name: Code, value: float) -> Dataset:
    """A NUM item as highdicom writes it: DS always, FD for a float only."""
    measured = _dataset(
        (_UNITS, "SQ", DicomSequence([_code(codes.NO_UNITS)])),
        *([(_FLOAT, "FD", value)] if isinstance(value, float) else []),
        (_NUMERIC, "DS", DS(value, auto_format=True)),
    )
    return _item("CONTAINS", "NUM", name, (_MEASURED, "SQ", DicomSequence([measured])))


def _image(relationship: str, name: Code, source: Source) -> Dataset:
    reference = _dataset((_REF_CLASS, "UI", UID(source[0])), (_REF_INSTANCE, "UI", UID(source[1])))
    return _item(relationship, "IMAGE", name, (_REF_SOP, "SQ", DicomSequence([reference])))


def _container(name: Code, children: list[Dataset], template: str | None) -> Dataset:
    item = _item("CONTAINS", "CONTAINER", name)
    _put(item, _CONTINUITY, "CS", "CONTINUOUS")
    if template is not None:
        identification = Dataset()
        _put(identification, _MAPPING_RESOURCE, "CS", "DCMR")
        _put(identification, _TEMPLATE_ID, "CS", template)
        _put(item, _TEMPLATE_SEQ, "SQ", DicomSequence([identification]))
    _put(item, _CONTENT, "SQ", DicomSequence(children))
    return item


def _context(
    identifier: str, uid: str, model: ModelInfo, site: Code | None, side: str | None
) -> list[Dataset]:
    """Tracking identifier and UID, finding site (with laterality), algorithm (TID 4019)."""
    items = [
        _text("HAS OBS CONTEXT", dcm_codes.DCM.TrackingIdentifier, identifier),
        _item("HAS OBS CONTEXT", "UIDREF", dcm_codes.DCM.TrackingUniqueIdentifier),
    ]
    _put(items[1], _UID, "UI", UID(uid))
    if site is not None and side is not None:
        finding = _coded("HAS CONCEPT MOD", dcm_codes.SCT.FindingSite, site)
        laterality = _coded("HAS CONCEPT MOD", dcm_codes.SCT.Laterality, codes.LATERALITY[side])
        _put(finding, _CONTENT, "SQ", DicomSequence([laterality]))
        items.append(finding)
    items += [
        _text("HAS CONCEPT MOD", dcm_codes.DCM.AlgorithmName, model.name),
        _text("HAS CONCEPT MOD", dcm_codes.DCM.AlgorithmVersion, model.version),
        _text("HAS CONCEPT MOD", dcm_codes.DCM.AlgorithmManufacturer, model.manufacturer),
    ]
    return items


def _joint_group(joint: JointResult, model: ModelInfo, source: Source, uid: str) -> Dataset:
    """TID 1410: context, class probabilities, grades (or Not assessable), region, reason."""
    items = _context(joint.label, uid, model, codes.JOINT_SITES[joint.joint], joint.side)
    if joint.jsn_probs:
        items += [
            _num(code, float(p))
            for code, p in zip(codes.JSN_PROB_CODES, joint.jsn_probs, strict=True)
        ]
        items += [
            _num(code, float(p))
            for code, p in zip(codes.EROSION_PROB_CODES, joint.erosion_probs, strict=True)
        ]
    if joint.assessable:
        assert joint.jsn is not None and joint.erosion is not None  # validated by the caller
        grades = (codes.JSN_GRADE_CODES[joint.jsn], codes.EROSION_GRADE_CODES[joint.erosion])
    else:
        grades = (codes.NOT_ASSESSABLE, codes.NOT_ASSESSABLE)
    items.append(_coded("CONTAINS", codes.JSN, grades[0]))
    items.append(_coded("CONTAINS", codes.EROSION, grades[1]))
    x, y, w, h = joint.box
    region = _item("CONTAINS", "SCOORD", dcm_codes.DCM.ImageRegion)
    points = [float(v) for v in (x, y, x + w, y, x + w, y + h, x, y + h, x, y)]
    region.add(DataElement(_GRAPHIC_DATA, "FL", points))  # converted: a MultiValue
    _put(region, _GRAPHIC_TYPE, "CS", "POLYLINE")
    _put(
        region,
        _CONTENT,
        "SQ",
        DicomSequence([_image("SELECTED FROM", _SOURCE, source)]),
    )
    items.append(region)
    if not joint.assessable and joint.reason:
        items.append(_text("CONTAINS", codes.NOT_ASSESSABLE_REASON, joint.reason))
    return _container(dcm_codes.DCM.MeasurementGroup, items, "1410")


def _totals_group(
    identifier: str,
    uid: str,
    model: ModelInfo,
    side: str | None,
    measurements: list[tuple[Code, int]],
    source: Source,
) -> Dataset:
    """TID 1501: context, the totals and counts, the source image."""
    items = _context(identifier, uid, model, codes.HAND if side else None, side)
    items += [_num(name, value) for name, value in measurements]
    items.append(_image("CONTAINS", dcm_codes.DCM.SourceOfMeasurement, source))
    return _container(dcm_codes.DCM.MeasurementGroup, items, "1501")


def imaging_measurements(
    result: ScoringResult, source: Source, tracking_uid: Callable[[str], str]
) -> Dataset:
    """The Imaging Measurements container: a group per joint, per hand, and for the image."""
    model = result.model
    groups = [
        _joint_group(joint, model, source, tracking_uid(joint.label)) for joint in result.joints
    ]
    scored_by_side = result.hand_joints_scored()
    for side, (jsn, erosion) in sorted(result.hand_totals().items()):
        identifier = HAND_TOTALS_ID.format(side=side)
        not_assessable = sum(1 for j in result.not_assessable if j.side == side)
        counts = [
            (codes.TOTAL_JSN_HAND, jsn),
            (codes.TOTAL_EROSION_HAND, erosion),
            (codes.NUMBER_OF_JOINTS, scored_by_side[side]),
            (codes.NUMBER_NOT_ASSESSABLE, not_assessable),
        ]
        groups.append(
            _totals_group(identifier, tracking_uid(identifier), model, side, counts, source)
        )
    if result.joints:
        counts = [
            (codes.TOTAL_JSN_IMAGE, result.total_jsn),
            (codes.TOTAL_EROSION_IMAGE, result.total_erosion),
            (codes.NUMBER_OF_JOINTS, result.joints_scored),
            (codes.NUMBER_NOT_ASSESSABLE, len(result.not_assessable)),
        ]
        groups.append(
            _totals_group(
                IMAGE_TOTALS_ID, tracking_uid(IMAGE_TOTALS_ID), model, None, counts, source
            )
        )
    return _container(dcm_codes.DCM.ImagingMeasurements, groups, None)
