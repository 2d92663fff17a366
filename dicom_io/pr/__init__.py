"""The Grayscale Softcopy Presentation State: the scores as annotations a viewer can switch off.

``gsps`` builds it (:func:`build_gsps`) over the source image, with the source's own Modality
LUT and VOI so the image looks as the reader shows it. The texts and label placement it shares
with the overlay SC are in :mod:`dicom_io.annotations`. It imports highdicom, pydicom, and from
``dicom_io`` the reader, the results, the annotations and the source header; never ``scoring``
or ``worker``.
"""

from dicom_io.pr.gsps import (
    CONTENT_LABEL,
    GRAPHIC_LAYER,
    NOT_ASSESSABLE_LAYER,
    SERIES_DESCRIPTION,
    box_polyline,
    build_gsps,
    joint_text,
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
