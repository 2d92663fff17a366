"""Reading a report of :func:`~dicom_io.sr.build_sr` back into the scoring it was built from.

Probabilities are read from the Floating Point Value (FD), so they round-trip bit for bit; the
totals are checked against the joints.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
from highdicom.sr import (
    CodedConcept,
    GraphicTypeValues,
)
from pydicom import Dataset
from pydicom.sr.codedict import codes as dcm_codes
from pydicom.sr.coding import Code
from pydicom.uid import Comprehensive3DSRStorage

from dicom_io import codes
from dicom_io.results import (
    NOT_ASSESSABLE,
    JointResult,
    ModelInfo,
    ScoringResult,
)
from dicom_io.sr.template import (
    HAND_TOTALS_ID,
    IMAGE_TOTALS_ID,
    LABEL,
    SRFormatError,
    concept_name,
)


def _children(item: Dataset) -> list[Dataset]:
    return list(item.get("ContentSequence", []))


def _find(items: Sequence[Dataset], name: Code, value_type: str | None = None) -> list[Dataset]:
    return [
        item
        for item in items
        if concept_name(item) == name and (value_type is None or item.ValueType == value_type)
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
        raise SRFormatError(f"{where}: {concept_name(item).meaning} is not a whole number: {value}")
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
                match = re.fullmatch(HAND_TOTALS_ID.format(side="(L|R)"), identifier)
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
    match = LABEL.match(label)
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
