"""Headers as real PACS send them: stripped, de-identified, scanned films (issue 11).

For a phantom radiograph (CR, DX and a scanned film stored as Secondary Capture), every
top-level attribute except Pixel Data is removed in turn, and separately emptied; then the
attribute sets of the DICOM PS3.15 Basic Application Level Confidentiality Profile are removed,
emptied or replaced. Each variant goes through the node's path: bytes on disk, parsed, routed,
read, scored, and the SR, overlay SC and GSPS built, written and checked by dciodvfy. Each must
succeed, or fail with a typed refusal whose message is one line (``UnreadableImage`` where the
pixels cannot be decoded, ``ResultBuildError`` where a result cannot be built), never anything
else.

Scoring is repeated only where the attribute can change what is read (the pixel module,
spacing, laterality, the grey-scale pipeline, orientation, the SOP identity); elsewhere the
source's own score is reused, since reading ignores the attribute. The objects are built from
the first joint only: what the header does to them does not depend on how many joints they
carry, and highdicom takes most of a second for a 20-joint SR (the other tests build those).
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    DigitalXRayImageStorageForPresentation,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from dicom_io.pr import build_gsps
from dicom_io.reading import UnreadableImage, read_radiograph
from dicom_io.results import ResultBuildError, ScoringResult, SourceHeaderError
from dicom_io.sc import build_overlay_sc
from dicom_io.sr import build_sr, read_sr
from scoring.phantom import PhantomConfig, generate_image
from scoring.pipeline import Scorer
from worker.lab.phantom_export import write_image
from worker.node.routing import route
from worker.scoring_io import ScoredFile, score_dataset, scoring_result

Checker = Callable[[Path | str], str]
HAND_KEYWORDS = ["HAND", "MANO", "MAIN", "HAND PA", "HANDS"]  # worker.settings' default
BUILDERS = (("sr", build_sr), ("sc", build_overlay_sc), ("gsps", build_gsps))

#: Attributes without which the stored pixels cannot be decoded: a typed refusal is the answer.
PIXEL_ESSENTIALS = frozenset(
    {
        "Rows",
        "Columns",
        "SamplesPerPixel",
        "PhotometricInterpretation",
        "BitsAllocated",
        "BitsStored",
        "PixelRepresentation",
    }
)
#: Attributes outside group 0028 that reading (or the scorer) looks at.
READ_BY_SCORING = frozenset(
    {
        "SOPClassUID",
        "SOPInstanceUID",
        "StudyInstanceUID",
        "ImagerPixelSpacing",
        "NominalScannedPixelSpacing",
        "ImageLaterality",
        "Laterality",
        "PatientOrientation",
        "PresentationLUTShape",
        "Modality",
        "ViewPosition",
        "LossyImageCompression",
    }
)

# --- PS3.15 Annex E, Table E.1-1 (Basic Application Level Confidentiality Profile) -------------
# The attributes of the table that a CR, DX or scanned-film header carries, by the Basic
# Profile's action: X remove, Z empty (zero length), U a new UID consistent within the set. The
# X/Z, X/D and X/Z/D actions are taken as X here (the IODs' Type 3), Z/D as Z; the variant
# "everything emptied" covers de-identifiers that empty where the table says remove.
DEID_REMOVE = (
    "InstanceCreationDate",
    "InstanceCreationTime",
    "InstanceCreatorUID",
    "SeriesDate",
    "SeriesTime",
    "AcquisitionDate",
    "AcquisitionTime",
    "AcquisitionDateTime",
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "ReferringPhysicianAddress",
    "ReferringPhysicianTelephoneNumbers",
    "StationName",
    "StudyDescription",
    "SeriesDescription",
    "PhysiciansOfRecord",
    "PerformingPhysicianName",
    "NameOfPhysiciansReadingStudy",
    "OperatorsName",
    "AdmittingDiagnosesDescription",
    "DerivationDescription",
    "IssuerOfPatientID",
    "PatientBirthTime",
    "OtherPatientIDs",
    "OtherPatientNames",
    "PatientAge",
    "PatientSize",
    "PatientWeight",
    "PatientAddress",
    "EthnicGroup",
    "Occupation",
    "AdditionalPatientHistory",
    "PatientComments",
    "DeviceSerialNumber",
    "DetectorID",
    "SoftwareVersions",
    "ProtocolName",
    "ImageComments",
    "RequestAttributesSequence",
    "PerformedProcedureStepID",
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
    "PerformedProcedureStepDescription",
    "RequestedProcedureDescription",
    "RequestingPhysician",
)
DEID_EMPTY = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyID",
    "StudyDate",
    "StudyTime",
    "ContentDate",
    "ContentTime",
)
DEID_NEW_UID = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID")
#: A header stripped to what a radiograph cannot do without.
STRIPPED_KEEPS = frozenset(
    {
        "SOPClassUID",
        "SOPInstanceUID",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        *PIXEL_ESSENTIALS,
        "HighBit",
        "PixelData",
    }
)


# --- sources ------------------------------------------------------------------------------------


def _enrich(ds: FileDataset) -> FileDataset:
    """Add what real headers carry and the phantom does not: identifying attributes for the
    de-identification to act on, a window (the one reading would make, so that scoring sees
    the same picture) and a request."""
    centre, width = read_radiograph(ds).window
    ds.WindowCenter = f"{centre:.2f}"
    ds.WindowWidth = f"{width:.2f}"
    ds.WindowCenterWidthExplanation = "HAND"
    ds.VOILUTFunction = "LINEAR"
    ds.InstanceCreatorUID = "1.2.826.0.1.3680043.10.543.5"
    ds.AcquisitionDate = ds.StudyDate
    ds.AcquisitionTime = ds.StudyTime
    ds.InstitutionName = "Hospital of Nowhere"
    ds.InstitutionAddress = "1 Nowhere Road"
    ds.StationName = "XR-ROOM-2"
    ds.OperatorsName = "Doe^Operator"
    ds.PerformingPhysicianName = "Doe^Performer"
    ds.PatientAge = "056Y"
    ds.PatientWeight = "70"
    ds.OtherPatientIDs = "OTHER-1"
    ds.IssuerOfPatientID = "NOWHERE"
    ds.DeviceSerialNumber = "SN-12345"
    ds.ProtocolName = "HAND PA BOTH"
    ds.Laterality = ""
    request = Dataset()
    request.RequestedProcedureID = "RP1"
    request.ScheduledProcedureStepID = "SPS1"
    ds.RequestAttributesSequence = DicomSequence([request])
    ds.PerformedProcedureStepID = "PPS1"
    ds.PerformedProcedureStepStartDate = ds.StudyDate
    return ds


def _as_scanned_film(ds: FileDataset) -> FileDataset:
    """The radiograph as a film digitiser stores it: Secondary Capture, Conversion Type DF,
    8-bit MONOCHROME2, Nominal Scanned Pixel Spacing, none of the acquisition's attributes."""
    grey = read_radiograph(ds).pixels  # bone bright, as on the light box
    film = np.rint(grey * 255.0).astype(np.uint8)
    spacing = [float(v) for v in ds.ImagerPixelSpacing]
    for keyword in (
        "ImagerPixelSpacing",
        "PixelSpacing",
        "RescaleIntercept",
        "RescaleSlope",
        "RescaleType",
        "PresentationLUTShape",
        "WindowCenter",
        "WindowWidth",
        "WindowCenterWidthExplanation",
        "VOILUTFunction",
        "KVP",
        "Exposure",
        "ViewPosition",
        "ImageLaterality",
        "PatientOrientation",
    ):
        if keyword in ds:
            del ds[keyword]
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.Modality = "OT"
    ds.ConversionType = "DF"
    ds.NominalScannedPixelSpacing = spacing
    ds.PatientOrientation = ""
    ds.Laterality = ""
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = film.tobytes()
    ds["PixelData"].VR = "OB"
    return ds


def _to_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer)  # as it is: a header without SOP UIDs must stay so
    return buffer.getvalue()


def _parse(data: bytes) -> FileDataset:
    return pydicom.dcmread(io.BytesIO(data))


@dataclass(frozen=True)
class Source:
    kind: str
    data: bytes  # the file, as the node stores it
    scored: ScoredFile  # the unchanged file's score, reused where reading is unaffected


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    return Scorer.load()


@pytest.fixture(scope="module")
def sources(
    phantom_file: Path, scorer: Scorer, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Source]:
    """CR (the shared bilateral phantom), DX (one hand) and a scanned film, enriched."""
    dx_dir = tmp_path_factory.mktemp("dx")
    dx_image = generate_image(5, 1, PhantomConfig(modalities=("DX",), hands=1))
    dx_file = dx_dir / write_image(5, dx_image, dx_dir)["file"]
    cr = _enrich(pydicom.dcmread(phantom_file))
    dx = _enrich(pydicom.dcmread(dx_file))
    assert dx.SOPClassUID == DigitalXRayImageStorageForPresentation
    film = _as_scanned_film(_enrich(pydicom.dcmread(phantom_file)))
    out = {}
    for kind, ds in (("cr", cr), ("dx", dx), ("scanned-film", film)):
        data = _to_bytes(ds)
        scored = score_dataset(scorer, _parse(data))
        assert len(scored.score.joints) >= 8, (kind, scored.score.status)
        out[kind] = Source(kind, data, scored)
    return out


# --- one variant end to end ----------------------------------------------------------------------


def _reads_it(keywords: set[str]) -> bool:
    return any(
        k in READ_BY_SCORING or (pydicom.datadict.tag_for_keyword(k) or 0) >> 16 in (0x28, 0x2050)
        for k in keywords
    )


def _one_joint(result: ScoringResult) -> ScoringResult:
    return dataclasses.replace(result, joints=result.joints[:1])


def _is_one_line(exc: BaseException) -> bool:
    return "\n" not in str(exc) and bool(str(exc).strip())


def _dciodvfy_errors(path: Path) -> list[str]:
    exe = shutil.which("dciodvfy") or "/usr/bin/dciodvfy"
    proc = subprocess.run(
        [exe, str(path)], capture_output=True, text=True, errors="replace", timeout=120
    )
    return [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("Error")]


def run_variant(scorer: Scorer, source: Source, ds: Dataset, changed: set[str], out: Path) -> str:
    """ "ok", "refused: ..." (typed, one line) or "CRASH: ..." (anything else) for ``ds``."""
    try:
        data = _to_bytes(ds)
        parsed = _parse(data)
        route(parsed, HAND_KEYWORDS)  # must answer, whatever the header
        if _reads_it(changed):
            scored = score_dataset(scorer, parsed)
        else:
            scored = ScoredFile(parsed, source.scored.image, source.scored.score, {})
        result = _one_joint(scoring_result(scorer, scored))
        for kind, build in BUILDERS:
            path = out / f"{kind}.dcm"
            build(parsed, result).save_as(path, enforce_file_format=True)
            errors = _dciodvfy_errors(path)
            if errors:
                return f"INVALID {kind}: " + " | ".join(errors)
        return "ok"
    except (UnreadableImage, ResultBuildError) as exc:
        if not _is_one_line(exc):
            return f"CRASH: {type(exc).__name__} over several lines: {exc!r}"
        return f"refused: {type(exc).__name__}: {exc}"
    except Exception as exc:
        return f"CRASH: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"


def _variants(ds: Dataset, mode: str) -> Iterator[tuple[str, Dataset]]:
    for element in ds:
        if element.tag == 0x7FE00010:
            continue
        variant = copy.deepcopy(ds)
        if mode == "remove":
            del variant[element.tag]
        else:  # zero-length value: any VR may be encoded so (Type 2 semantics)
            variant[element.tag].value = [] if element.VR == "SQ" else None
        yield element.keyword or str(element.tag), variant


def _check(outcomes: dict[str, str], may_refuse: frozenset[str] = PIXEL_ESSENTIALS) -> None:
    bad = {
        name: outcome
        for name, outcome in outcomes.items()
        if outcome != "ok" and not (outcome.startswith("refused") and name in may_refuse)
    }
    assert not bad, json.dumps(bad, indent=1)


# --- the fuzz -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "mode"),
    [
        ("cr", "remove"),
        ("cr", "empty"),
        ("dx", "remove"),
        ("scanned-film", "remove"),
        ("scanned-film", "empty"),
    ],
)
def test_each_attribute_removed_or_emptied(
    kind: str, mode: str, sources: dict[str, Source], scorer: Scorer, tmp_path: Path
) -> None:
    """Every attribute but Pixel Data, removed (or emptied) alone: results, or a typed refusal
    where the pixels cannot be decoded without it."""
    source = sources[kind]
    outcomes = {
        name: run_variant(scorer, source, variant, {name}, tmp_path)
        for name, variant in _variants(_parse(source.data), mode)
    }
    assert len(outcomes) > 40
    _check(outcomes)


def _deidentified(ds: Dataset, emptied_not_removed: bool) -> Dataset:
    out = copy.deepcopy(ds)
    for keyword in DEID_REMOVE:
        if keyword in out:
            if emptied_not_removed:
                out[keyword].value = [] if out[keyword].VR == "SQ" else None
            else:
                del out[keyword]
    for keyword in DEID_EMPTY:
        if keyword in out:
            out[keyword].value = None
    for keyword in DEID_NEW_UID:
        if keyword in out:
            setattr(out, keyword, generate_uid())
    out.file_meta.MediaStorageSOPInstanceUID = out.SOPInstanceUID
    out.PatientIdentityRemoved = "YES"
    out.DeidentificationMethod = "PS3.15 Basic Application Level Confidentiality Profile"
    return out


def _stripped(ds: Dataset, keep: frozenset[str]) -> Dataset:
    out = copy.deepcopy(ds)
    for element in list(out):
        if element.keyword not in keep:
            del out[element.tag]
    return out


@pytest.mark.parametrize("kind", ["cr", "dx", "scanned-film"])
def test_deidentified_and_stripped_headers_get_all_three_results(
    kind: str, sources: dict[str, Source], scorer: Scorer, tmp_path: Path
) -> None:
    """PS3.15 Basic Profile, as tables say (remove) and as many tools do it (empty); a header
    stripped to the pixel module and the UIDs; and one without even the study and series
    UIDs: SR, SC and GSPS all built and valid."""
    ds = _parse(sources[kind].data)
    variants = {
        "basic profile": _deidentified(ds, emptied_not_removed=False),
        "basic profile, emptied": _deidentified(ds, emptied_not_removed=True),
        "stripped": _stripped(ds, STRIPPED_KEEPS),
        "stripped, no study or series": _stripped(
            ds, STRIPPED_KEEPS - {"StudyInstanceUID", "SeriesInstanceUID"}
        ),
    }
    outcomes = {
        name: run_variant(scorer, sources[kind], variant, {"SOPInstanceUID"}, tmp_path)
        for name, variant in variants.items()
    }
    _check(outcomes, may_refuse=frozenset())


# --- the named crashes and the scanned film ---------------------------------------------


def _results(source: Dataset, scorer: Scorer, out: Path) -> dict[str, Path]:
    scored = score_dataset(scorer, source)
    result = scoring_result(scorer, scored)
    paths = {}
    for kind, build in BUILDERS:
        paths[kind] = out / f"{kind}.dcm"
        build(source, result).save_as(paths[kind], enforce_file_format=True)
    return paths


def _descriptors(sr: Dataset) -> dict[str, Any]:
    """The Image Library entry's descriptors of the SR, by concept name."""
    found: dict[str, Any] = {}

    def walk(items: Any) -> None:
        for item in items:
            if item.get("RelationshipType") == "HAS ACQ CONTEXT":
                name = item.ConceptNameCodeSequence[0].CodeMeaning
                if "TextValue" in item:
                    found[name] = item.TextValue
                elif "MeasuredValueSequence" in item:
                    found[name] = float(item.MeasuredValueSequence[0].NumericValue)
            walk(item.get("ContentSequence", []))

    walk(sr.ContentSequence)
    return found


def test_dx_with_an_empty_patient_orientation(
    sources: dict[str, Source], scorer: Scorer, tmp_path: Path, assert_dciodvfy_clean: Checker
) -> None:
    """Issue 11: an empty Patient Orientation on a DX stopped the SR with an IndexError."""
    ds = _parse(sources["dx"].data)
    ds.PatientOrientation = ""
    paths = _results(ds, scorer, tmp_path)
    for path in paths.values():
        assert_dciodvfy_clean(path)
    sr = pydicom.dcmread(paths["sr"])
    assert "Patient Orientation Row" not in _descriptors(sr)
    assert pydicom.dcmread(paths["sc"]).PatientOrientation == ""


def test_cr_with_pixel_spacing_but_no_imager_pixel_spacing(
    sources: dict[str, Source], scorer: Scorer, tmp_path: Path, assert_dciodvfy_clean: Checker
) -> None:
    """Issue 11: highdicom read Imager Pixel Spacing unconditionally. The SR's projection
    descriptors now come from Pixel Spacing (row, column) when the detector's is absent."""
    ds = _parse(sources["cr"].data)
    del ds.ImagerPixelSpacing
    ds.PixelSpacing = [0.2, 0.1]  # row spacing, column spacing
    paths = _results(ds, scorer, tmp_path)
    for path in paths.values():
        assert_dciodvfy_clean(path)
    found = _descriptors(pydicom.dcmread(paths["sr"]))
    assert found["Vertical Pixel Spacing"] == pytest.approx(0.2)
    assert found["Horizontal Pixel Spacing"] == pytest.approx(0.1)


def test_scanned_film_descriptors_come_from_the_nominal_scanned_spacing(
    sources: dict[str, Source], scorer: Scorer, tmp_path: Path
) -> None:
    ds = _parse(sources["scanned-film"].data)
    ds.Modality = "CR"  # a digitiser that names the film's modality: projection descriptors
    paths = _results(ds, scorer, tmp_path)
    found = _descriptors(pydicom.dcmread(paths["sr"]))
    spacing = float(ds.NominalScannedPixelSpacing[0])
    assert found["Vertical Pixel Spacing"] == pytest.approx(spacing)
    assert found["Horizontal Pixel Spacing"] == pytest.approx(spacing)
    assert "Patient Orientation Row" not in found  # the film's is empty: not stated


def test_no_patient_birth_date(
    sources: dict[str, Source], scorer: Scorer, tmp_path: Path, assert_dciodvfy_clean: Checker
) -> None:
    """Issue 11: highdicom raised AttributeError in the SR constructor without a birth date."""
    ds = _parse(sources["cr"].data)
    del ds.PatientBirthDate
    paths = _results(ds, scorer, tmp_path)
    for path in paths.values():
        assert_dciodvfy_clean(path)
        made = pydicom.dcmread(path)
        assert made.PatientBirthDate == ""
        assert (made.PatientName, made.PatientID) == (ds.PatientName, ds.PatientID)


def test_results_never_change_the_source(sources: dict[str, Source], scorer: Scorer) -> None:
    """The SR's placeholders (orientation, spacing) must not leak into the SC built after it."""
    ds = _parse(sources["dx"].data)
    ds.PatientOrientation = ""
    del ds.ImagerPixelSpacing
    before = copy.deepcopy(ds)
    result = scoring_result(scorer, score_dataset(scorer, ds))
    for _, build in BUILDERS:
        build(ds, result)
    assert ds == before


def test_missing_type_1_identity_is_derived(
    sources: dict[str, Source], scorer: Scorer, tmp_path: Path, assert_dciodvfy_clean: Checker
) -> None:
    """No SOP Class or Instance UID in the data set (the file meta has them), no Modality, no
    Study or Series Instance UID: the results refer to the image by its file meta's UIDs and
    agree with each other on the derived study and series."""
    ds = _parse(sources["cr"].data)
    sop_uid = str(ds.SOPInstanceUID)
    for keyword in ("SOPClassUID", "SOPInstanceUID", "Modality", "StudyInstanceUID"):
        delattr(ds, keyword)
    ds.SeriesInstanceUID = ""
    paths = _results(ds, scorer, tmp_path)
    made = {kind: pydicom.dcmread(path) for kind, path in paths.items()}
    for path in paths.values():
        assert_dciodvfy_clean(path)
    assert len({m.StudyInstanceUID for m in made.values()}) == 1
    assert read_sr(made["sr"]).source_sop_instance_uid == sop_uid
    assert made["sc"].SourceImageSequence[0].ReferencedSOPInstanceUID == sop_uid
    gsps_series = made["gsps"].ReferencedSeriesSequence[0]
    assert gsps_series.ReferencedImageSequence[0].ReferencedSOPInstanceUID == sop_uid
    evidence = made["sr"].CurrentRequestedProcedureEvidenceSequence[0]
    assert evidence.ReferencedSeriesSequence[0].SeriesInstanceUID == (gsps_series.SeriesInstanceUID)


def test_an_image_nothing_can_refer_to_is_a_one_line_result_build_error(
    sources: dict[str, Source], scorer: Scorer
) -> None:
    ds = _parse(sources["cr"].data)
    scored = score_dataset(scorer, ds)
    result = scoring_result(scorer, scored)
    del ds.SOPInstanceUID
    del ds.file_meta.MediaStorageSOPInstanceUID
    for _, build in BUILDERS:
        with pytest.raises(SourceHeaderError) as raised:
            build(ds, result)
        assert raised.value.reason == "source-header"
        assert isinstance(raised.value, ResultBuildError) and _is_one_line(raised.value)
        assert "SOPInstanceUID" in str(raised.value)


def test_a_highdicom_failure_becomes_a_one_line_result_build_error(
    sources: dict[str, Source], scorer: Scorer
) -> None:
    """Whatever the library raises while building is wrapped with the object it was for."""
    ds = _parse(sources["cr"].data)
    result = scoring_result(scorer, score_dataset(scorer, ds))
    ds.Modality = "CT"  # highdicom then wants a cross-sectional image's geometry
    with pytest.raises(ResultBuildError, match=r"^cannot build the SR") as raised:
        build_sr(ds, result)
    assert _is_one_line(raised.value)


def test_a_scanned_film_is_routed_read_scored_and_gets_valid_results(
    sources: dict[str, Source], scorer: Scorer, tmp_path: Path, assert_dciodvfy_clean: Checker
) -> None:
    """Secondary Capture, Conversion Type DF, 8-bit MONOCHROME2, Nominal Scanned Pixel Spacing
    and Body Part Examined HAND: scored like a CR, with SR, SC and GSPS."""
    ds = _parse(sources["scanned-film"].data)
    decision = route(ds, HAND_KEYWORDS)
    assert decision.score, decision.reason
    image = read_radiograph(ds)
    assert image.spacing_source == "NominalScannedPixelSpacing"
    scored = score_dataset(scorer, ds)
    assert len(scored.score.joints) >= 16 and set(scored.score.hands) == {"L", "R"}
    assert not scored.score.spacing_assumed
    paths = _results(ds, scorer, tmp_path)
    for path in paths.values():
        assert_dciodvfy_clean(path)
    assert len(read_sr(pydicom.dcmread(paths["sr"])).joints) == len(scored.score.joints)


@pytest.mark.parametrize(
    ("changes", "score"),
    [
        ({}, True),
        ({"ConversionType": "DI"}, True),
        ({"BodyPartExamined": "", "SeriesDescription": "L+R HANDS PA"}, True),
        (  # a scanned film that says nothing of what it shows: the detector decides
            dict.fromkeys(
                ("BodyPartExamined", "ProtocolName", "SeriesDescription", "StudyDescription"), ""
            ),
            True,
        ),
        (  # a scanned film of something else
            {
                "BodyPartExamined": "CHEST",
                "SeriesDescription": "PA",
                "ProtocolName": "",
                "StudyDescription": "THORAX",
            },
            False,
        ),
        ({"ConversionType": "WSD"}, False),  # a workstation's picture, e.g. rascore's overlay
        ({"ConversionType": "SYN"}, False),
        ({"ConversionType": None}, False),
    ],
)
def test_secondary_capture_routing(
    changes: dict[str, str | None], score: bool, sources: dict[str, Source]
) -> None:
    ds = _parse(sources["scanned-film"].data)
    for keyword, value in changes.items():
        if value is None:
            del ds[keyword]
        else:
            setattr(ds, keyword, value)
    decision = route(ds, HAND_KEYWORDS)
    assert decision.score is score, decision.reason
    assert decision.reason and "\n" not in decision.reason


def test_rascore_score_out_says_why_in_one_line(sources: dict[str, Source], tmp_path: Path) -> None:
    """``rascore score --out`` on an image its results could not refer to: exit 2 and one
    line, never a traceback (issue 11's first finding)."""
    ds = _parse(sources["cr"].data)
    del ds.SOPInstanceUID
    del ds.file_meta.MediaStorageSOPInstanceUID
    path = tmp_path / "no-uid.dcm"
    path.write_bytes(_to_bytes(ds))
    rascore = str(Path(sys.executable).with_name("rascore"))
    done = subprocess.run(
        [rascore, "score", str(path), "--out", str(tmp_path / "out"), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "SOPInstanceUID" in done.stderr


@pytest.mark.parametrize("name", ["RG1_UNCI.dcm", "RG3_J2KR.dcm"])
def test_real_cr_files_get_valid_results(
    name: str, scorer: Scorer, tmp_path: Path, assert_dciodvfy_clean: Checker
) -> None:
    """pydicom's real CRs: a chest (unpaired: its results' series have no Laterality; Pixel
    Spacing 0\\0, so no spacing descriptors) and an extremity in JPEG 2000."""
    ds = pydicom.dcmread(str(get_testdata_file(name)))
    paths = _results(ds, scorer, tmp_path)
    for path in paths.values():
        assert_dciodvfy_clean(path)
    made = {kind: pydicom.dcmread(path) for kind, path in paths.items()}
    if ds.BodyPartExamined == "CHEST":
        assert "Laterality" not in made["sc"] and "Laterality" not in made["gsps"]
        assert "Horizontal Pixel Spacing" not in _descriptors(made["sr"])
    else:
        assert made["gsps"].Laterality == ds.Laterality


#: Values PACS pass on that the standard (or highdicom) does not allow, one at a time.
HOSTILE_VALUES: dict[str, Any] = {
    "PatientSex": "U",
    "PatientBirthDate": "05.01.1970",
    "StudyDate": "2026-13-45",
    "StudyTime": "9h30",
    "SpecificCharacterSet": "ISO-8859-1",
    "PatientName": ["Doe^John", "Roe^Richard"],
    "ImageLaterality": ["L", "R"],
    "StudyInstanceUID": ["1.2.3", "1.2.4"],
    "SeriesInstanceUID": ["1.2.3", "1.2.4"],
    "RescaleType": "HU " * 30,
    "BodyPartExamined": ["HAND", "WRIST"],
    "WindowCenterWidthExplanation": "a window explained at some length " * 3,
}


def test_values_no_iod_allows_still_get_valid_results(
    sources: dict[str, Source], scorer: Scorer, tmp_path: Path
) -> None:
    """An invalid Type 2 value becomes empty (unknown), an unknown character set UTF-8, a
    multi-valued UID is treated as absent (derived), an overlong LO is cut to 64 characters, a
    mangled Body Part Examined (Type 3 in the results) is left out."""
    base = _parse(sources["cr"].data)
    outcomes = {}
    for keyword, value in HOSTILE_VALUES.items():
        variant = copy.deepcopy(base)
        tag = pydicom.datadict.tag_for_keyword(keyword)
        assert tag is not None
        variant.add(pydicom.DataElement(tag, pydicom.datadict.dictionary_VR(tag), value))
        outcomes[keyword] = run_variant(scorer, sources["cr"], variant, {keyword}, tmp_path)
    _check(outcomes, may_refuse=frozenset())
