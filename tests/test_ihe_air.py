"""IHE AI Results (AIR): what the profile asks of an AI result, checked in both reports.

A phantom is scored by the committed default model; its per-image SR (``build_sr``) and a
study SR of the same image (``build_study_sr``, with a comparison and a predecessor) are
written, read back and walked. The requirements (IHE RAD AIR; DESIGN.md "Dependency facts";
PS3.16 TID 1500, 1410, 1501, 4019):

* Comprehensive 3D SR, TID 1500 *Imaging Measurement Report* as root, in the source's study,
  with the Language, the Observer Context of a DEVICE observer (type, UID, name, manufacturer,
  model name) and Procedure Reported;
* each measurement group identifies the algorithm (TID 4019: name, version, manufacturer) and
  is tracked (Tracking Identifier and Tracking Unique Identifier, both unique);
* the Contributing Equipment Sequence names the algorithm (manufacturer, model name, software
  versions, Device UID as the observer's, purpose of reference *Processing Equipment*);
* every finding references the image it was made on: a region's SCOORD is SELECTED FROM the
  source image, a group of totals names its Source of Measurement; every reference is in the
  evidence and the Image Library;
* VerificationFlag UNVERIFIED (no verifying observer), CompletionFlag COMPLETE;
* every coding scheme used is a standard one or declared in the Coding Scheme Identification
  Sequence;
* dcmtk's ``dsr2html`` renders it and ``dsrdump`` reads it, without an error or a warning.

The per-image rendering, with its creation times pinned, goes to ``docs/sr-dsr2html.html``
and, seen in headless Chromium, to ``docs/sr-dsr2html.png``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import subprocess
from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest
from pydicom import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import Comprehensive3DSRStorage
from servers import require
from sr_walk import (
    SOURCE,
    STANDARD_SCHEMES,
    child,
    children,
    code_items,
    evidence,
    image_refs,
    key,
    measurement_groups,
    name,
    template,
    value_code,
    walk,
)

from dicom_io import codes as rascore_codes
from dicom_io.results import ModelInfo, ScoringResult
from dicom_io.sr import build_sr
from dicom_io.sr import study_template as st
from dicom_io.sr.study import build_study_sr
from dicom_io.study_results import Comparison, JointChange, ObjectRef, StudyResult

ROOT = "1.2.826.0.1.3680043.10.543.16"  # test UIDs only
DOCS = Path(__file__).resolve().parents[1] / "docs"
#: dcmsr warns of any Specific Character Set but ASCII and Latin-1, whatever the values are
#: (dcmtk 3.6.7, DSRDocument::read: "the VR checker in 'dcmdata' only supports ASCII and
#: Latin-1"); highdicom always declares ISO_IR 192. The same report declared Latin-1 must
#: then render with no message at all (test_dsr2html_renders_without_warnings).
UTF8_NOTICE = "W: The VR checker does not support this Specific Character Set: ISO_IR 192"
#: the times that differ between two builds, pinned for the committed rendering
PINNED = {
    "InstanceCreationDate": "20260101",
    "InstanceCreationTime": "120000",
    "ContentDate": "20260101",
    "ContentTime": "120000",
    "SeriesDate": "20260101",
    "SeriesTime": "120000",
}


@dataclasses.dataclass(frozen=True)
class Report:
    kind: str  #: "image", "study" or "no joints"
    path: Path
    sr: Dataset  #: read back from ``path``
    model: ModelInfo
    source: Dataset  #: the radiograph's header
    result: ScoringResult | None = None  #: the per-image report's


@pytest.fixture(scope="module")
def scored(phantom_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Report:
    """The phantom scored by the default model, and its per-image SR."""
    from scoring.pipeline import Scorer
    from worker.scoring_io import score_file, scoring_result

    scorer = Scorer.load()
    result = scoring_result(scorer, score_file(scorer, phantom_file))
    assert result.joints and result.not_assessable, "want graded and not assessable joints"
    source = pydicom.dcmread(phantom_file, stop_before_pixels=True)
    sr = build_sr(source, result, series_instance_uid=f"{ROOT}.1", sop_instance_uid=f"{ROOT}.1.1")
    path = tmp_path_factory.mktemp("air") / "image-sr.dcm"
    sr.save_as(path, enforce_file_format=True)
    return Report("image", path, pydicom.dcmread(path), result.model, source, result)


@pytest.fixture(scope="module")
def study(scored: Report, tmp_path_factory: pytest.TempPathFactory) -> Report:
    """The study SR of the same image: version 2, compared with an earlier study."""
    from worker.jobs.study_content import ScoredImage, hands

    result = scored.result
    assert result is not None
    source = scored.source
    ref = ObjectRef(
        str(source.SOPClassUID),
        str(source.SOPInstanceUID),
        str(source.SeriesInstanceUID),
        str(source.StudyInstanceUID),
    )
    joints = {j.label: (j.jsn, j.erosion, j.reason) for j in result.joints}
    image = ScoredImage(ref, dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC), joints)
    graded = [j.label for j in result.joints if j.assessable]
    prior = ObjectRef(str(Comprehensive3DSRStorage), f"{ROOT}.0.9", f"{ROOT}.0.8", f"{ROOT}.0")
    comparison = Comparison(
        "previous",
        f"{ROOT}.0",
        dt.date(2025, 1, 5),
        prior,
        365 / 365.25,
        tuple(JointChange(label, 1, k % 2) for k, label in enumerate(graded[:4])),
        tuple(j.label for j in result.not_assessable),
    )
    study_result = StudyResult(
        study_instance_uid=str(source.StudyInstanceUID),
        study_date=dt.date(2026, 1, 5),
        version=2,
        model=result.model,
        images=(ref,),
        hands=hands([image]),
        comparisons=(comparison,),
        replaces=ObjectRef(
            str(Comprehensive3DSRStorage), f"{ROOT}.2.9", f"{ROOT}.2", ref.study_instance_uid
        ),
    )
    sr = build_study_sr(
        [source], study_result, series_instance_uid=f"{ROOT}.3", sop_instance_uid=f"{ROOT}.3.1"
    )
    path = tmp_path_factory.mktemp("air") / "study-sr.dcm"
    sr.save_as(path, enforce_file_format=True)
    return Report("study", path, pydicom.dcmread(path), result.model, source)


@pytest.fixture(scope="module")
def no_joints(scored: Report, tmp_path_factory: pytest.TempPathFactory) -> Report:
    """The per-image SR of an image where the model found no hand: no findings, still an AI
    result."""
    assert scored.result is not None
    result = dataclasses.replace(scored.result, joints=())
    sr = build_sr(scored.source, result, sop_instance_uid=f"{ROOT}.4.1")
    path = tmp_path_factory.mktemp("air") / "no-joints-sr.dcm"
    sr.save_as(path, enforce_file_format=True)
    return Report("no joints", path, pydicom.dcmread(path), result.model, scored.source, result)


@pytest.fixture(params=["scored", "study", "no_joints"])
def report(request: pytest.FixtureRequest) -> Report:
    """Each report in turn: the image's, the study's, and an image's without findings."""
    return request.getfixturevalue(request.param)


def _text(item: Dataset, concept: Code, relationship: str) -> str:
    return str(child(item, concept, relationship).TextValue)


# -- the document -----------------------------------------------------------------------------


def test_root_is_an_imaging_measurement_report_in_the_sources_study(
    report: Report, assert_dciodvfy_clean: Callable[[Path], str]
) -> None:
    assert_dciodvfy_clean(report.path)
    sr, source = report.sr, report.source
    assert sr.SOPClassUID == Comprehensive3DSRStorage and sr.Modality == "SR"
    assert (sr.StudyInstanceUID, sr.PatientID) == (source.StudyInstanceUID, source.PatientID)
    assert sr.SeriesInstanceUID != source.SeriesInstanceUID  # a series of its own
    assert sr.ValueType == "CONTAINER" and sr.ContinuityOfContent == "CONTINUOUS"
    assert key(sr.ConceptNameCodeSequence[0]) == key(codes.DCM.ImagingMeasurementReport)
    (tid,) = sr.ContentTemplateSequence
    assert (tid.MappingResource, tid.TemplateIdentifier) == ("DCMR", "1500")

    language = child(sr, codes.DCM.LanguageOfContentItemAndDescendants, "HAS CONCEPT MOD")
    assert value_code(language)[1] == "RFC5646"
    procedure = child(sr, codes.DCM.ProcedureReported, "HAS CONCEPT MOD")
    assert value_code(procedure)[1] == "LN"  # an imaging procedure (DESIGN.md)
    assert bool(measurement_groups(sr)) == (report.kind != "no joints")


def test_the_observer_is_the_algorithm_as_a_device(report: Report) -> None:
    sr, model = report.sr, report.model
    context = "HAS OBS CONTEXT"
    observer = child(sr, codes.DCM.ObserverType, context)
    assert value_code(observer) == key(codes.DCM.Device)
    assert model.device_uid == child(sr, codes.DCM.DeviceObserverUID, context).UID
    assert _text(sr, codes.DCM.DeviceObserverName, context) == model.name
    assert _text(sr, codes.DCM.DeviceObserverManufacturer, context) == model.manufacturer
    assert _text(sr, codes.DCM.DeviceObserverModelName, context) == model.name
    # the observer context comes before any content (PS3.3 C.17.3 "Observation Context")
    relationships = [i.RelationshipType for i in sr.ContentSequence]
    last_context = max(k for k, r in enumerate(relationships) if r == context)
    assert "CONTAINS" not in relationships[:last_context]


def test_every_group_identifies_the_algorithm_and_is_tracked(report: Report) -> None:
    model = report.model
    groups = measurement_groups(report.sr)
    identifiers, uids = [], []
    for group in groups:
        assert template(group) in ("1410", "1501"), template(group)
        modifier = "HAS CONCEPT MOD"
        assert _text(group, codes.DCM.AlgorithmName, modifier) == model.name
        assert _text(group, codes.DCM.AlgorithmVersion, modifier) == model.version
        assert _text(group, codes.DCM.AlgorithmManufacturer, modifier) == model.manufacturer
        identifiers.append(_text(group, codes.DCM.TrackingIdentifier, "HAS OBS CONTEXT"))
        uids.append(str(child(group, codes.DCM.TrackingUniqueIdentifier, "HAS OBS CONTEXT").UID))
    assert len(set(identifiers)) == len(identifiers) == len(groups)
    assert len(set(uids)) == len(uids) and all(pydicom.uid.UID(u).is_valid for u in uids)


def test_contributing_equipment_names_the_algorithm(report: Report) -> None:
    sr, model = report.sr, report.model
    algorithm = [e for e in sr.ContributingEquipmentSequence if "DeviceUID" in e]
    assert len(algorithm) == 1, "one item with a Device UID: the algorithm"
    (item,) = algorithm
    assert item.DeviceUID == model.device_uid
    assert (item.Manufacturer, item.ManufacturerModelName) == (model.manufacturer, model.name)
    assert item.SoftwareVersions == model.version
    (purpose,) = item.PurposeOfReferenceCodeSequence
    assert key(purpose) == key(codes.DCM.ProcessingEquipment)
    assert "NOT FOR DIAGNOSTIC USE" in item.ContributionDescription
    # the device of the content tree is this equipment
    observer = child(sr, codes.DCM.DeviceObserverUID, "HAS OBS CONTEXT")
    assert item.DeviceUID == observer.UID


def test_the_result_is_unverified_preliminary_and_complete(report: Report) -> None:
    sr = report.sr
    assert sr.VerificationFlag == "UNVERIFIED" and "VerifyingObserverSequence" not in sr
    assert sr.CompletionFlag == "COMPLETE" and sr.PreliminaryFlag == "PRELIMINARY"


# -- image references -------------------------------------------------------------------------


def _image_library(sr: Dataset) -> set[tuple[str, str]]:
    library = child(sr, codes.DCM.ImageLibrary)
    return {r for item in walk(library.ContentSequence) for r in image_refs(item)}


def test_every_finding_of_the_image_report_is_on_the_source_image(scored: Report) -> None:
    sr, source = scored.sr, scored.source
    radiograph = (str(source.SOPClassUID), str(source.SOPInstanceUID))
    assert evidence(sr.CurrentRequestedProcedureEvidenceSequence) == {radiograph}
    assert _image_library(sr) == {radiograph}
    regions = 0
    for group in measurement_groups(sr):
        if template(group) == "1410":  # a joint: its box, drawn on the radiograph
            region = child(group, codes.DCM.ImageRegion, "CONTAINS")
            assert region.ValueType == "SCOORD" and region.GraphicType == "POLYLINE"
            selected = child(region, SOURCE, "SELECTED FROM")
            assert selected.ValueType == "IMAGE" and image_refs(selected) == [radiograph]
            regions += 1
        else:  # totals: measured on the radiograph
            measured = child(group, codes.DCM.SourceOfMeasurement, "CONTAINS")
            assert measured.ValueType == "IMAGE" and image_refs(measured) == [radiograph]
    assert scored.result is not None and regions == len(scored.result.joints)


def test_every_finding_of_the_study_report_names_its_source(study: Report) -> None:
    """Joints, hands and the study name their images; a comparison names the earlier report
    it compares with (a COMPOSITE in the Pertinent Other Evidence), as it is made from two
    reports rather than from an image."""
    sr, source = study.sr, study.source
    radiograph = (str(source.SOPClassUID), str(source.SOPInstanceUID))
    assert evidence(sr.CurrentRequestedProcedureEvidenceSequence) == {radiograph}
    assert _image_library(sr) == {radiograph}
    others = evidence(sr.PertinentOtherEvidenceSequence)
    comparisons = 0
    for group in measurement_groups(sr):
        identifier = _text(group, codes.DCM.TrackingIdentifier, "HAS OBS CONTEXT")
        if identifier.startswith("progression since"):
            (prior,) = children(group, st.PRIOR_REPORT, "CONTAINS")
            assert prior.ValueType == "COMPOSITE" and set(image_refs(prior)) <= others
            comparisons += 1
            continue
        measured = children(group, codes.DCM.SourceOfMeasurement, "CONTAINS")
        assert measured, f"{identifier}: no Source of Measurement"
        assert all(image_refs(m) == [radiograph] for m in measured)
    assert comparisons == 1


# -- coding schemes ---------------------------------------------------------------------------


def test_every_coding_scheme_is_standard_or_declared(report: Report) -> None:
    sr = report.sr
    declared = {str(s.CodingSchemeDesignator) for s in sr.CodingSchemeIdentificationSequence}
    for scheme in sr.CodingSchemeIdentificationSequence:
        assert scheme.CodingSchemeName and scheme.CodingSchemeVersion
        assert scheme.CodingSchemeResponsibleOrganization
    used: set[str] = set()
    for item in code_items(sr):
        assert "CodingSchemeDesignator" in item, item
        assert str(item.get("CodeMeaning", "")).strip(), f"code {key(item)} has no meaning"
        used.add(str(item.CodingSchemeDesignator))
    unknown = used - STANDARD_SCHEMES - declared
    assert not unknown, f"undeclared coding schemes: {sorted(unknown)}"
    assert rascore_codes.SCHEME_DESIGNATOR in declared
    # a report without findings declares the scheme all the same (allowed, and harmless)
    assert (rascore_codes.SCHEME_DESIGNATOR in used) == (report.kind != "no joints")
    # the content tree's own concept names are all coded (walked item by item too)
    for item in walk(sr.ContentSequence):
        assert name(item)[1] in STANDARD_SCHEMES | declared


# -- dcmtk reads and renders it ---------------------------------------------------------------


def _dcmtk(tool: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """``tool`` with its strictest reading: a Part 10 file only, no relaxed error handling
    (none of the -E options), warnings logged; dsr2html also checks every string value
    against the character set."""
    exe = require(f"/usr/bin/{tool}", "dcmtk")
    strict = ["+fo", "-ll", "warn"] + (["--charset-check-all"] if tool == "dsr2html" else [])
    return subprocess.run(
        [exe, *strict, *map(str, args)], capture_output=True, text=True, timeout=120
    )


def _latin1_copy(path: Path, out: Path) -> Path:
    """The same report declaring Latin-1; only when every text value is ASCII, so that no
    value changes."""
    ds = pydicom.dcmread(path)
    texts = ("AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC")
    for element in ds.iterall():
        if element.VR in (*texts, "UI", "UR", "UT") and element.value is not None:
            values = element.value if element.VM > 1 else [element.value]
            assert all(str(v).isascii() for v in values), element
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.save_as(out, enforce_file_format=True)
    return out


def test_dsr2html_renders_without_warnings(report: Report, tmp_path: Path) -> None:
    html = tmp_path / "sr.html"
    done = _dcmtk("dsr2html", "+Rd", report.path, html)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr.strip() in ("", UTF8_NOTICE), done.stderr
    page = html.read_text(encoding="utf-8")
    for text in ("Imaging Measurement Report", "UNVERIFIED", report.model.name):
        assert text in page, text
    if report.kind != "no joints":  # the default model declined some joints
        assert rascore_codes.NOT_ASSESSABLE.meaning in page

    latin1 = _latin1_copy(report.path, tmp_path / "latin1.dcm")
    done = _dcmtk("dsr2html", "+Rd", latin1, tmp_path / "latin1.html")
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_dsrdump_reads_without_warnings(report: Report, tmp_path: Path) -> None:
    """dsrdump reads the whole tree: every code valid, the templates named."""
    done = _dcmtk("dsrdump", "+Pt", "+Pc", "+Pu", report.path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() in ("", UTF8_NOTICE), done.stderr
    assert "Verification Flag   : UNVERIFIED" in done.stdout
    assert "invalid code" not in done.stdout
    assert '(126000,DCM,"Imaging Measurement Report")=CONTINUOUS>  # TID 1500 (DCMR)' in (
        done.stdout
    )
    groups = done.stdout.count("# TID 1410 (DCMR)") + done.stdout.count("# TID 1501 (DCMR)")
    assert groups == len(measurement_groups(report.sr))
    done = _dcmtk("dsrdump", _latin1_copy(report.path, tmp_path / "latin1.dcm"))
    assert (done.returncode, done.stderr) == (0, "")


def render_for_docs(path: Path, html: Path) -> None:
    """The per-image report as dsr2html renders it, with its creation times pinned, so that
    the committed page changes only when the report does."""
    ds = pydicom.dcmread(path)
    for keyword, value in PINNED.items():
        setattr(ds, keyword, value)
    for equipment in ds.ContributingEquipmentSequence:
        if "ContributionDateTime" in equipment:
            equipment.ContributionDateTime = "20260101120000"
    pinned = html.with_suffix(".dcm")
    ds.save_as(pinned, enforce_file_format=True)
    done = _dcmtk("dsr2html", "+Hd", pinned, html)
    pinned.unlink()
    assert done.returncode == 0 and done.stderr.strip() in ("", UTF8_NOTICE), done.stderr


def test_the_rendering_in_docs_reads_in_headless_chromium(scored: Report) -> None:
    """docs/sr-dsr2html.html is this phantom's report; Chromium shows its flags, a joint and
    the algorithm; the screenshot goes to docs/sr-dsr2html.png."""
    chromium = require("/usr/bin/chromium", "chromium")
    from playwright.sync_api import sync_playwright

    html = DOCS / "sr-dsr2html.html"
    render_for_docs(scored.path, html)
    assert "PHANTOM" in html.read_text(encoding="utf-8")  # no patient's data in docs/
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )  # fmt: skip
        page = browser.new_page(viewport={"width": 1100, "height": 1400})
        page.goto(html.as_uri())
        text = page.inner_text("body")
        assert scored.result is not None
        first_joint = scored.result.joints[0].label
        for shown in ("UNVERIFIED", "Imaging Measurement Report", "Algorithm Name", first_joint):
            assert shown in text, shown
        assert scored.model.version in text
        page.screenshot(path=str(DOCS / "sr-dsr2html.png"))
        browser.close()
