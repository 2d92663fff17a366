"""Tables of the created objects, walked from the sample objects built at generation time: the
modules and attributes of each IOD, the SR content tree, and the codes the SR uses."""

from __future__ import annotations

from collections.abc import Iterator

from pydicom.dataset import Dataset
from pydicom.sr.coding import Code

from dicom_io import codes
from dicom_io.sr import study_template, template
from worker.conformance.markdown import table
from worker.conformance.modules import module_of, order
from worker.conformance.samples import samples

#: attributes whose value rascore fixes: the document shows it
FIXED = frozenset({
    "Modality", "SeriesNumber", "SeriesDescription", "ConversionType", "ImageType",
    "BurnedInAnnotation", "RecognizableVisualFeatures", "VerificationFlag", "CompletionFlag",
    "PreliminaryFlag", "PhotometricInterpretation", "SamplesPerPixel", "BitsAllocated",
    "BitsStored", "ContentLabel", "PresentationLUTShape", "SpecificCharacterSet",
    "ContinuityOfContent", "Manufacturer", "ContentCreatorName", "PlanarConfiguration",
    "PixelRepresentation", "SOPClassUID", "ValueType", "ImageComments", "DerivationDescription",
    "ContentDescription", "LossyImageCompression",
})  # fmt: skip
FROM_SOURCE = ("Patient", "General Study")


def objects() -> list[tuple[str, str, Dataset]]:
    """(title, family, data set) of each object the node creates."""
    s = samples()
    return [
        ("Image SR: the scores of one radiograph (Comprehensive 3D SR)", "SR", s.sr),
        ("Overlay: the scores drawn on the radiograph (Secondary Capture)", "SC", s.sc),
        ("Joint outlines (Grayscale Softcopy Presentation State)", "PR", s.gsps),
        ("Study SR: both hands and the progression (Comprehensive 3D SR)", "SR", s.study_sr),
        ("Study overlay: the joints that changed (Secondary Capture)", "SC", s.study_sc),
    ]


def _value(ds: Dataset, keyword: str, module: str) -> str:
    element = ds[keyword]
    if module in FROM_SOURCE:
        return "from the source image"
    if keyword in FIXED and element.VR not in ("SQ", "OB", "OW"):
        value = element.value
        if value is None or value == "":
            return "(empty)"
        if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
            return "\\".join(str(v) for v in value)
        return str(value)
    if element.VR == "SQ":
        return f"{len(element.value)} item(s)" if keyword != "ContentSequence" else "see below"
    if element.VR == "UI":
        return "generated"
    return ""


def module_table(family: str, ds: Dataset) -> str:
    rows = []
    for element in ds:
        module = module_of(family, element.keyword)
        tag = f"({element.tag.group:04X},{element.tag.element:04X})"
        rows.append((order(module), module, element.keyword, tag,
                     _value(ds, element.keyword, module)))  # fmt: skip
    rows.sort(key=lambda r: (r[0], r[3]))
    return table(("Module", "Attribute", "Tag", "Value"), [r[1:] for r in rows])


def _concept(item: Dataset) -> str:
    if "ConceptNameCodeSequence" not in item:
        return "(no concept name)"
    code = item.ConceptNameCodeSequence[0]
    return f"{code.CodeMeaning} ({code.CodingSchemeDesignator} {code.CodeValue})"


def _lines(items: list[Dataset], depth: int) -> Iterator[str]:
    """Content items, indented; consecutive items of the same shape are shown once, counted."""
    shown: list[tuple[list[str], int]] = []
    for item in items:
        head = (f"{item.get('RelationshipType', '')} {item.ValueType}: {_concept(item)}"
                .strip())  # fmt: skip
        templ = item.get("ContentTemplateSequence")
        if templ:
            head += f" [TID {templ[0].TemplateIdentifier}]"
        children = list(_lines(list(item.get("ContentSequence", [])), depth + 1))
        block = [head, *children]
        if shown and shown[-1][0] == block:
            shown[-1] = (block, shown[-1][1] + 1)
        else:
            shown.append((block, 1))
    for block, count in shown:
        times = f" (×{count})" if count > 1 else ""
        yield "  " * depth + "- " + block[0] + times
        yield from block[1:]


def content_tree(ds: Dataset) -> str:
    """The SR's content tree: relationship, value type and concept name of every item."""
    root = f"CONTAINER: {_concept(ds)}"
    templ = ds.get("ContentTemplateSequence")
    if templ:
        root += f" [TID {templ[0].TemplateIdentifier}]"
    return "\n".join(["- " + root, *_lines(list(ds.ContentSequence), 1)])


def _codes_in(value: object) -> Iterator[Code]:
    if isinstance(value, Code):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _codes_in(v)
    elif isinstance(value, tuple | list):
        for v in value:
            yield from _codes_in(v)


def declared_codes() -> list[Code]:
    """Every code defined in ``dicom_io.codes`` and the SR templates, once, in source order."""
    found: dict[tuple[str, str], Code] = {}
    for module in (codes, template, study_template):
        for name, value in vars(module).items():
            if name.startswith("__"):
                continue
            for code in _codes_in(value):
                found.setdefault((code.scheme_designator, code.value), code)
    for side in ("L", "R", "B", ""):
        code = codes.procedure_reported(side)
        found.setdefault((code.scheme_designator, code.value), code)
    return list(found.values())


def codes_table() -> str:
    rows = [(c.value, c.scheme_designator, c.meaning) for c in declared_codes()]
    return table(("Code Value", "Coding Scheme Designator", "Code Meaning"), rows)


def coding_scheme_table() -> str:
    item = samples().sr.CodingSchemeIdentificationSequence[0]
    rows = [(e.keyword, str(e.value)) for e in item]
    return table(("Attribute", "Value"), rows)
