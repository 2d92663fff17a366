"""What a rascore report's content holds that both building and reading must agree on."""

from __future__ import annotations

import re

from highdicom.sr import CodedConcept
from pydicom import Dataset

SERIES_DESCRIPTION = "RA joint scores (SvdH) - NOT FOR DIAGNOSTIC USE"
NO_JOINTS_TEXT = "No hand joint was detected in the image; no joint was scored."
IMAGE_TOTALS_ID = "image totals"
HAND_TOTALS_ID = "{side} hand totals"
LABEL = re.compile(r"^(L|R)_(IP|PIP[2-5]|MCP[1-5])$")


class SRFormatError(ValueError):
    """The dataset is not a rascore scoring report, or its content is inconsistent."""


def concept_name(item: Dataset) -> CodedConcept:
    """The concept name of a content item."""
    return CodedConcept.from_dataset(item.ConceptNameCodeSequence[0])
