"""Which received images are scored: hand radiographs, by their own header.

Scored: CR and DX images, and scanned films, whose Body Part Examined, Protocol Name, Series
or Study Description or View Position names a hand (a word of the configured keywords, not a
substring: "SHANDY" is not a hand).

An image whose describing fields are all absent or empty (a header stripped by a
de-identification tool or a digitiser that writes none) says nothing of what it shows: it is
scored, and the detector decides. It finds no hand in a chest or a knee (its hand test wants a
hand's shape with confident joints), and an image without a hand gets no results. An image
whose fields name something else (CHEST, KNEE) is never scored.

A scanned film arrives as a Secondary Capture. It is scored when its Conversion Type says it
was digitised from a film (DF) or taken from a device's digital interface (DI), by the same
rule as CR and DX. A Secondary Capture made on a workstation (WSD, which includes rascore's own
overlays), synthesised (SYN), drawn or captured from video, or without a Conversion Type is not
a radiograph.

Everything else the node is sent (a chest radiograph, a foot, a CT) is accepted, filed and
recorded as skipped with the reason, so the sender never sees a failure for an image it was
right to send to the PACS.
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
    SecondaryCaptureImageStorage,
)

SCORED_SOP_CLASSES: dict[str, str] = {
    ComputedRadiographyImageStorage: "CR",
    DigitalXRayImageStorageForPresentation: "DX",
    DigitalXRayImageStorageForProcessing: "DX",
    SecondaryCaptureImageStorage: "SC",
}
#: Conversion Types (PS3.3 C.8.6.1) of a Secondary Capture that is a radiograph: digitised
#: film, digital interface
SCANNED_FILM_CONVERSION_TYPES = frozenset({"DF", "DI"})
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


def _text(dataset: Dataset, keyword: str) -> str:
    """The field's text, upper case; "" when absent, empty or unreadable."""
    try:
        value = dataset.get(keyword, "")
        if value is None or isinstance(value, Dataset):
            return ""
        if not isinstance(value, str | bytes) and hasattr(value, "__iter__"):
            value = " ".join(str(v) for v in value)  # a multi-valued field
        return " ".join(str(value).split()).upper()
    except Exception:  # a mangled value says nothing; routing must always answer
        return ""


def _sop_class(dataset: Dataset) -> str:
    uid = _text(dataset, "SOPClassUID")
    meta = getattr(dataset, "file_meta", None)
    if not uid and meta is not None:
        uid = _text(meta, "MediaStorageSOPClassUID")
    return uid


def route(dataset: Dataset, keywords: Sequence[str]) -> Route:
    """Decide from the header alone (no pixel data needed)."""
    sop_class = _sop_class(dataset)
    kind = SCORED_SOP_CLASSES.get(sop_class)
    if kind is None:
        return Route(False, f"SOP class {sop_class or '(none)'} is not a CR or DX image")
    if kind == "SC":
        conversion = _text(dataset, "ConversionType")
        if conversion not in SCANNED_FILM_CONVERSION_TYPES:
            return Route(
                False,
                f"Secondary Capture of Conversion Type {conversion or '(none)'} is not a CR or "
                "DX image, nor a scanned film (DF) or a digital interface's image (DI)",
            )
    patterns = [re.compile(rf"(?<![A-Z]){re.escape(k.upper())}(?![A-Z])") for k in keywords]
    described = False
    for field in DESCRIBING_FIELDS:
        value = _text(dataset, field)
        described = described or bool(value)
        if value and any(p.search(value) for p in patterns):
            return Route(True, f"{field} says hand")
    if not described:
        return Route(True, "the header does not say what was imaged; the detector decides")
    return Route(False, "no hand in Body Part Examined, Protocol Name, descriptions or view")
