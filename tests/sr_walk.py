"""Reading an SR content tree in tests: items by concept, measurement groups, every code.

Small on purpose: the checks of ``tests/test_ihe_air.py`` should read like the template tables
they follow (PS3.16 TID 1500, 1410, 1501, 4019), not like tree traversal.
"""

from __future__ import annotations

from collections.abc import Iterator

from pydicom import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

#: the designators of PS3.16 Table 8-1 that a rascore report may use without declaring them
STANDARD_SCHEMES = frozenset({"DCM", "SCT", "LN", "UCUM", "UMLS", "RFC5646"})

#: highdicom's name of SCT 260753009, the purpose of a region's SELECTED FROM image
SOURCE = Code("260753009", "SCT", "Source")


def key(code: Dataset | Code) -> tuple[str, str]:
    """(Code Value, Coding Scheme Designator): what identifies a concept (never its meaning)."""
    if isinstance(code, Code):
        return code.value, code.scheme_designator
    return str(code.CodeValue), str(code.CodingSchemeDesignator)


def name(item: Dataset) -> tuple[str, str]:
    """The concept name of a content item."""
    return key(item.ConceptNameCodeSequence[0])


def value_code(item: Dataset) -> tuple[str, str]:
    """The value of a CODE content item."""
    return key(item.ConceptCodeSequence[0])


def children(item: Dataset, concept: Code, relationship: str | None = None) -> list[Dataset]:
    """The direct children of ``item`` named ``concept`` (and related so, when given)."""
    return [
        c
        for c in item.get("ContentSequence", [])
        if "ConceptNameCodeSequence" in c
        and name(c) == key(concept)
        and (relationship is None or c.RelationshipType == relationship)
    ]


def child(item: Dataset, concept: Code, relationship: str | None = None) -> Dataset:
    """The one direct child named ``concept``; fails when there is none or more than one."""
    found = children(item, concept, relationship)
    assert len(found) == 1, f"{len(found)} items {concept.meaning!r} (want 1)"
    return found[0]


def walk(items: Iterator[Dataset] | list[Dataset]) -> Iterator[Dataset]:
    """Every content item below ``items``, depth first."""
    for item in items:
        yield item
        yield from walk(item.get("ContentSequence", []))


def measurement_groups(sr: Dataset) -> list[Dataset]:
    """The Measurement Group containers of the Imaging Measurements container."""
    containers = children(sr, codes.DCM.ImagingMeasurements)
    return [g for c in containers for g in children(c, codes.DCM.MeasurementGroup)]


def template(item: Dataset) -> str:
    """The TID a container says it follows ('' when it says none)."""
    found = item.get("ContentTemplateSequence", [])
    return str(found[0].TemplateIdentifier) if found else ""


def image_refs(item: Dataset) -> list[tuple[str, str]]:
    """(SOP Class UID, SOP Instance UID) of an IMAGE or COMPOSITE item's reference."""
    return [
        (str(r.ReferencedSOPClassUID), str(r.ReferencedSOPInstanceUID))
        for r in item.get("ReferencedSOPSequence", [])
    ]


def evidence(sequence: list[Dataset]) -> set[tuple[str, str]]:
    """(class, instance) of every object in a Hierarchical SOP Instance Reference sequence."""
    return {
        (str(s.ReferencedSOPClassUID), str(s.ReferencedSOPInstanceUID))
        for study in sequence
        for series in study.ReferencedSeriesSequence
        for s in series.ReferencedSOPSequence
    }


#: what makes a sequence item a code (PS3.3 Table 8.8-1)
CODE_VALUES = ("CodeValue", "LongCodeValue", "URNCodeValue")


def code_items(ds: Dataset) -> Iterator[Dataset]:
    """Every code sequence item anywhere in ``ds`` (concept names and values, units, purposes
    of reference, ...), header as well as content tree."""
    for element in ds.iterall():
        if element.VR == "SQ":
            for item in element.value:
                if any(k in item for k in CODE_VALUES):
                    yield item
