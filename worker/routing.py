"""Which received images are scored: CR and DX images of a hand, by their own header.

Everything else the node is sent (a Secondary Capture, a chest radiograph, a foot) is accepted,
filed and recorded as skipped with the reason, so the sender never sees a failure for an image
it was right to send to the PACS.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.uid import (
    ComputedRadiographyImageStorage,
    DigitalXRayImageStorageForPresentation,
    DigitalXRayImageStorageForProcessing,
)

SCORED_SOP_CLASSES = {
    ComputedRadiographyImageStorage: "CR",
    DigitalXRayImageStorageForPresentation: "DX",
    DigitalXRayImageStorageForProcessing: "DX",
}
#: header fields that may say what was imaged, in the order they are trusted
DESCRIBING_FIELDS = (
    "BodyPartExamined",
    "ProtocolName",
    "SeriesDescription",
    "StudyDescription",
    "ViewPosition",
)


@dataclass(frozen=True)
class Route:
    score: bool
    reason: str  #: why not, or which field said hand


def route(dataset: Dataset, keywords: Sequence[str]) -> Route:
    """Decide from the header alone (no pixel data needed)."""
    sop_class = str(dataset.get("SOPClassUID", ""))
    if sop_class not in SCORED_SOP_CLASSES:
        return Route(False, f"SOP class {sop_class or '(none)'} is not a CR or DX image")
    patterns = [re.compile(rf"(?<![A-Z]){re.escape(k.upper())}(?![A-Z])") for k in keywords]
    for field in DESCRIBING_FIELDS:
        value = str(dataset.get(field, "") or "").upper()
        if value and any(p.search(value) for p in patterns):
            return Route(True, f"{field} says hand")
    return Route(False, "no hand in Body Part Examined, Protocol Name, descriptions or view")
