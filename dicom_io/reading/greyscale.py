"""The reader's one entry point: a path or a data set in, a :class:`GreyscaleImage` out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom import Dataset

from dicom_io.reading.decode import decode_pixels, is_lossy, transfer_syntax
from dicom_io.reading.errors import CorruptImage, UnreadableImage, header_int, one_line
from dicom_io.reading.frames import check_frame_header
from dicom_io.reading.geometry import laterality, pixel_spacing
from dicom_io.reading.load import check_pixel_module, check_sop_class, load_dataset
from dicom_io.reading.voi import (
    Voi,
    VoiPreference,
    choose_voi,
    display_image,
    histogram_voi,
    linear_rescale,
    modality_values,
    sample_step,
)


@dataclass(frozen=True)
class GreyscaleImage:
    """A display-ready radiograph: float32 in [0, 1], bone bright, with what scoring needs."""

    pixels: np.ndarray  # (rows, columns) float32 in [0, 1]
    pixel_spacing_mm: tuple[float, float] | None  # (row spacing, column spacing)
    spacing_source: str | None  # "PixelSpacing", "ImagerPixelSpacing" or None
    laterality: str  # "L", "R", "B" or "U"
    rows: int
    columns: int
    bits_stored: int
    photometric: str
    sop_instance_uid: str
    study_instance_uid: str
    window: tuple[float, float]  # (centre, width) in modality-LUT output units
    window_source: str  # "file" or "histogram"
    # Added with the production reader; defaults keep older constructors working.
    sop_class_uid: str = ""  # "" only for a bare dataset without one
    modality: str = ""
    view_position: str = ""  # e.g. "PA", "AP"; "" when the file does not say
    transfer_syntax_uid: str = ""
    voi: str = ""  # "window", "voi-lut" or "histogram": what set the window
    voi_function: str = "LINEAR"  # LINEAR, LINEAR_EXACT, SIGMOID, or LUT for a VOI LUT
    window_explanation: str = ""  # the file's explanation, or how the histogram window was made
    inverted: bool = False  # MONOCHROME1 or Presentation LUT Shape INVERSE was applied
    decoder: str = ""  # "pydicom", "pydicom/pylibjpeg", "dcmtk dcmdjpeg", ...
    lossy: bool = False  # Lossy Image Compression 01, or a lossy transfer syntax
    spacing_note: str = ""  # why a spacing in the file was ignored (outside the plausible range)


def header_text(ds: Dataset, keyword: str) -> str:
    try:
        return str(ds.get(keyword, "") or "").strip()
    except Exception:  # a mangled value must not stop an otherwise readable image
        return ""


def _to_display(
    ds: Dataset, stored: np.ndarray, preference: VoiPreference, inverted: bool
) -> tuple[Voi, np.ndarray]:
    """The VOI chosen (the file's, else one from the histogram) and the display image."""
    rescale = linear_rescale(ds)
    chosen = choose_voi(ds, preference)
    if chosen is None:
        step = sample_step(*stored.shape)
        chosen = histogram_voi(modality_values(stored[::step, ::step], ds, rescale), inverted)
    try:
        return chosen, display_image(stored, ds, rescale, chosen, inverted)
    except UnreadableImage:
        raise
    except Exception as exc:  # a malformed LUT in an otherwise readable file
        raise CorruptImage(
            f"the Modality/VOI LUT could not be applied: {type(exc).__name__}: {one_line(exc)}"
        ) from exc


def read_radiograph(
    source: Path | str | Dataset, *, voi: VoiPreference = "window"
) -> GreyscaleImage:
    """Decode a single-frame grey-scale radiograph into a display-ready image.

    ``source`` is a path or a dataset. ``voi`` chooses between a file's window and its VOI LUT
    Sequence when it has both ("window", the default, or "lut"); "histogram" ignores both.
    Raises a subclass of :class:`UnreadableImage` with a one-line reason if it cannot (OSError
    if a path cannot be opened at all).
    """
    ds, from_file = load_dataset(source)
    sop_class = check_sop_class(ds, from_file)
    rows, columns = check_pixel_module(ds, from_file)
    ts = transfer_syntax(ds)
    check_frame_header(ds, ts, rows, columns)
    stored, decoder = decode_pixels(ds, ts, rows, columns)

    photometric = str(ds.PhotometricInterpretation).strip()
    shape = header_text(ds, "PresentationLUTShape").upper()
    inverted = photometric == "MONOCHROME1" or shape == "INVERSE"
    chosen, out = _to_display(ds, stored, voi, inverted)

    spacing, spacing_source, spacing_note = pixel_spacing(ds)
    return GreyscaleImage(
        pixels=np.ascontiguousarray(out, dtype=np.float32),
        pixel_spacing_mm=spacing,
        spacing_source=spacing_source,
        laterality=laterality(ds),
        rows=rows,
        columns=columns,
        bits_stored=header_int(ds, "BitsStored", stored.dtype.itemsize * 8),
        photometric=photometric,
        sop_instance_uid=header_text(ds, "SOPInstanceUID"),
        study_instance_uid=header_text(ds, "StudyInstanceUID"),
        window=(float(chosen.centre), float(chosen.width)),
        window_source="histogram" if chosen.kind == "histogram" else "file",
        sop_class_uid=sop_class,
        modality=header_text(ds, "Modality"),
        view_position=header_text(ds, "ViewPosition").upper(),
        transfer_syntax_uid=str(ts),
        voi=chosen.kind,
        voi_function=chosen.function,
        window_explanation=chosen.explanation,
        inverted=inverted,
        decoder=decoder,
        lossy=is_lossy(header_text(ds, "LossyImageCompression"), ts),
        spacing_note=spacing_note,
    )
