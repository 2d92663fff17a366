"""The scoring Structured Report: valid DICOM, consistent with its source, exact round trip."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom import Dataset
from pydicom.uid import Comprehensive3DSRStorage

from dicom_io import codes
from dicom_io.results import (
    EROSION_GRADES,
    JSN_GRADES,
    NOT_FOR_DIAGNOSTIC_USE,
    JointResult,
    ModelInfo,
    ScoringResult,
)
from dicom_io.sr import NO_JOINTS_TEXT, SERIES_DESCRIPTION, SRFormatError, build_sr, read_sr

Checker = Callable[[Path | str], str]

ROOT = "1.2.826.0.1.3680043.10.543.77"  # test UIDs only
MODEL = ModelInfo(
    name="hirano2019-cnn",
    version="0.4.2+phantom",
    device_uid=f"{ROOT}.9.1",
    manufacturer="rascore",
)


def _tool(name: str) -> str:
    found = shutil.which(name) or (
        f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None
    )
    if found is None:
        pytest.fail(f"{name} is not installed (Debian dcmtk / dicom3tools)", pytrace=False)
    return found


def _softmax_like(grade: int, n: int, salt: float) -> tuple[float, ...]:
    """Unrounded probabilities (full double precision) whose argmax is ``grade``."""
    logits = [-2.0 * abs(k - grade) + 0.1 * math.sin(salt + k) for k in range(n)]
    top = max(logits)
    weights = [math.exp(v - top) for v in logits]
    total = sum(weights)
    probs = tuple(w / total for w in weights)
    assert max(range(n), key=probs.__getitem__) == grade
    return probs


def _result_from_truth(source: Dataset, truth: dict[str, Any]) -> ScoringResult:
    joints = tuple(
        JointResult(
            label=j["label"],
            box=(int(j["box"][0]), int(j["box"][1]), int(j["box"][2]), int(j["box"][3])),
            jsn=int(j["jsn"]),
            erosion=int(j["erosion"]),
            jsn_probs=_softmax_like(int(j["jsn"]), JSN_GRADES, salt=i),
            erosion_probs=_softmax_like(int(j["erosion"]), EROSION_GRADES, salt=-i),
        )
        for i, j in enumerate(truth["joints"])
    )
    return ScoringResult(str(source.SOPInstanceUID), joints, MODEL)


def _walk(items: Any) -> Iterator[Dataset]:
    for item in items:
        yield item
        yield from _walk(item.get("ContentSequence", []))


def _codes_in(ds: Dataset) -> Iterator[Dataset]:
    """Every code item (Concept Name, Concept Code, units ...) anywhere in the dataset."""
    for elem in ds.iterall():
        if elem.VR == "SQ":
            for item in elem.value:
                if "CodeValue" in item and "CodingSchemeDesignator" in item:
                    yield item


@pytest.fixture(scope="module")
def scored(
    phantom_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Dataset, ScoringResult, Path]:
    """(source file, source header, result, written SR) for the phantom's truth."""
    truth = json.loads((phantom_file.parent / "truth.json").read_text())["images"][0]
    source = pydicom.dcmread(phantom_file, stop_before_pixels=True)
    result = _result_from_truth(source, truth)
    assert len(result.joints) == 20 and {j.side for j in result.joints} == {"L", "R"}
    sr = build_sr(
        source,
        result,
        series_instance_uid=f"{ROOT}.1",
        sop_instance_uid=f"{ROOT}.1.1",
    )
    out = tmp_path_factory.mktemp("sr") / "sr.dcm"
    sr.save_as(out, enforce_file_format=True)
    return phantom_file, source, result, out


@pytest.fixture(scope="module")
def empty(
    phantom_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[ScoringResult, Path]:
    source = pydicom.dcmread(phantom_file, stop_before_pixels=True)
    result = ScoringResult(str(source.SOPInstanceUID), (), MODEL)
    out = tmp_path_factory.mktemp("sr0") / "sr0.dcm"
    build_sr(source, result).save_as(out, enforce_file_format=True)
    return result, out


def _dsrdump(path: Path) -> str:
    proc = subprocess.run([_tool("dsrdump"), str(path)], capture_output=True, text=True, timeout=60)
    output = proc.stdout + proc.stderr
    errors = [line for line in output.splitlines() if line.startswith(("E:", "F:"))]
    assert proc.returncode == 0 and not errors, output
    return output


def _dcentvfy(*paths: Path) -> str:
    proc = subprocess.run(
        [_tool("dcentvfy"), *map(str, paths)], capture_output=True, text=True, timeout=60
    )
    output = proc.stdout + proc.stderr
    bad = [
        line
        for line in output.splitlines()
        if line.startswith("Error") or "inconsisten" in line.lower()
    ]
    assert proc.returncode == 0 and not bad, output
    return output


# --- validators ---------------------------------------------------------------------------


def test_sr_passes_dciodvfy(scored: Any, assert_dciodvfy_clean: Checker) -> None:
    *_, path = scored
    output = assert_dciodvfy_clean(path)
    assert "Comprehensive3DSR" in output


def test_sr_parses_with_dcmdump(scored: Any, assert_dcmdump_parses: Checker) -> None:
    *_, path = scored
    assert_dcmdump_parses(path)


def test_dsrdump_renders_the_scores(scored: Any) -> None:
    *_, path = scored
    output = _dsrdump(path)
    assert "Comprehensive 3D SR Document" in output
    assert "Verification Flag   : UNVERIFIED" in output
    assert '"SvdH joint space narrowing score"' in output
    assert '"SvdH erosion score"' in output
    assert output.count('"Measurement Group"') == 20 + 2 + 1  # joints, hands, image
    assert '(26355-8,LN,"XR Hand - bilateral Arthritis")' in output
    assert '(121007,DCM,"Device")' in output


def test_dcentvfy_finds_source_and_sr_consistent(scored: Any) -> None:
    source_path, _, _, path = scored
    _dcentvfy(source_path, path)


# --- content ------------------------------------------------------------------------------


def test_round_trip_is_exact(scored: Any) -> None:
    *_, result, path = scored
    back = read_sr(pydicom.dcmread(path))
    assert back == result
    # bit for bit, not just ==: the probabilities travel as FD, not as 16-character DS
    for a, b in zip(back.joints, result.joints, strict=True):
        assert [p.hex() for p in a.jsn_probs] == [p.hex() for p in b.jsn_probs]
        assert [p.hex() for p in a.erosion_probs] == [p.hex() for p in b.erosion_probs]


def test_polylines_are_closed_boxes_inside_the_image(scored: Any) -> None:
    _, source, result, path = scored
    ds = pydicom.dcmread(path)
    regions = [i for i in _walk(ds.ContentSequence) if i.ValueType == "SCOORD"]
    assert len(regions) == len(result.joints)
    for region, joint in zip(regions, result.joints, strict=True):
        assert region.GraphicType == "POLYLINE"
        points = [tuple(region.GraphicData[k : k + 2]) for k in range(0, 10, 2)]
        assert len(region.GraphicData) == 10 and points[0] == points[-1]
        for x, y in points:
            assert 0 <= x <= source.Columns and 0 <= y <= source.Rows
        x, y, w, h = joint.box
        assert points == [(x, y), (x + w, y), (x + w, y + h), (x, y + h), (x, y)]
        (image,) = region.ContentSequence
        assert image.RelationshipType == "SELECTED FROM"
        ref = image.ReferencedSOPSequence[0]
        assert ref.ReferencedSOPInstanceUID == source.SOPInstanceUID
        assert ref.ReferencedSOPClassUID == source.SOPClassUID


def test_header_flags_series_and_identity(scored: Any) -> None:
    _, source, _, path = scored
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == Comprehensive3DSRStorage
    assert (ds.SeriesInstanceUID, ds.SOPInstanceUID) == (f"{ROOT}.1", f"{ROOT}.1.1")
    assert ds.SeriesInstanceUID != source.SeriesInstanceUID
    assert ds.Modality == "SR" and ds.SeriesNumber == 901 and ds.InstanceNumber == 1
    assert ds.VerificationFlag == "UNVERIFIED"
    assert ds.PreliminaryFlag == "PRELIMINARY"
    for keyword in (
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "StudyInstanceUID",
        "StudyDate",
        "StudyTime",
        "AccessionNumber",
        "StudyID",
    ):
        assert ds.get(keyword) == source.get(keyword), keyword
    evidence = ds.CurrentRequestedProcedureEvidenceSequence[0]
    assert evidence.StudyInstanceUID == source.StudyInstanceUID
    ref = evidence.ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
    assert ref.ReferencedSOPInstanceUID == source.SOPInstanceUID


def test_private_scheme_is_declared_and_every_code_is_known(scored: Any) -> None:
    *_, path = scored
    ds = pydicom.dcmread(path)
    (scheme,) = ds.CodingSchemeIdentificationSequence
    assert scheme.CodingSchemeDesignator == codes.SCHEME_DESIGNATOR == "99RASCORE"
    assert scheme.CodingSchemeName and scheme.CodingSchemeVersion
    assert scheme.CodingSchemeResponsibleOrganization
    used = {item.CodingSchemeDesignator for item in _codes_in(ds)}
    assert "99RASCORE" in used
    standard = {"DCM", "SCT", "LN", "UCUM", "UMLS", "RFC5646"}
    assert used <= standard | {scheme.CodingSchemeDesignator}, used


def test_contributing_equipment_carries_the_model(scored: Any) -> None:
    *_, path = scored
    ds = pydicom.dcmread(path)
    (item,) = [i for i in ds.ContributingEquipmentSequence if "DeviceUID" in i]
    assert item.DeviceUID == MODEL.device_uid
    assert item.Manufacturer == MODEL.manufacturer
    assert item.ManufacturerModelName == MODEL.name
    assert item.SoftwareVersions == MODEL.version
    purpose = item.PurposeOfReferenceCodeSequence[0]
    assert (purpose.CodeValue, purpose.CodingSchemeDesignator) == ("109102", "DCM")
    observer = [i for i in _walk(ds.ContentSequence) if i.ValueType == "UIDREF"]
    assert MODEL.device_uid in {i.UID for i in observer}


def test_every_group_identifies_the_algorithm_and_the_joint(scored: Any) -> None:
    *_, result, path = scored
    ds = pydicom.dcmread(path)
    groups = [
        i
        for i in _walk(ds.ContentSequence)
        if i.ValueType == "CONTAINER" and i.ConceptNameCodeSequence[0].CodeValue == "125007"
    ]
    assert len(groups) == 23
    labels = []
    for group in groups:
        texts = {
            c.ConceptNameCodeSequence[0].CodeMeaning: c.TextValue
            for c in group.ContentSequence
            if c.ValueType == "TEXT"
        }
        assert texts["Algorithm Name"] == MODEL.name
        assert texts["Algorithm Version"] == MODEL.version
        labels.append(texts["Tracking Identifier"])
        uids = [c.UID for c in group.ContentSequence if c.ValueType == "UIDREF"]
        assert len(uids) == 1
    assert labels == [j.label for j in result.joints] + [
        "L hand totals",
        "R hand totals",
        "image totals",
    ]
    mcp2 = next(g for g in groups if "R_MCP2" in str(g))
    site = next(
        c for c in mcp2.ContentSequence if c.ConceptNameCodeSequence[0].CodeValue == "363698007"
    )
    assert (
        site.ConceptCodeSequence[0].CodeValue,
        site.ConceptCodeSequence[0].CodingSchemeDesignator,
    ) == ("289002", "SCT")
    laterality = site.ContentSequence[0].ConceptCodeSequence[0]
    assert (laterality.CodeValue, laterality.CodeMeaning) == ("24028007", "Right")


def test_totals_per_hand_and_image(scored: Any) -> None:
    *_, result, path = scored
    ds = pydicom.dcmread(path)
    nums: dict[str, list[float]] = {}
    for item in _walk(ds.ContentSequence):
        if item.ValueType == "NUM":
            meaning = item.ConceptNameCodeSequence[0].CodeMeaning
            nums.setdefault(meaning, []).append(float(item.MeasuredValueSequence[0].NumericValue))
    hands = result.hand_totals()
    assert nums["Total SvdH JSN score of hand"] == [hands["L"][0], hands["R"][0]]
    assert nums["Total SvdH erosion score of hand"] == [hands["L"][1], hands["R"][1]]
    assert nums["Total SvdH JSN score of image"] == [result.total_jsn]
    assert nums["Total SvdH erosion score of image"] == [result.total_erosion]
    assert nums["Number of joints scored"] == [10, 10, 20]


def test_not_for_diagnostic_use_is_stated(scored: Any) -> None:
    *_, path = scored
    ds = pydicom.dcmread(path)
    assert ds.SeriesDescription == SERIES_DESCRIPTION
    assert "NOT FOR DIAGNOSTIC USE" in ds.SeriesDescription
    texts = [i.TextValue for i in _walk(ds.ContentSequence) if i.ValueType == "TEXT"]
    assert NOT_FOR_DIAGNOSTIC_USE in texts


def test_tracking_uids_follow_the_sop_instance_uid(scored: Any) -> None:
    _, source, result, path = scored
    again = build_sr(source, result, sop_instance_uid=f"{ROOT}.1.1")
    other = build_sr(source, result)

    def tracking(ds: Dataset) -> list[str]:
        return [i.UID for i in _walk(ds.ContentSequence) if i.ValueType == "UIDREF"]

    first = tracking(pydicom.dcmread(path))
    assert tracking(again) == first
    assert tracking(other)[1:] != first[1:]  # [0] is the device observer UID
    assert other.SOPInstanceUID != f"{ROOT}.1.1"


# --- no joints ----------------------------------------------------------------------------


def test_empty_report_is_valid_and_round_trips(
    phantom_file: Path, empty: Any, assert_dciodvfy_clean: Checker
) -> None:
    result, path = empty
    assert_dciodvfy_clean(path)
    output = _dsrdump(path)
    assert '"Measurement Group"' not in output and '"Imaging Measurements"' not in output
    _dcentvfy(phantom_file, path)
    ds = pydicom.dcmread(path)
    texts = [i.TextValue for i in _walk(ds.ContentSequence) if i.ValueType == "TEXT"]
    assert NOT_FOR_DIAGNOSTIC_USE in texts and NO_JOINTS_TEXT in texts
    assert ds.VerificationFlag == "UNVERIFIED"
    assert read_sr(ds) == result


# --- refusals -----------------------------------------------------------------------------


def test_build_refuses_inconsistent_results(scored: Any) -> None:
    _, source, result, _ = scored
    first = result.joints[0]
    outside = first.__class__(
        first.label,
        (int(source.Columns) - 10, 0, 11, 5),
        first.jsn,
        first.erosion,
        first.jsn_probs,
        first.erosion_probs,
    )
    bad_cases = [
        ScoringResult("1.2.3.4", result.joints, MODEL),
        ScoringResult(result.source_sop_instance_uid, (outside,), MODEL),
        ScoringResult(result.source_sop_instance_uid, (first, first), MODEL),
        ScoringResult(
            result.source_sop_instance_uid,
            (JointResult("R_DIP2", first.box, 0, 0, first.jsn_probs, first.erosion_probs),),
            MODEL,
        ),
        ScoringResult(
            result.source_sop_instance_uid,
            (JointResult(first.label, first.box, 5, 0, first.jsn_probs, first.erosion_probs),),
            MODEL,
        ),
        ScoringResult(
            result.source_sop_instance_uid,
            (JointResult(first.label, first.box, 0, 0, (1.0,), first.erosion_probs),),
            MODEL,
        ),
    ]
    for case in bad_cases:
        with pytest.raises(ValueError):
            build_sr(source, case)


def test_read_refuses_tampered_totals_and_other_objects(scored: Any) -> None:
    source_path, _, _, path = scored
    ds = pydicom.dcmread(path)
    for item in _walk(ds.ContentSequence):
        if (
            item.ValueType == "NUM"
            and item.ConceptNameCodeSequence[0].CodeMeaning == "Total SvdH JSN score of image"
        ):
            item.MeasuredValueSequence[0].NumericValue = "999"
    with pytest.raises(SRFormatError, match="image totals"):
        read_sr(ds)
    with pytest.raises(SRFormatError):
        read_sr(pydicom.dcmread(source_path, stop_before_pixels=True))


# --- joints that are not assessable -------------------------------------------------------

#: label → (reason, whether the model's probabilities are kept)
NOT_ASSESSABLE = {
    "R_PIP3": ("model unsure", True),
    "R_IP": ("model unsure", True),
    "L_MCP2": ("unlike the training images", False),
}


def _not_assessable(result: ScoringResult) -> ScoringResult:
    joints = []
    for joint in result.joints:
        if joint.label in NOT_ASSESSABLE:
            reason, keep = NOT_ASSESSABLE[joint.label]
            joint = dataclasses.replace(
                joint,
                jsn=None,
                erosion=None,
                assessable=False,
                reason=reason,
                jsn_probs=joint.jsn_probs if keep else (),
                erosion_probs=joint.erosion_probs if keep else (),
            )
        joints.append(joint)
    return dataclasses.replace(result, joints=tuple(joints))


@pytest.fixture(scope="module")
def partly(
    scored: Any, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Dataset, ScoringResult, Path]:
    """(source file, source header, result with three joints not assessable, written SR)."""
    source_path, source, result, _ = scored
    result = _not_assessable(result)
    out = tmp_path_factory.mktemp("sr-na") / "sr.dcm"
    build_sr(source, result, sop_instance_uid=f"{ROOT}.2.1").save_as(out, enforce_file_format=True)
    return source_path, source, result, out


def _groups_by_label(ds: Dataset) -> dict[str, Dataset]:
    groups = {}
    for item in _walk(ds.ContentSequence):
        if item.ValueType == "CONTAINER" and item.ConceptNameCodeSequence[0].CodeValue == "125007":
            (tracking,) = [
                c.TextValue
                for c in item.ContentSequence
                if c.ConceptNameCodeSequence[0].CodeMeaning == "Tracking Identifier"
            ]
            groups[tracking] = item
    return groups


def test_not_assessable_report_is_valid_and_round_trips(
    partly: Any, assert_dciodvfy_clean: Checker
) -> None:
    source_path, _, result, path = partly
    assert_dciodvfy_clean(path)
    _dcentvfy(source_path, path)
    output = _dsrdump(path)
    assert output.count('"Measurement Group"') == 20 + 2 + 1  # every joint keeps its group
    assert output.count('(NOT-ASSESSABLE,99RASCORE,"Not assessable")') == 2 * 3
    assert output.count('"Reason the joint is not assessable")="model unsure"') == 2
    assert '"Reason the joint is not assessable")="unlike the training images"' in output
    back = read_sr(pydicom.dcmread(path))
    assert back == result
    na = {j.label: j for j in back.joints if not j.assessable}
    assert set(na) == set(NOT_ASSESSABLE)
    assert na["L_MCP2"].jsn is None and na["L_MCP2"].erosion is None
    assert na["L_MCP2"].jsn_probs == () and na["L_MCP2"].reason == "unlike the training images"
    assert len(na["R_PIP3"].jsn_probs) == JSN_GRADES and na["R_PIP3"].reason == "model unsure"


def test_not_assessable_joint_keeps_region_and_site_but_no_grade(partly: Any) -> None:
    _, source, result, path = partly
    groups = _groups_by_label(pydicom.dcmread(path))
    joint = next(j for j in result.joints if j.label == "L_MCP2")
    group = groups["L_MCP2"]
    by_meaning = {c.ConceptNameCodeSequence[0].CodeMeaning: c for c in group.ContentSequence}
    x, y, w, h = joint.box
    region = by_meaning["Image Region"]
    assert [float(v) for v in region.GraphicData] == [
        float(v) for v in (x, y, x + w, y, x + w, y + h, x, y + h, x, y)
    ]
    assert region.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == (
        source.SOPInstanceUID
    )
    site = by_meaning["Finding Site"].ConceptCodeSequence[0]
    assert (site.CodeValue, site.CodingSchemeDesignator) == ("289002", "SCT")
    for score in ("SvdH joint space narrowing score", "SvdH erosion score"):
        value = by_meaning[score].ConceptCodeSequence[0]
        assert (value.CodeValue, value.CodeMeaning) == ("NOT-ASSESSABLE", "Not assessable")
    assert by_meaning["Reason the joint is not assessable"].TextValue == (
        "unlike the training images"
    )
    # no probabilities were given for this one, so none are reported; no grade anywhere
    assert not [c for c in group.ContentSequence if c.ValueType == "NUM"]
    assert "JSN-" not in str(group) and "ERO-" not in str(group)
    graded = groups["R_PIP2"]
    assert "NOT-ASSESSABLE" not in str(graded) and "Reason the joint" not in str(graded)


def test_totals_cover_the_assessable_joints_and_say_how_many(partly: Any) -> None:
    *_, result, path = partly
    ds = pydicom.dcmread(path)
    nums: dict[str, list[float]] = {}
    for item in _walk(ds.ContentSequence):
        if item.ValueType == "NUM":
            meaning = item.ConceptNameCodeSequence[0].CodeMeaning
            nums.setdefault(meaning, []).append(float(item.MeasuredValueSequence[0].NumericValue))
    graded = [j for j in result.joints if j.assessable]
    assert result.total_jsn == sum(j.jsn or 0 for j in graded)
    left_jsn = sum(j.jsn or 0 for j in graded if j.side == "L")
    right_erosion = sum(j.erosion or 0 for j in graded if j.side == "R")
    assert nums["Total SvdH JSN score of hand"][0] == left_jsn
    assert nums["Total SvdH erosion score of hand"][1] == right_erosion
    assert nums["Total SvdH JSN score of image"] == [result.total_jsn]
    assert nums["Number of joints scored"] == [9, 8, 17]  # L, R, image
    assert nums["Number of joints not assessable"] == [1, 2, 3]
    assert result.joints_scored == 17 and result.joints_expected == 20


def test_build_refuses_guessed_or_missing_grades(partly: Any) -> None:
    _, source, result, _ = partly
    na = next(j for j in result.joints if not j.assessable)
    graded = next(j for j in result.joints if j.assessable)
    bad = [
        dataclasses.replace(na, jsn=1),  # not assessable, yet graded
        dataclasses.replace(graded, jsn=None),  # graded, yet without a grade
        dataclasses.replace(na, jsn_probs=(), erosion_probs=(0.5, 0.5)),
    ]
    for joint in bad:
        with pytest.raises(ValueError, match=joint.label):
            build_sr(source, ScoringResult(result.source_sop_instance_uid, (joint,), MODEL))


def test_read_refuses_half_graded_joints_and_tampered_counts(partly: Any) -> None:
    *_, path = partly
    ds = pydicom.dcmread(path)
    group = _groups_by_label(ds)["R_PIP3"]
    for item in group.ContentSequence:
        if item.ConceptNameCodeSequence[0].CodeMeaning == "SvdH erosion score":
            item.ConceptCodeSequence[0].CodeValue = "ERO-1"
            item.ConceptCodeSequence[0].CodeMeaning = "SvdH erosion 1: discrete"
    with pytest.raises(SRFormatError, match="R_PIP3"):
        read_sr(ds)
    ds = pydicom.dcmread(path)
    for item in _walk(ds.ContentSequence):
        if (
            item.ValueType == "NUM"
            and item.ConceptNameCodeSequence[0].CodeMeaning == "Number of joints not assessable"
        ):
            item.MeasuredValueSequence[0].NumericValue = "0"
    with pytest.raises(SRFormatError, match="totals"):
        read_sr(ds)


def test_reports_without_not_assessable_counts_still_read(scored: Any) -> None:
    """Reports written before joints could be not assessable have no such count."""
    *_, result, path = scored
    ds = pydicom.dcmread(path)
    for item in _walk(ds.ContentSequence):
        if "ContentSequence" in item:
            item.ContentSequence = [
                c
                for c in item.ContentSequence
                if c.ConceptNameCodeSequence[0].CodeMeaning != "Number of joints not assessable"
            ]
    assert "Number of joints not assessable" not in str(ds)
    assert read_sr(ds) == result


def test_a_scanned_film_without_orientation_spacing_or_identity(
    phantom_file: Path, tmp_path: Path, assert_dciodvfy_clean: Checker
) -> None:
    """A film scanned or exported without Patient Orientation, Imager Pixel Spacing, birth date
    or accession number still gets its SR, and the SR states none of what the file lacks."""
    truth = json.loads((phantom_file.parent / "truth.json").read_text())["images"][0]
    source = pydicom.dcmread(phantom_file, stop_before_pixels=True)
    for keyword in (
        "PatientOrientation",
        "ImagerPixelSpacing",
        "PixelSpacing",
        "PatientBirthDate",
        "AccessionNumber",
        "ReferringPhysicianName",
    ):
        if keyword in source:
            delattr(source, keyword)
    result = _result_from_truth(source, truth)
    out = tmp_path / "sr.dcm"
    build_sr(source, result).save_as(out, enforce_file_format=True)
    assert_dciodvfy_clean(out)
    sr = pydicom.dcmread(out)
    assert sr.PatientBirthDate == "" and sr.AccessionNumber == ""
    assert read_sr(sr) == result
    names = {
        item.ConceptNameCodeSequence[0].CodeMeaning
        for item in _walk(sr.ContentSequence)
        if "ConceptNameCodeSequence" in item
    }
    for absent in (
        "Patient Orientation Row",
        "Patient Orientation Column",
        "Horizontal Pixel Spacing",
        "Vertical Pixel Spacing",
    ):
        assert absent not in names
    assert "Pixel Data Rows" in names  # the rest of the Image Library entry stays
