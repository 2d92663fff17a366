"""The Grayscale Softcopy Presentation State: the scores as switchable annotations.

Where the overlay Secondary Capture burns the scores into a copy of the image, the presentation
state draws them over the original: each joint's box as a closed POLYLINE and its label with
the JSN and erosion grades as text, in one graphic layer (``RASCORE``) that a viewer can switch
on and off, with a note that the scores are not for diagnostic use and the totals. A joint the
model will not grade is drawn in a layer of its own (``RASCORE_NA``, grey, dashed lines) with
"n/a" as its text, and the note names it with its reason and says how many joints the totals
cover. It carries
the source's Modality LUT, VOI (window or VOI LUT; a histogram window when the source has none,
as :mod:`dicom_io.reading` does) and a Presentation LUT Shape that keeps bone bright for
MONOCHROME1, so the image looks as it was meant to whether or not a viewer applies the state.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
from highdicom import PresentationLUTTransformation, VOILUTFunctionValues
from highdicom.color import CIELabColor
from highdicom.content import VOILUT
from highdicom.pr import (
    AnnotationUnitsValues,
    GraphicAnnotation,
    GraphicGroup,
    GraphicLayer,
    GraphicObject,
    GraphicTypeValues,
    GrayscaleSoftcopyPresentationState,
    SoftcopyVOILUTTransformation,
    TextJustificationValues,
    TextObject,
)
from pydicom import Dataset
from pydicom.pixels import apply_voi_lut
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import DSfloat

from dicom_io.annotations import (
    NO_JOINTS_TEXT,
    NOT_ASSESSABLE_TEXT,
    hand_summaries,
    image_summary,
    label_is_apart,
    not_assessable_summary,
    place_labels,
)
from dicom_io.reading import read_radiograph
from dicom_io.results import JointResult, ScoringResult, building
from dicom_io.source_header import (
    body_part,
    result_header,
    series_laterality_applies,
    values,
)

__all__ = [
    "CONTENT_LABEL",
    "GRAPHIC_LAYER",
    "NOT_ASSESSABLE_LAYER",
    "SERIES_DESCRIPTION",
    "box_polyline",
    "build_gsps",
    "joint_text",
]

GRAPHIC_LAYER = "RASCORE"
#: the joints found but not graded, apart so that they never pass for scored ones
NOT_ASSESSABLE_LAYER = "RASCORE_NA"
CONTENT_LABEL = "RASCORE_SCORES"
SERIES_DESCRIPTION = "RA joint scores annotations - NOT FOR DIAGNOSTIC USE"

#: Joint text height as a fraction of the image's shorter side (the overlay's label size).
_TEXT_HEIGHT = 0.016
#: The notes take the top of the displayed area, down to this fraction of its height.
_NOTES_BOTTOM = 0.12

_LAYER_COLOUR = CIELabColor.from_rgb(255, 225, 0)  # yellow: visible on bone and on black
_NA_LAYER_COLOUR = CIELabColor.from_rgb(200, 200, 200)  # light grey, as the overlay's n/a


def box_polyline(box: Sequence[int], rows: int, columns: int) -> np.ndarray:
    """A closed POLYLINE (5 points, first = last) around ``box`` in PIXEL annotation units.

    ``box`` is (x, y, width, height) of pixels, so the outline runs along the outer edges of
    those pixels: PIXEL units put 0.0 at the top left corner of the top left pixel and
    (Columns, Rows) at the bottom right corner of the last one (PS3.3 C.10.5.1.2). The box is
    clipped to the image.
    """
    x, y, w, h = (float(v) for v in box)
    x0, y0 = min(max(x, 0.0), float(columns)), min(max(y, 0.0), float(rows))
    x1, y1 = min(max(x + w, 0.0), float(columns)), min(max(y + h, 0.0), float(rows))
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]], dtype=np.float64)


def joint_text(joint: JointResult) -> str:
    """The text shown beside a joint's box, e.g. ``"R_PIP3 JSN 2 ERO 1"``, or
    ``"R_PIP3 n/a"`` for a joint that is not assessable (the note gives the reason)."""
    if not joint.assessable:
        return f"{joint.label} {NOT_ASSESSABLE_TEXT}"
    return f"{joint.label} JSN {joint.jsn} ERO {joint.erosion}"


def _dashed(graphic: GraphicObject) -> GraphicObject:
    """The outline drawn dashed (Line Style Sequence, PS3.3 C.10.5), for viewers that know it;
    the layer's grey tells the others."""
    grey = [int(v) for v in _NA_LAYER_COLOUR.value]
    style = Dataset()
    style.PatternOnColorCIELabValue = grey
    style.PatternOnOpacity = 1.0
    style.LineThickness = 2.0  # display pixels
    style.LineDashingStyle = "DASHED"
    style.LinePattern = 0xFF00FF00  # 8 on, 8 off
    style.ShadowStyle = "OFF"
    style.ShadowOffsetX = 0.0
    style.ShadowOffsetY = 0.0
    style.ShadowColorCIELabValue = [int(v) for v in CIELabColor.from_rgb(0, 0, 0).value]
    style.ShadowOpacity = 0.0
    graphic.LineStyleSequence = [style]
    return graphic


#: per layer: (graphic objects, text objects)
_Annotations = dict[str, tuple[list[GraphicObject], list[TextObject]]]


def _joint_annotations(
    result: ScoringResult, rows: int, columns: int
) -> tuple[_Annotations, list[GraphicGroup]]:
    annotations: _Annotations = {GRAPHIC_LAYER: ([], []), NOT_ASSESSABLE_LAYER: ([], [])}
    groups: list[GraphicGroup] = []
    outlines = [box_polyline(joint.box, rows, columns) for joint in result.joints]
    strings = [joint_text(joint) for joint in result.joints]
    # Text boxes sized for the overlay's label size, placed as the overlay places its labels:
    # beside each joint box, clear of the other boxes, labels and the notes where possible.
    height = max(12, round(_TEXT_HEIGHT * min(rows, columns)))
    sizes = [(min(columns, round(0.6 * height * len(t))), height) for t in strings]
    rects = [
        (
            int(o[0, 0]),
            int(o[0, 1]),
            max(int(np.ceil(o[2, 0])), int(o[0, 0]) + 1),
            max(int(np.ceil(o[2, 1])), int(o[0, 1]) + 1),
        )
        for o in outlines
    ]
    notes_area = (0, 0, columns, int(np.ceil(_NOTES_BOTTOM * rows)))
    gap = max(2, height // 4)
    places = place_labels(rects, sizes, rows=rows, columns=columns, gap=gap, avoid=[notes_area])
    for number, (joint, outline, text, place) in enumerate(
        zip(result.joints, outlines, strings, places, strict=True), start=1
    ):
        group = GraphicGroup(
            number, joint.label, description=f"{joint.label}: box and scores of the joint"
        )
        groups.append(group)
        graphics, texts = annotations[GRAPHIC_LAYER if joint.assessable else NOT_ASSESSABLE_LAYER]
        graphic = GraphicObject(
            graphic_type=GraphicTypeValues.POLYLINE,
            graphic_data=outline,
            units=AnnotationUnitsValues.PIXEL,
            graphic_group=group,
        )
        graphics.append(graphic if joint.assessable else _dashed(graphic))
        # A text set apart from its box points at it (the viewer draws the line).
        box = rects[number - 1]
        apart = label_is_apart(place, box, gap)
        cx, cy = (place[0] + place[2]) / 2.0, (place[1] + place[3]) / 2.0
        anchor = (min(max(cx, box[0]), box[2]), min(max(cy, box[1]), box[3]))
        texts.append(
            TextObject(
                text_value=text,
                units=AnnotationUnitsValues.PIXEL,
                anchor_point=(float(anchor[0]), float(anchor[1])),
                anchor_point_visible=apart,
                bounding_box=(float(place[0]), float(place[1]), float(place[2]), float(place[3])),
                text_justification=TextJustificationValues.CENTER,
                graphic_group=group,
            )
        )
    return annotations, groups


def _notes(result: ScoringResult) -> list[TextObject]:
    """The not-for-diagnostic-use note, the model and the totals, at the top of the display."""
    model = f"{result.model.name} {result.model.version}"
    lines = [
        f"NOT FOR DIAGNOSTIC USE - algorithm {model}, unverified",
        "   |   ".join([*hand_summaries(result), image_summary(result)])
        if result.joints
        else NO_JOINTS_TEXT,
        "Sharp/van der Heijde grades per joint: JSN = joint space narrowing (0-4), "
        "ERO = erosion (0-5)",
    ]
    unscored = not_assessable_summary(result)
    if unscored:
        lines.insert(2, f"{unscored} - left out of the totals")
    top, step = 0.01, (_NOTES_BOTTOM - 0.01) / len(lines)
    notes = []
    for i, line in enumerate(lines):
        notes.append(
            TextObject(
                text_value=line,
                units=AnnotationUnitsValues.DISPLAY,
                bounding_box=(0.01, top + i * step, 0.99, top + (i + 1) * step - 0.005),
                text_justification=TextJustificationValues.LEFT,
            )
        )
    return notes


def _voi_lut(source: Dataset) -> VOILUT:
    """The source's first VOI LUT, its output stretched to 16 bits.

    A presentation state's VOI LUT entries must be 8 or 16 bits (dciodvfy), and the output
    range of a VOI LUT is set by that bit depth, so a 12-bit LUT is rescaled, not copied.
    """
    item = source.VOILUTSequence[0]
    entries, first = int(item.LUTDescriptor[0]) or 65536, int(item.LUTDescriptor[1])
    lut = np.asarray(
        apply_voi_lut(np.arange(first, first + entries), source, index=0, prefer_lut=True),
        dtype=np.float64,
    )
    # Output 0 .. 2**bits - 1 (PS3.3 C.11.2.1.1), or the data's maximum where a descriptor
    # understates it, as reading takes it.
    top = max(float(2 ** int(item.LUTDescriptor[2]) - 1), float(lut.max()), 1.0)
    scaled = np.clip(lut / top, 0.0, 1.0)
    explanation = item.get("LUTExplanation")
    return VOILUT(
        first_mapped_value=first,
        lut_data=np.rint(scaled * 65535.0).astype(np.uint16),
        lut_explanation=str(explanation) if explanation else None,
    )


def _first_window(source: Dataset) -> SoftcopyVOILUTTransformation | None:
    """The source's first window (the one reading applies), if it has a usable one.

    A presentation state holds one window (dcmtk refuses more), not the image's list.
    """
    centres, widths = values(source.get("WindowCenter")), values(source.get("WindowWidth"))
    if not centres or not widths:
        return None
    try:
        centre, width = float(centres[0]), float(widths[0])
    except (TypeError, ValueError):
        return None
    function = str(source.get("VOILUTFunction", "") or "").strip().upper()
    if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
        function = "LINEAR"
    if not (np.isfinite(centre) and np.isfinite(width)):
        return None
    if width < 1 if function == "LINEAR" else width <= 0:  # PS3.3 C.11.2.1.2
        return None
    explanations = [str(v) for v in values(source.get("WindowCenterWidthExplanation"))]
    # Lists, not scalars: highdicom 0.28 stores a str explanation character by character.
    return SoftcopyVOILUTTransformation(
        window_center=[centre],
        window_width=[width],
        # LO holds 64 characters
        window_explanation=[explanations[0][:64]] if explanations and explanations[0] else None,
        voi_lut_function=VOILUTFunctionValues(function),
    )


def _voi(
    source: Dataset, scoring_window: tuple[float, float, str] | None
) -> SoftcopyVOILUTTransformation:
    """The VOI that :mod:`dicom_io.reading` applies: the source's first window, else its
    first VOI LUT, else the window reading made from the image's histogram when it was
    scored (``scoring_window``: centre, width, explanation), else that window made again by
    decoding the source."""
    window = _first_window(source)
    if window is not None:
        return window
    if "VOILUTSequence" in source and len(source.VOILUTSequence) > 0:
        return SoftcopyVOILUTTransformation(voi_luts=[_voi_lut(source)])
    # No VOI in the file: the window reading made from the histogram, so that the viewer
    # shows what the scorer saw.
    if scoring_window is None:
        image = read_radiograph(source)
        scoring_window = (*image.window, image.window_explanation)
    centre, width = float(scoring_window[0]), float(scoring_window[1])
    # LO holds 64 characters: the explanation without its parenthesised details.
    explanation = str(scoring_window[2] or "").split(" (")[0]
    explanation = explanation.replace("\\", "/")[:64] or "histogram"
    return SoftcopyVOILUTTransformation(
        window_center=[centre],
        window_width=[width],
        window_explanation=[explanation],
        voi_lut_function=VOILUTFunctionValues.LINEAR,
    )


def _presentation_lut(source: Dataset) -> PresentationLUTTransformation:
    """INVERSE for MONOCHROME1 (or an INVERSE source shape), so bone stays bright.

    A presentation state's Presentation LUT replaces the image's own polarity handling, so
    MONOCHROME1 must be inverted here (PS3.3 C.11.6), as :mod:`dicom_io.reading` does.
    """
    photometric = str(source.get("PhotometricInterpretation", "")).strip().upper()
    shape = str(source.get("PresentationLUTShape", "") or "").strip().upper()
    inverse = photometric == "MONOCHROME1" or shape == "INVERSE"
    return PresentationLUTTransformation(
        presentation_lut_shape="INVERSE" if inverse else "IDENTITY"
    )


def _modality_lut(source: Dataset, header: Dataset) -> DicomSequence | None:
    """Make ``header``'s Rescale attributes (which highdicom copies into the state) say what
    :mod:`dicom_io.reading` applies, and return the Modality LUT Sequence to copy, if that is
    what it applies.

    Reading prefers a Modality LUT Sequence, and reads an absent or empty Rescale Slope as 1
    and Intercept as 0. highdicom wants both or neither, and a Rescale Type with them.
    """
    for keyword in ("RescaleSlope", "RescaleIntercept", "RescaleType", "ModalityLUTSequence"):
        if keyword in header:
            del header[keyword]
    if source.get("ModalityLUTSequence"):
        return copy.deepcopy(source.ModalityLUTSequence)
    slope, intercept = source.get("RescaleSlope"), source.get("RescaleIntercept")
    if slope in (None, "") and intercept in (None, ""):
        return None  # identity: no Modality LUT module
    header.RescaleSlope = DSfloat(float(slope or 1.0), auto_format=True)
    header.RescaleIntercept = DSfloat(float(intercept or 0.0), auto_format=True)
    header.RescaleType = str(source.get("RescaleType") or "").strip()[:64] or "US"
    return None


def _set_laterality(pr: Dataset, source: Dataset) -> None:
    """The series Laterality (Type 2C; dciodvfy wants it, a PR has no Image Laterality).

    R or L when the source shows one hand; empty (unknown to the series level) when it shows
    both, since Laterality has no value for "both"; absent for an unpaired body part.
    """
    if not series_laterality_applies(source):
        if "Laterality" in pr:
            del pr.Laterality  # an unpaired body part (a chest): absent, not empty
        return
    image = str(source.get("ImageLaterality", "") or "").strip().upper()
    series = str(source.get("Laterality", "") or "").strip().upper()
    pr.Laterality = image if image in ("L", "R") else series if series in ("L", "R") else ""


def _annotations(
    header: Dataset, result: ScoringResult, rows: int, columns: int
) -> tuple[list[GraphicLayer], list[GraphicAnnotation], list[GraphicGroup]]:
    """The layers, with the scored joints and the notes in the first and the joints that are
    not assessable in a second, and the graphic groups that tie a box to its text."""
    layer = GraphicLayer(
        layer_name=GRAPHIC_LAYER,
        order=1,
        description="rascore joint scores - NOT FOR DIAGNOSTIC USE",
        display_color=_LAYER_COLOUR,
    )
    per_layer, groups = _joint_annotations(result, rows, columns)
    graphics, texts = per_layer[GRAPHIC_LAYER]
    layers = [layer]
    annotations = [
        GraphicAnnotation(
            referenced_images=[header],
            graphic_layer=layer,
            graphic_objects=graphics or None,
            text_objects=[*texts, *_notes(result)],
        )
    ]
    na_graphics, na_texts = per_layer[NOT_ASSESSABLE_LAYER]
    if na_graphics:
        na_layer = GraphicLayer(
            layer_name=NOT_ASSESSABLE_LAYER,
            order=2,
            description="rascore joints found but not assessable (not scored)",
            display_color=_NA_LAYER_COLOUR,
        )
        layers.append(na_layer)
        annotations.append(
            GraphicAnnotation(
                referenced_images=[header],
                graphic_layer=na_layer,
                graphic_objects=na_graphics,
                text_objects=na_texts,
            )
        )
    return layers, annotations, groups


@building("GSPS")
def build_gsps(
    source: Dataset,
    result: ScoringResult,
    *,
    series_instance_uid: str | None = None,
    sop_instance_uid: str | None = None,
    series_number: int = 903,
    instance_number: int = 1,
    window: tuple[float, float, str] | None = None,
) -> GrayscaleSoftcopyPresentationState:
    """A presentation state on ``source`` with the joints' boxes and scores as annotations.

    Same patient and study as the source, a new series; UIDs are generated when not given.
    ``window`` (centre, width, explanation) is the window the image was read with when it was
    scored; a source without a VOI of its own gets it, so the source need not be decoded again
    (nor have pixels). Raises :class:`~dicom_io.results.ResultMismatch` if ``result`` is about
    another image, :class:`dicom_io.reading.UnreadableImage` if the source has no VOI of its
    own, no ``window`` is given and its pixels cannot be decoded to derive one from, and
    :class:`~dicom_io.results.ResultBuildError` if the GSPS cannot be built for another
    reason.
    """
    header = result_header(source, result.source_sop_instance_uid)
    rows, columns = int(header.Rows), int(header.Columns)
    modality_lut_sequence = _modality_lut(source, header)
    layers, annotations, groups = _annotations(header, result, rows, columns)
    pr = GrayscaleSoftcopyPresentationState(
        referenced_images=[header],
        series_instance_uid=series_instance_uid or generate_uid(),
        series_number=series_number,
        sop_instance_uid=sop_instance_uid or generate_uid(),
        instance_number=instance_number,
        manufacturer=result.model.manufacturer,
        manufacturer_model_name=result.model.name,
        software_versions=result.model.version,
        device_serial_number=None,  # type: ignore[arg-type]  # Type 3: absent
        content_label=CONTENT_LABEL,
        content_description="RA joint scores (SvdH) - NOT FOR DIAGNOSTIC USE",
        graphic_annotations=annotations,
        graphic_layers=layers,
        graphic_groups=groups or None,
        voi_lut_transformations=[_voi(source, window)],
        presentation_lut_transformation=_presentation_lut(source),
        series_description=SERIES_DESCRIPTION,
        transfer_syntax_uid=ExplicitVRLittleEndian,
    )
    if modality_lut_sequence is not None:
        pr.ModalityLUTSequence = modality_lut_sequence
    pr.DeviceUID = result.model.device_uid
    _set_laterality(pr, source)
    if body_part(source) is not None:  # Type 3: a mangled one is left out
        pr.BodyPartExamined = body_part(source)
    pr.GraphicLayerSequence[0].GraphicLayerRecommendedDisplayGrayscaleValue = 0xFFFF
    if len(pr.GraphicLayerSequence) > 1:  # the not-assessable layer: mid grey on a grey display
        pr.GraphicLayerSequence[1].GraphicLayerRecommendedDisplayGrayscaleValue = 0xA000
    return pr
