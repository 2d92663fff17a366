"""The source radiograph's header as highdicom wants it, without inventing anything.

highdicom copies the patient and study from the source of a derived object and reads some
attributes unconditionally. Scanned films and de-identified exports often lack them (Patient's
Birth Date, Accession Number, Referring Physician). These are Type 2 in every object rascore
writes, so an absent one becomes present and empty: "unknown", as the standard means it.
"""

from __future__ import annotations

from pydicom.dataset import Dataset

#: Type 2 patient and study attributes highdicom copies from the source
TYPE_2_IDENTITY = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "StudyID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
)


def header_copy(source: Dataset) -> Dataset:
    """A copy of ``source`` without its pixels, with absent TYPE_2_IDENTITY attributes empty."""
    header = Dataset()
    for element in source:
        if element.tag != 0x7FE00010:  # Pixel Data: not needed, not copied
            header.add(element)
    if hasattr(source, "file_meta"):
        header.file_meta = source.file_meta
    for keyword in TYPE_2_IDENTITY:
        if keyword not in header:
            setattr(header, keyword, "")
    return header
