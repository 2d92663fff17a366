"""The fast SR (``build_sr``) is the highdicom reference byte for byte, valid and readable."""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest
from pydicom import Dataset
from test_sr import ROOT, _not_assessable, _result_from_truth

from dicom_io.results import ResultMismatch, ScoringResult
from dicom_io.sr import build_sr, read_sr
from dicom_io.sr.build import build_sr_reference

Checker = Callable[[Path | str], str]

SERIES_UID, SOP_UID = f"{ROOT}.5", f"{ROOT}.5.1"
#: what may differ between two builds: when each was made
CREATION = {
    "InstanceCreationDate": "20260101",
    "InstanceCreationTime": "120000",
    "ContentDate": "20260101",
    "ContentTime": "120000",
    "SeriesDate": "20260101",
    "SeriesTime": "120000",
}
UNKNOWN_GEOMETRY = (
    "PatientOrientation",
    "ImagerPixelSpacing",
    "PixelSpacing",
    "NominalScannedPixelSpacing",
    "ImageLaterality",
    "Laterality",
)


def _bytes(sr: Dataset) -> bytes:
    """The written file, with the creation times (and only those) made equal."""
    for keyword, value in CREATION.items():
        if keyword in sr:
            setattr(sr, keyword, value)
    for equipment in sr.get("ContributingEquipmentSequence", []):
        if "ContributionDateTime" in equipment:
            equipment.ContributionDateTime = "20260101120000"
    out = io.BytesIO()
    sr.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _differences(a: Dataset, b: Dataset, path: str = "") -> list[str]:
    """Where two data sets differ, element by element, recursively (for the failure message)."""
    found = [f"{path} {pydicom.tag.Tag(t)} only in one" for t in set(a.keys()) ^ set(b.keys())]
    for tag in sorted(set(a.keys()) & set(b.keys())):
        x, y = a[tag], b[tag]
        where = f"{path}/{x.keyword}"
        if x.VR != y.VR:
            found.append(f"{where}: VR {x.VR} != {y.VR}")
        elif x.VR == "SQ":
            if len(x.value) != len(y.value):
                found.append(f"{where}: {len(x.value)} items != {len(y.value)}")
                continue
            for i, (u, v) in enumerate(zip(x.value, y.value, strict=True)):
                found += _differences(u, v, f"{where}[{i}]")
        elif str(x.value) != str(y.value):
            found.append(f"{where}: {x.value!r} != {y.value!r}")
    return found


@pytest.fixture(scope="module")
def phantom(phantom_file: Path) -> tuple[Dataset, ScoringResult]:
    truth = json.loads((phantom_file.parent / "truth.json").read_text())["images"][0]
    source = pydicom.dcmread(phantom_file, stop_before_pixels=True)
    return source, _result_from_truth(source, truth)


def _case(name: str, source: Dataset, result: ScoringResult) -> tuple[Dataset, ScoringResult]:
    if name == "not assessable":
        return source, _not_assessable(result)
    if name == "one hand":
        right = tuple(j for j in result.joints if j.side == "R")
        return source, dataclasses.replace(result, joints=right)
    if name == "no joints":
        return source, dataclasses.replace(result, joints=())
    if name == "no spacing or laterality":
        stripped = pydicom.Dataset(source)
        stripped.file_meta = source.file_meta
        for keyword in UNKNOWN_GEOMETRY:
            if keyword in stripped:
                delattr(stripped, keyword)
        return stripped, _not_assessable(result)
    return source, result


CASES = ["both hands", "not assessable", "one hand", "no joints", "no spacing or laterality"]


@pytest.mark.parametrize("name", CASES)
def test_fast_sr_equals_the_highdicom_reference(
    name: str,
    phantom: tuple[Dataset, ScoringResult],
    tmp_path: Path,
    assert_dciodvfy_clean: Checker,
) -> None:
    source, result = _case(name, *phantom)
    fast = build_sr(source, result, series_instance_uid=SERIES_UID, sop_instance_uid=SOP_UID)
    reference = build_sr_reference(
        source, result, series_instance_uid=SERIES_UID, sop_instance_uid=SOP_UID
    )
    fast_bytes, reference_bytes = _bytes(fast), _bytes(reference)
    assert fast_bytes == reference_bytes, "\n".join(_differences(fast, reference)[:20])

    path = tmp_path / "sr.dcm"
    path.write_bytes(fast_bytes)
    assert_dciodvfy_clean(path)
    assert read_sr(pydicom.dcmread(path)) == result
    assert read_sr(fast) == result  # in memory too, as the node hands it on


def test_the_fast_sr_raises_what_the_reference_raises(
    phantom: tuple[Dataset, ScoringResult],
) -> None:
    source, result = phantom
    other = dataclasses.replace(result, source_sop_instance_uid=f"{ROOT}.404")
    with pytest.raises(ResultMismatch, match="the result is for"):
        build_sr(source, other)
    twice = dataclasses.replace(result, joints=result.joints + result.joints[:1])
    with pytest.raises(ResultMismatch, match="appears twice"):
        build_sr(source, twice)
