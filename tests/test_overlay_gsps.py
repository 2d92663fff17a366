"""Overlay Secondary Capture and Grayscale Softcopy Presentation State, built from a phantom.

Both must pass dciodvfy, agree with the source image's patient and study for dcentvfy, and say
what the scores are: the SC in its pixels (boxes, labels, banner, nothing else changed), the
GSPS as one box polyline and one text per joint in a layer a viewer can switch off.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pydicom
import pytest
from pydicom import Dataset
from pydicom.uid import generate_uid

from dicom_io.annotations import (
    hand_summaries,
    image_summary,
    joint_grades_text,
    not_assessable_summary,
)
from dicom_io.pr import (
    GRAPHIC_LAYER,
    NOT_ASSESSABLE_LAYER,
    build_gsps,
    joint_text,
)
from dicom_io.reading import read_radiograph
from dicom_io.results import (
    EROSION_GRADES,
    JSN_GRADES,
    JointResult,
    ModelInfo,
    ScoringResult,
)
from dicom_io.sc import (
    NOT_ASSESSABLE_COLOUR,
    OVERLAY_LONG_SIDE,
    SERIES_DESCRIPTION,
    SEVERITY_COLOURS,
    OverlayLayout,
    build_overlay_sc,
    overlay_grey,
    overlay_layout,
    overlay_shape,
    render_overlay,
)

Checker = Callable[[Path | str], str]

MODEL = ModelInfo(
    name="rascore-test-cnn", version="9.8.7", device_uid="2.25.31415926535897932384626"
)
GSPS_CLASS = "1.2.840.10008.5.1.4.1.1.11.1"
SC_CLASS = "1.2.840.10008.5.1.4.1.1.7"
PATIENT_STUDY = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyID",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "StudyDescription",
)


def probabilities(grade: int, classes: int) -> tuple[float, ...]:
    """Made-up but valid class probabilities peaking at ``grade``."""
    p = np.full(classes, 0.3 / (classes - 1))
    p[grade] = 0.7
    return tuple(float(v) for v in p)


def result_from_truth(source: Dataset, joints: list[dict[str, Any]]) -> ScoringResult:
    return ScoringResult(
        source_sop_instance_uid=str(source.SOPInstanceUID),
        joints=tuple(
            JointResult(
                label=j["label"],
                box=tuple(int(v) for v in j["box"]),  # type: ignore[arg-type]
                jsn=int(j["jsn"]),
                erosion=int(j["erosion"]),
                jsn_probs=probabilities(int(j["jsn"]), JSN_GRADES),
                erosion_probs=probabilities(int(j["erosion"]), EROSION_GRADES),
            )
            for j in joints
        ),
        model=MODEL,
    )


@dataclass
class Built:
    source: Dataset
    source_path: Path
    result: ScoringResult
    sc_path: Path
    gsps_path: Path

    @property
    def sc(self) -> Dataset:
        return pydicom.dcmread(self.sc_path)

    @property
    def gsps(self) -> Dataset:
        return pydicom.dcmread(self.gsps_path)


def build_and_save(source: Dataset, source_path: Path, result: ScoringResult, out: Path) -> Built:
    out.mkdir(parents=True, exist_ok=True)
    sc = build_overlay_sc(source, result)
    gsps = build_gsps(source, result)
    sc_path, gsps_path = out / "sc.dcm", out / "gsps.dcm"
    sc.save_as(sc_path, enforce_file_format=True)
    gsps.save_as(gsps_path, enforce_file_format=True)
    return Built(source, source_path, result, sc_path, gsps_path)


@pytest.fixture(scope="module")
def truth(phantom_file: Path) -> dict[str, Any]:
    record = json.loads((phantom_file.parent / "truth.json").read_text())["images"][0]
    assert record["joints"], "the phantom should have scored joints"
    return record


@pytest.fixture(scope="module")
def built(
    phantom_file: Path, truth: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Built:
    source = pydicom.dcmread(phantom_file)
    result = result_from_truth(source, truth["joints"])
    return build_and_save(source, phantom_file, result, tmp_path_factory.mktemp("results"))


#: label → reason: the joints the ``built_partly`` result does not grade
NOT_ASSESSABLE = {"R_PIP3": "model unsure", "L_MCP2": "unlike the training images", "R_IP": ""}


def not_assessable(result: ScoringResult, reasons: dict[str, str]) -> ScoringResult:
    """``result`` with the joints named in ``reasons`` not assessable (grades gone)."""
    return dataclasses.replace(
        result,
        joints=tuple(
            dataclasses.replace(
                j, jsn=None, erosion=None, assessable=False, reason=reasons[j.label]
            )
            if j.label in reasons
            else j
            for j in result.joints
        ),
    )


@pytest.fixture(scope="module")
def built_partly(
    phantom_file: Path, truth: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Built:
    source = pydicom.dcmread(phantom_file)
    result = not_assessable(result_from_truth(source, truth["joints"]), NOT_ASSESSABLE)
    return build_and_save(source, phantom_file, result, tmp_path_factory.mktemp("partly"))


@pytest.fixture(scope="module")
def built_empty(phantom_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Built:
    source = pydicom.dcmread(phantom_file)
    result = result_from_truth(source, [])
    return build_and_save(source, phantom_file, result, tmp_path_factory.mktemp("empty"))


def dcentvfy(*paths: Path) -> str:
    exe = shutil.which("dcentvfy") or "/usr/bin/dcentvfy"
    if not Path(exe).exists():
        pytest.fail("dcentvfy is not installed; install the Debian package dicom3tools")
    proc = subprocess.run(
        [exe, *map(str, paths)], capture_output=True, text=True, timeout=120, check=False
    )
    output = proc.stdout + proc.stderr
    errors = [line for line in output.splitlines() if line.startswith(("Error", "Abort"))]
    assert proc.returncode == 0 and not errors, f"dcentvfy (exit {proc.returncode}):\n{output}"
    return output


def is_coloured(rgb: np.ndarray) -> np.ndarray:
    return (rgb[..., 0] != rgb[..., 1]) | (rgb[..., 1] != rgb[..., 2])


# --- validators --------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["built", "built_empty", "built_partly"])
def test_both_objects_pass_dciodvfy_and_dcentvfy(
    which: str,
    request: pytest.FixtureRequest,
    assert_dciodvfy_clean: Checker,
    assert_dcmdump_parses: Checker,
) -> None:
    b: Built = request.getfixturevalue(which)
    for path in (b.sc_path, b.gsps_path):
        assert_dciodvfy_clean(path)
        assert_dcmdump_parses(path)
    dcentvfy(b.source_path, b.sc_path, b.gsps_path)


def test_dcentvfy_catches_a_different_patient(built: Built, tmp_path: Path) -> None:
    """The consistency check is real: a changed patient name fails it."""
    sc = built.sc
    sc.PatientName = "SOMEONE^ELSE"
    bad = tmp_path / "bad.dcm"
    sc.save_as(bad, enforce_file_format=True)
    with pytest.raises(AssertionError, match="PatientName"):
        dcentvfy(built.source_path, bad)


# --- overlay SC ------------------------------------------------------------------------------


def test_sc_is_a_new_series_of_the_source_study(built: Built) -> None:
    sc, source = built.sc, built.source
    assert sc.SOPClassUID == SC_CLASS
    for keyword in PATIENT_STUDY:
        assert sc.get(keyword) == source.get(keyword), keyword
    assert sc.SeriesInstanceUID != source.SeriesInstanceUID
    assert sc.SOPInstanceUID != source.SOPInstanceUID
    assert sc.SeriesNumber == 902
    assert sc.SeriesDescription == SERIES_DESCRIPTION
    assert "NOT FOR DIAGNOSTIC USE" in sc.SeriesDescription
    assert sc.BurnedInAnnotation == "YES"
    assert sc.ConversionType == "WSD"
    assert sc.Modality == "OT"
    assert sc.ManufacturerModelName == MODEL.name
    assert sc.SoftwareVersions == MODEL.version
    assert sc.DeviceUID == MODEL.device_uid
    assert sc.ImageLaterality == source.ImageLaterality
    assert "Laterality" not in sc  # never both: dciodvfy errors
    rows, columns = overlay_shape(source.Rows, source.Columns)
    assert max(rows, columns) == OVERLAY_LONG_SIDE < max(source.Rows, source.Columns)
    # the overlay's own grid: the source's spacing times the shrink
    expected = [float(source.PixelSpacing[0]) * source.Rows / rows]
    expected.append(float(source.PixelSpacing[1]) * source.Columns / columns)
    assert [float(v) for v in sc.PixelSpacing] == pytest.approx(expected, rel=1e-9)
    assert list(sc.PatientOrientation) == list(source.PatientOrientation)
    for seq in (sc.SourceImageSequence, sc.ReferencedImageSequence):
        assert seq[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
        assert seq[0].ReferencedSOPClassUID == source.SOPClassUID
    assert sc.PhotometricInterpretation == "RGB"
    assert (sc.Rows, sc.Columns, sc.SamplesPerPixel) == (rows, columns, 3)


def drawn_mask(shape: tuple[int, int], layout: OverlayLayout) -> np.ndarray:
    """Where the overlay may differ from the plain grey image: box edges, labels, leader
    lines, the banner."""
    mask = np.zeros(shape, np.uint8)
    width = 2 * layout.stroke + 1
    for x0, y0, x1, y1 in layout.boxes:
        cv2.rectangle(mask, (x0, y0), (x1 - 1, y1 - 1), 1, width)
    for leader in layout.leaders:
        if leader is not None:
            cv2.line(mask, leader[:2], leader[2:], 1, width)
    for x0, y0, x1, y1 in (*layout.labels, layout.banner):
        mask[max(0, y0 - 2) : y1 + 2, max(0, x0 - 2) : x1 + 2] = 1
    return mask.astype(bool)


def grey_render(source: Dataset) -> np.ndarray:
    return overlay_grey(read_radiograph(source).pixels)


def test_sc_pixels_change_only_where_the_scores_are_drawn(built: Built) -> None:
    pixels = built.sc.pixel_array
    grey = grey_render(built.source)
    assert pixels.shape == (*grey.shape, 3) and pixels.dtype == np.uint8
    layout = overlay_layout(built.source, built.result)
    allowed = drawn_mask(grey.shape, layout)
    changed = np.any(pixels != grey[:, :, None], axis=2)
    assert not np.any(changed & ~allowed), "pixels changed away from boxes, labels and banner"
    assert changed.mean() > 0.01

    inset = 3 * layout.stroke
    for joint, (x0, y0, x1, y1) in zip(built.result.joints, layout.boxes, strict=True):
        edge = np.concatenate(
            [pixels[y0, x0:x1], pixels[y1 - 1, x0:x1], pixels[y0:y1, x0], pixels[y0:y1, x1 - 1]]
        )
        # Another joint's label may cover part of an edge; most of it shows its colour.
        assert is_coloured(edge).mean() > 0.6, joint.label
        # The joint itself, inside the edges, is left as it was (unless a label covers it).
        inner = (slice(y0 + inset, y1 - inset), slice(x0 + inset, x1 - inset))
        free = ~allowed[inner]
        assert free.any(), joint.label
        assert np.array_equal(pixels[inner][free], np.repeat(grey[inner][free, None], 3, 1))


def test_sc_banner_holds_bright_and_coloured_text(built: Built) -> None:
    pixels = built.sc.pixel_array
    x0, y0, x1, y1 = overlay_layout(built.source, built.result).banner
    banner = pixels[y0:y1, x0:x1].astype(int)
    assert y1 - y0 >= 0.05 * pixels.shape[0]
    white = np.all(banner > 220, axis=2)
    red = (banner[..., 0] > 200) & (banner[..., 1] < 130) & (banner[..., 2] < 130)
    assert white.sum() > 2000  # the totals and legend lines
    assert red.sum() > 2000  # "NOT FOR DIAGNOSTIC USE"
    # The banner backing is dark: most of it is well below the image's bright background.
    assert np.median(banner.max(axis=2)) < 80


def test_render_overlay_matches_the_stored_sc(built: Built) -> None:
    pixels = render_overlay(built.source, built.result)
    assert pixels.shape == (*overlay_shape(built.source.Rows, built.source.Columns), 3)
    assert np.array_equal(pixels, built.sc.pixel_array)


def test_sc_without_joints_changes_only_the_banner(built_empty: Built) -> None:
    pixels = built_empty.sc.pixel_array
    grey = grey_render(built_empty.source)
    x0, y0, x1, y1 = overlay_layout(built_empty.source, built_empty.result).banner
    changed = np.any(pixels != grey[:, :, None], axis=2)
    changed[y0:y1, x0:x1] = False
    assert not changed.any()
    assert np.all(pixels[y0:y1, x0:x1] > 220, axis=2).sum() > 1000


def test_result_for_another_image_is_refused(built: Built) -> None:
    other = ScoringResult("1.2.3.4", built.result.joints, MODEL)
    with pytest.raises(ValueError, match=r"1\.2\.3\.4"):
        build_overlay_sc(built.source, other)
    with pytest.raises(ValueError, match=r"1\.2\.3\.4"):
        build_gsps(built.source, other)


# --- GSPS -----------------------------------------------------------------------------------


def expected_outline(box: tuple[int, int, int, int]) -> list[float]:
    x, y, w, h = box
    return [float(v) for v in (x, y, x + w, y, x + w, y + h, x, y + h, x, y)]


def test_gsps_is_a_new_series_referencing_the_source(built: Built) -> None:
    pr, source = built.gsps, built.source
    assert pr.SOPClassUID == GSPS_CLASS
    assert pr.Modality == "PR"
    for keyword in PATIENT_STUDY:
        assert pr.get(keyword) == source.get(keyword), keyword
    assert pr.SeriesInstanceUID not in (source.SeriesInstanceUID, built.sc.SeriesInstanceUID)
    assert pr.SeriesNumber == 903
    series = pr.ReferencedSeriesSequence[0]
    assert series.SeriesInstanceUID == source.SeriesInstanceUID
    assert series.ReferencedImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert pr.DeviceUID == MODEL.device_uid


def test_gsps_has_one_box_and_one_text_per_joint_in_the_layer(built: Built) -> None:
    pr, joints = built.gsps, built.result.joints
    assert [layer.GraphicLayer for layer in pr.GraphicLayerSequence] == [GRAPHIC_LAYER]
    (annotation,) = pr.GraphicAnnotationSequence
    assert annotation.GraphicLayer == GRAPHIC_LAYER
    ref = annotation.ReferencedImageSequence[0]
    assert ref.ReferencedSOPInstanceUID == built.source.SOPInstanceUID

    graphics = list(annotation.GraphicObjectSequence)
    assert len(graphics) == len(joints)
    for joint, graphic in zip(joints, graphics, strict=True):
        assert graphic.GraphicType == "POLYLINE"
        assert graphic.GraphicAnnotationUnits == "PIXEL"
        assert graphic.NumberOfGraphicPoints == 5
        assert [float(v) for v in graphic.GraphicData] == pytest.approx(expected_outline(joint.box))

    pixel_texts = [
        t for t in annotation.TextObjectSequence if t.get("BoundingBoxAnnotationUnits") == "PIXEL"
    ]
    assert [t.UnformattedTextValue for t in pixel_texts] == [joint_text(j) for j in joints]
    for joint, text in zip(joints, pixel_texts, strict=True):
        assert joint.label in text.UnformattedTextValue
        assert f"JSN {joint.jsn}" in text.UnformattedTextValue
        assert f"ERO {joint.erosion}" in text.UnformattedTextValue
        left, top = text.BoundingBoxTopLeftHandCorner
        right, bottom = text.BoundingBoxBottomRightHandCorner
        assert 0 <= left < right <= built.source.Columns
        assert 0 <= top < bottom <= built.source.Rows
    # Each joint's box and text are one graphic group, named after the joint.
    groups = {g.GraphicGroupID: g.GraphicGroupLabel for g in pr.GraphicGroupSequence}
    assert [groups[g.GraphicGroupID] for g in graphics] == [j.label for j in joints]
    assert [groups[t.GraphicGroupID] for t in pixel_texts] == [j.label for j in joints]

    notes = " ".join(
        t.UnformattedTextValue
        for t in annotation.TextObjectSequence
        if t.get("BoundingBoxAnnotationUnits") == "DISPLAY"
    )
    assert "NOT FOR DIAGNOSTIC USE" in notes
    assert f"JSN {built.result.total_jsn}, erosion {built.result.total_erosion}" in notes
    for side, (jsn, erosion) in built.result.hand_totals().items():
        name = {"R": "Right hand", "L": "Left hand"}[side]
        assert name in notes and f"JSN {jsn}, erosion {erosion}" in notes
    assert f"{MODEL.name} {MODEL.version}" in notes


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, pydicom.multival.MultiValue) else value


def test_gsps_keeps_the_source_display(built: Built) -> None:
    pr, source = built.gsps, built.source
    inverse = source.PhotometricInterpretation == "MONOCHROME1"
    assert pr.PresentationLUTShape == ("INVERSE" if inverse else "IDENTITY")
    voi = pr.SoftcopyVOILUTSequence[0]
    if "WindowCenter" in source:
        assert float(voi.WindowCenter) == pytest.approx(float(_first(source.WindowCenter)))
        assert float(voi.WindowWidth) == pytest.approx(float(_first(source.WindowWidth)))
    else:  # the histogram window that reading uses
        window = read_radiograph(source).window
        assert float(voi.WindowCenter) == pytest.approx(window[0], abs=1e-3)
        assert float(voi.WindowWidth) == pytest.approx(window[1], abs=1e-3)
        assert voi.VOILUTFunction == "LINEAR"
    if "RescaleSlope" in source:
        assert float(pr.RescaleSlope) == float(source.RescaleSlope)
        assert float(pr.RescaleIntercept) == float(source.RescaleIntercept)


def dcmtk_tool(name: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        pytest.fail(f"{name} is not installed; install the Debian package dcmtk")
    return exe


def assert_renders_as_reading(b: Built, tmp_path: Path) -> None:
    """dcmtk checks the presentation state and applies it to the source: bone bright,
    windowed as read_radiograph shows the image (MONOCHROME1, VOI LUT and all)."""
    check = subprocess.run(
        [dcmtk_tool("dcmpschk"), str(b.gsps_path)], capture_output=True, text=True, timeout=120
    )
    problems = [
        line for line in (check.stdout + check.stderr).splitlines() if line[:2] in ("E:", "F:")
    ]
    assert check.returncode == 0 and not problems, check.stdout + check.stderr
    out = tmp_path / "rendered.pgm"
    render = subprocess.run(
        [dcmtk_tool("dcmp2pgm"), "-p", str(b.gsps_path), str(b.source_path), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert render.returncode == 0, render.stdout + render.stderr
    assert "W:" not in render.stdout + render.stderr, render.stdout + render.stderr
    rendered = cv2.imread(str(out), cv2.IMREAD_UNCHANGED).astype(np.float32)
    expected = read_radiograph(b.source).pixels * 255.0
    assert rendered.shape == expected.shape
    assert float(np.abs(rendered - expected).mean()) < 1.0


def test_gsps_renders_as_reading_does(built: Built, tmp_path: Path) -> None:
    assert_renders_as_reading(built, tmp_path)


def test_gsps_without_joints_keeps_the_layer_and_the_note(built_empty: Built) -> None:
    pr = built_empty.gsps
    assert [layer.GraphicLayer for layer in pr.GraphicLayerSequence] == [GRAPHIC_LAYER]
    (annotation,) = pr.GraphicAnnotationSequence
    assert "GraphicObjectSequence" not in annotation
    texts = [t.UnformattedTextValue for t in annotation.TextObjectSequence]
    assert any("NOT FOR DIAGNOSTIC USE" in t for t in texts)
    assert any("No joints" in t for t in texts)
    assert "GraphicGroupSequence" not in pr


# --- other kinds of source -----------------------------------------------------------------


def variant(source: Dataset, kind: str) -> Dataset:
    """The phantom re-labelled as another kind of source (pixels unchanged)."""
    ds = copy.deepcopy(source)
    uid = generate_uid()
    ds.SOPInstanceUID = uid
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    if kind == "mono2-window-left":
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.PresentationLUTShape = "IDENTITY"
        ds.WindowCenter = ["500", "600"]
        ds.WindowWidth = ["700", "900"]
        ds.WindowCenterWidthExplanation = ["HAND", "SOFT"]
        ds.ImageLaterality = "L"
    elif kind == "voi-lut-no-geometry":
        for keyword in ("WindowCenter", "WindowWidth", "ImageLaterality", "PatientOrientation"):
            if keyword in ds:
                del ds[keyword]
        del ds.PixelSpacing  # Imager Pixel Spacing only: not carried into the SC
        item = Dataset()
        item.add_new(0x00283002, "US", [1024, 0, 12])  # LUT Descriptor
        item.add_new(0x00283006, "US", [round(v) for v in np.linspace(0, 4095, 1024)])
        item.LUTExplanation = "RAMP"
        ds.VOILUTSequence = [item]
        ds.Laterality = "R"
    else:
        raise AssertionError(kind)
    return ds


@pytest.mark.parametrize("kind", ["mono2-window-left", "voi-lut-no-geometry"])
def test_other_sources(
    kind: str,
    phantom_file: Path,
    truth: dict[str, Any],
    tmp_path: Path,
    assert_dciodvfy_clean: Checker,
) -> None:
    source = variant(pydicom.dcmread(phantom_file), kind)
    source_path = tmp_path / "source.dcm"
    source.save_as(source_path, enforce_file_format=True)
    result = result_from_truth(source, truth["joints"][:4])
    b = build_and_save(source, source_path, result, tmp_path / "out")
    for path in (b.sc_path, b.gsps_path):
        assert_dciodvfy_clean(path)
    dcentvfy(source_path, b.sc_path, b.gsps_path)
    assert_renders_as_reading(b, tmp_path)
    sc, pr = b.sc, b.gsps
    if kind == "mono2-window-left":
        assert sc.ImageLaterality == "L" and "Laterality" not in sc
        assert pr.Laterality == "L"
        assert pr.PresentationLUTShape == "IDENTITY"
        voi = pr.SoftcopyVOILUTSequence[0]
        # One window in a presentation state (dcmtk refuses more): the first, as reading uses.
        assert float(voi.WindowCenter) == 500.0 and float(voi.WindowWidth) == 700.0
        assert voi.WindowCenterWidthExplanation == "HAND"
    else:
        assert sc.Laterality == "R" and "ImageLaterality" not in sc
        assert "PixelSpacing" not in sc
        assert sc.PatientOrientation == ""
        assert pr.Laterality == "R"
        assert pr.PresentationLUTShape == "INVERSE"
        lut = pr.SoftcopyVOILUTSequence[0].VOILUTSequence[0]
        assert list(lut.LUTDescriptor) == [1024, 0, 16]  # stretched to 16 bits
        data = np.frombuffer(lut.LUTData, "<u2")
        assert (int(data[0]), int(data[-1])) == (0, 65535)
        assert lut.LUTExplanation == "RAMP"


# --- joints that are not assessable ----------------------------------------------------------


def test_texts_say_n_a_and_how_many_joints_the_totals_cover(built_partly: Built) -> None:
    result = built_partly.result
    by_label = {j.label: j for j in result.joints}
    assert joint_grades_text(by_label["R_PIP3"]) == "n/a"
    assert joint_text(by_label["R_PIP3"]) == "R_PIP3 n/a"
    graded = by_label["R_PIP2"]
    assert joint_grades_text(graded) == f"J{graded.jsn} E{graded.erosion}"
    hands = hand_summaries(result)
    assert any(h.startswith("Right hand") and h.endswith("8 of 10 joints scored") for h in hands)
    assert any(h.startswith("Left hand") and h.endswith("9 of 10 joints scored") for h in hands)
    assert image_summary(result).endswith(", 17 of 20 joints scored")
    assert f"JSN {result.total_jsn}," in image_summary(result)
    assert result.total_jsn == sum(j.jsn or 0 for j in result.joints if j.assessable)
    summary = not_assessable_summary(result)
    assert summary.startswith("n/a = not assessable: ")
    for label, reason in NOT_ASSESSABLE.items():
        assert f"{reason or 'no reason given'} ({label})" in summary
    graded_only = dataclasses.replace(
        result, joints=tuple(j for j in result.joints if j.assessable)
    )
    assert not_assessable_summary(graded_only) == ""


def has_swatch(rgb: np.ndarray, colour: tuple[int, int, int], side: int = 7) -> bool:
    """Whether ``rgb`` holds a filled square of ``colour`` (a key swatch, not the odd
    anti-aliased pixel of a text)."""
    mask = np.all(rgb == np.array(colour, np.uint8), axis=2).astype(np.uint8)
    return bool(cv2.erode(mask, np.ones((side, side), np.uint8)).any())


def test_sc_draws_not_assessable_joints_dashed_and_grey(built_partly: Built) -> None:
    pixels = built_partly.sc.pixel_array
    grey = grey_render(built_partly.source)
    layout = overlay_layout(built_partly.source, built_partly.result)
    allowed = drawn_mask(grey.shape, layout)
    changed = np.any(pixels != grey[:, :, None], axis=2)
    assert not np.any(changed & ~allowed), "pixels changed away from boxes, labels and banner"
    na_colour = np.all(pixels == np.array(NOT_ASSESSABLE_COLOUR, np.uint8), axis=2)
    for joint, (x0, y0, x1, _) in zip(built_partly.result.joints, layout.boxes, strict=True):
        top = slice(x0 + 2 * layout.stroke, x1 - 2 * layout.stroke)
        if joint.assessable:
            assert not na_colour[y0, top].any(), joint.label
            continue
        # Dashes: about half of the edge is drawn in light grey, the rest shows the image.
        drawn = na_colour[y0, top].mean()
        assert 0.25 < drawn < 0.75, (joint.label, drawn)
        assert not is_coloured(pixels[y0, top]).mean() > 0.1, joint.label
    # The banner's key has a swatch of the not-assessable grey beside the score colours.
    x0, y0, x1, y1 = layout.banner
    banner = pixels[y0:y1, x0:x1]
    for colour in (NOT_ASSESSABLE_COLOUR, *SEVERITY_COLOURS):
        assert has_swatch(banner, colour), colour
    assert np.array_equal(render_overlay(built_partly.source, built_partly.result), pixels)


def test_sc_of_graded_joints_has_no_n_a_key(built: Built) -> None:
    x0, y0, x1, y1 = overlay_layout(built.source, built.result).banner
    banner = built.sc.pixel_array[y0:y1, x0:x1]
    assert has_swatch(banner, SEVERITY_COLOURS[0])
    assert not has_swatch(banner, NOT_ASSESSABLE_COLOUR)


def test_gsps_puts_not_assessable_joints_in_a_grey_dashed_layer(
    built_partly: Built, tmp_path: Path
) -> None:
    pr, result = built_partly.gsps, built_partly.result
    assert [layer.GraphicLayer for layer in pr.GraphicLayerSequence] == [
        GRAPHIC_LAYER,
        NOT_ASSESSABLE_LAYER,
    ]
    scored, na = pr.GraphicAnnotationSequence
    assert (scored.GraphicLayer, na.GraphicLayer) == (GRAPHIC_LAYER, NOT_ASSESSABLE_LAYER)
    graded = [j for j in result.joints if j.assessable]
    unscored = [j for j in result.joints if not j.assessable]
    assert len(scored.GraphicObjectSequence) == len(graded) == 17
    assert "LineStyleSequence" not in scored.GraphicObjectSequence[0]
    assert len(na.GraphicObjectSequence) == len(unscored) == 3
    for joint, graphic in zip(unscored, na.GraphicObjectSequence, strict=True):
        assert [float(v) for v in graphic.GraphicData] == pytest.approx(expected_outline(joint.box))
        assert graphic.LineStyleSequence[0].LineDashingStyle == "DASHED"
    assert [t.UnformattedTextValue for t in na.TextObjectSequence] == [
        f"{j.label} n/a" for j in unscored
    ]
    pixel_texts = [
        t.UnformattedTextValue
        for t in scored.TextObjectSequence
        if t.get("BoundingBoxAnnotationUnits") == "PIXEL"
    ]
    assert pixel_texts == [joint_text(j) for j in graded]
    assert not any("n/a" in t or "None" in t for t in pixel_texts)
    notes = " ".join(
        t.UnformattedTextValue
        for t in scored.TextObjectSequence
        if t.get("BoundingBoxAnnotationUnits") == "DISPLAY"
    )
    assert "NOT FOR DIAGNOSTIC USE" in notes
    assert "17 of 20 joints scored" in notes and "8 of 10 joints scored" in notes
    assert "model unsure (R_PIP3)" in notes and "unlike the training images (L_MCP2)" in notes
    assert "left out of the totals" in notes
    assert_renders_as_reading(built_partly, tmp_path)


def test_a_scanned_film_without_orientation_or_identity(
    phantom_file: Path, truth: dict[str, Any], tmp_path: Path, assert_dciodvfy_clean: Checker
) -> None:
    """A source without Patient Orientation, birth date or accession number still gets its SC
    and GSPS; what it lacks stays unknown (empty), never invented."""
    source = pydicom.dcmread(phantom_file)
    for keyword in ("PatientOrientation", "PatientBirthDate", "AccessionNumber"):
        if keyword in source:
            delattr(source, keyword)
    b = build_and_save(source, phantom_file, result_from_truth(source, truth["joints"]), tmp_path)
    for path in (b.sc_path, b.gsps_path):
        assert_dciodvfy_clean(path)
        made = pydicom.dcmread(path)
        assert made.PatientBirthDate == "" and made.AccessionNumber == ""
