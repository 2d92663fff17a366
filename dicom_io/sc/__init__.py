"""The overlay Secondary Capture: the scores burned into a colour copy of the source image.

Every PACS viewer shows a Secondary Capture, including those that ignore Structured Reports and
presentation states, so this is the one result object a radiologist is sure to see. It is the
windowed source image (as :func:`dicom_io.reading.read_radiograph` shows it, bone bright) in
RGB, each scored joint boxed in a colour for its worse grade with its name and its JSN and
erosion grades beside the box, and a banner with the per-hand and image totals, the model and
"NOT FOR DIAGNOSTIC USE".

``grey`` shrinks the display grey-scale to the overlay's size (:func:`overlay_grey`, which
the scoring worker keeps so the build need not decode again); ``render`` draws the picture
(:func:`render_overlay`, :func:`overlay_layout`); ``build`` makes it an SC IOD
(:func:`build_overlay_sc`); ``progress`` draws and builds the study overlay, the
joints whose grades changed since the previous study (:func:`build_progress_sc`); the texts
and label placement it shares with the GSPS are in :mod:`dicom_io.annotations`. It imports
OpenCV, highdicom, pydicom, and from ``dicom_io`` the reader, the results, the study
results, the annotations and the source header; never ``scoring`` or ``worker``.
"""

from dicom_io.sc.build import SERIES_DESCRIPTION, build_overlay_sc
from dicom_io.sc.grey import OVERLAY_LONG_SIDE, overlay_grey, overlay_shape
from dicom_io.sc.progress import (
    JointProgress,
    ProgressLayout,
    build_progress_sc,
    joint_progress,
    previous_comparison,
    progress_layout,
    render_progress,
)
from dicom_io.sc.render import (
    BANNER_TITLE,
    NOT_ASSESSABLE_COLOUR,
    SEVERITY_COLOURS,
    OverlayLayout,
    overlay_layout,
    render_overlay,
    severity_colour,
)

__all__ = [
    "BANNER_TITLE",
    "NOT_ASSESSABLE_COLOUR",
    "OVERLAY_LONG_SIDE",
    "SERIES_DESCRIPTION",
    "SEVERITY_COLOURS",
    "JointProgress",
    "OverlayLayout",
    "ProgressLayout",
    "build_overlay_sc",
    "build_progress_sc",
    "joint_progress",
    "overlay_grey",
    "overlay_layout",
    "overlay_shape",
    "previous_comparison",
    "progress_layout",
    "render_overlay",
    "render_progress",
    "severity_colour",
]
