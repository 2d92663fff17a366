"""The source radiograph's header as the result builders need it, inventing nothing it can say.

highdicom copies the patient and study from the source of a derived object and reads some
attributes unconditionally. Scanned films, de-identified exports and careless modalities often
lack them. Every object rascore writes (SR, overlay SC, GSPS) must still come out as its IOD
asks, so :func:`header_copy` gives the builders a pixel-free copy in which

* absent Type 2 patient and study attributes (Patient's Birth Date, Accession Number, Study
  ID, Referring Physician ...) are present and empty: "unknown", as the standard means it;
* absent or empty Type 1 attributes that the results must repeat are derived: the SOP Class
  and Instance UIDs from the file meta information, the Modality from the SOP class, and the
  Study and Series Instance UIDs, if the source has none, as name-based UIDs of its SOP
  Instance UID, so that the three results of one image agree on them and a rebuild gives the
  same ones. (The node refuses a C-STORE without a Study Instance UID; ``rascore score`` on
  a file does not.)

A source without any SOP Class or SOP Instance UID cannot be referenced at all: that is a
:class:`~dicom_io.results.SourceHeaderError`.
"""

from __future__ import annotations

import copy
import math
import re
import uuid
from typing import Any

from highdicom import SpecificCharacterSetValues
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import DA, TM

from dicom_io.results import ResultMismatch, SourceHeaderError

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

#: Modality (Type 1 in the General Series module) implied by the storage SOP class
MODALITY_BY_SOP_CLASS = {
    "1.2.840.10008.5.1.4.1.1.1": "CR",
    "1.2.840.10008.5.1.4.1.1.1.1": "DX",
    "1.2.840.10008.5.1.4.1.1.1.1.1": "DX",
    "1.2.840.10008.5.1.4.1.1.7": "OT",  # Secondary Capture: "other" unless it says
}

#: Body Part Examined defined terms of unpaired structures (PS3.16 Annex L, as dciodvfy
#: knows them): a series of such a part has no Laterality (Type 2C), not even an empty one.
# fmt: off
UNPAIRED_BODY_PARTS = frozenset({
    "ABDOMEN", "ABDOMENPELVIS", "AORTA", "BLADDER", "BRAIN", "CEREBELLUM", "CERVIX", "CHEST",
    "CHESTABDPELVIS", "CIRCLEOFWILLIS", "COCCYX", "COLON", "CORONARYARTERY", "CSPINE", "CTSPINE",
    "DUODENUM", "ESOPHAGUS", "FACE", "GALLBLADDER", "HEAD", "HEADNECK", "HEART", "ILEUM", "ILIUM",
    "JAW", "JEJUNUM", "LARYNX", "LIVER", "LSPINE", "LSSPINE", "MAXILLA", "MEDIASTINUM", "MOUTH",
    "NECK", "NECKCHEST", "NECKCHESTABDOMEN", "NECKCHESTABDPELV", "NOSE", "PANCREAS", "PELVIS",
    "PENIS", "PHARYNX", "PROSTATE", "RECTUM", "SCALP", "SKULL", "SPINE", "SPLEEN", "SSPINE",
    "STERNUM", "STOMACH", "THYMUS", "THYROID", "TLSPINE", "TONGUE", "TRACHEA", "TSPINE", "URETER",
    "URETHRA", "UTERUS", "VAGINA", "VULVA", "WHOLEBODY",
})
# fmt: on


def series_laterality_applies(source: Dataset) -> bool:
    """Whether a series made from ``source`` carries Laterality (Type 2C: required for a
    paired body part, and where the part is unknown; absent for an unpaired one)."""
    return (body_part(source) or "") not in UNPAIRED_BODY_PARTS


_CODE_STRING = re.compile(r"^[A-Z0-9_ ]{1,16}$")


def body_part(source: Dataset) -> str | None:
    """The source's Body Part Examined, if it is one valid code string (CS: 16 characters of
    upper case, digits, space and underscore), for the results' series to repeat."""
    value = _single(source, "BodyPartExamined").upper()
    return value if _CODE_STRING.match(value) else None


def _text(dataset: Dataset, keyword: str) -> str:
    try:
        return str(dataset.get(keyword) or "").strip()
    except Exception:  # a mangled value is as good as none
        return ""


def _single(dataset: Dataset, keyword: str) -> str:
    """The attribute's one value as text; "" when absent, empty, multi-valued or unreadable."""
    try:
        found = values(dataset.get(keyword))
    except Exception:  # a mangled value is as good as none
        return ""
    return str(found[0]).strip() if len(found) == 1 else ""


def _from_file_meta(source: Dataset, keyword: str, meta_keyword: str) -> str:
    value = _single(source, keyword)
    meta = getattr(source, "file_meta", None)
    if not value and meta is not None:
        value = _single(meta, meta_keyword)
    if not value:
        raise SourceHeaderError(
            f"the source has no {keyword} (and no {meta_keyword} in its file meta): "
            "its results could not refer to it"
        )
    return value


def sop_class_uid(source: Dataset) -> str:
    """The source's SOP Class UID, else its file meta's Media Storage SOP Class UID."""
    return _from_file_meta(source, "SOPClassUID", "MediaStorageSOPClassUID")


def sop_instance_uid(source: Dataset) -> str:
    """The source's SOP Instance UID, else its file meta's Media Storage SOP Instance UID."""
    return _from_file_meta(source, "SOPInstanceUID", "MediaStorageSOPInstanceUID")


def derived_uid(sop_instance: str, what: str) -> str:
    """A UID for ``what`` of the image ``sop_instance``, the same on every call: a name-based
    (version 5) UUID as a 2.25 UID (PS3.5 B.2)."""
    return f"2.25.{uuid.uuid5(uuid.NAMESPACE_OID, f'rascore/{what}/{sop_instance}').int}"


def header_copy(source: Dataset) -> Dataset:
    """A copy of ``source`` without its pixels, ready for the builders (module docstring).

    Raises :class:`~dicom_io.results.SourceHeaderError` when the source has no SOP Class or
    SOP Instance UID anywhere.
    """
    header = Dataset()
    for element in source:
        if element.tag != 0x7FE00010:  # Pixel Data: not needed, not copied
            # a copy: the builders change the header, never the caller's source
            header.add(copy.deepcopy(element))
    if hasattr(source, "file_meta"):
        header.file_meta = source.file_meta
    if not values(header.get("SpecificCharacterSet")):
        header.pop("SpecificCharacterSet", None)  # empty: the default repertoire, as absent
    header.SOPClassUID = sop_class_uid(source)
    header.SOPInstanceUID = sop_instance_uid(source)
    for keyword, what in (("StudyInstanceUID", "study"), ("SeriesInstanceUID", "series")):
        if not _single(source, keyword):
            setattr(header, keyword, derived_uid(header.SOPInstanceUID, what))
    if not _single(source, "Modality"):
        header.Modality = MODALITY_BY_SOP_CLASS.get(str(header.SOPClassUID), "OT")
    _clean_identity(header)
    for keyword in TYPE_2_IDENTITY:
        if keyword not in header:
            setattr(header, keyword, "")
    return header


_CHARACTER_SETS = frozenset(v.value for v in SpecificCharacterSetValues)


def result_header(source: Dataset, result_source_uid: str) -> Dataset:
    """:func:`header_copy` of ``source``, once the result is known to be about this image
    (:class:`~dicom_io.results.ResultMismatch` otherwise)."""
    header = header_copy(source)  # the patient, study and identity as each IOD asks
    if str(header.SOPInstanceUID) != result_source_uid:
        raise ResultMismatch(
            f"result is for image {result_source_uid}, not for {header.SOPInstanceUID}"
        )
    return header


def _clean_identity(header: Dataset) -> None:
    """Values highdicom refuses to copy, made what the standard allows.

    PACS pass on headers with a Patient's Sex of U, a date in another format or a character
    set by another name. Such a Type 2 value becomes empty (unknown) rather than stopping the
    results; several names (PN) keep the first; an unknown character set becomes UTF-8
    (ISO_IR 192), which encodes whatever pydicom decoded.
    """
    charset = [str(v).strip() for v in values(header.get("SpecificCharacterSet"))]
    if charset and not all(
        c in _CHARACTER_SETS or (i == 0 and not c) for i, c in enumerate(charset)
    ):
        header.SpecificCharacterSet = "ISO_IR 192"
    for keyword, kind in (("StudyDate", DA), ("PatientBirthDate", DA), ("StudyTime", TM)):
        if keyword in header and not _parses(header.get(keyword), kind):
            header[keyword].value = None
    if "PatientSex" in header:
        sex = _single(header, "PatientSex").upper()
        header.PatientSex = sex if sex in ("M", "F", "O") else None
    for keyword in ("PatientName", "ReferringPhysicianName"):
        names = values(header.get(keyword))
        if len(names) > 1:
            header[keyword].value = names[0]


def _parses(value: Any, kind: type[DA] | type[TM]) -> bool:
    """Whether ``value`` is empty or one valid DA / TM value."""
    found = values(value)
    if not found:
        return True
    if len(found) != 1:
        return False
    try:
        kind(str(found[0]).strip())
    except (TypeError, ValueError):
        return False
    return True


def values(value: Any) -> list[Any]:
    """The values of a possibly multi-valued element ([] when absent or empty)."""
    if value is None or value == "":
        return []
    if isinstance(value, MultiValue | list | tuple):
        return list(value)
    return [value]  # one value: str, number, PersonName (which iterates by character)


def spacing_pair(value: Any) -> tuple[float, float] | None:
    """(row, column) spacing in mm when ``value`` holds two positive finite numbers."""
    try:
        row, column = (float(v) for v in values(value))
    except (TypeError, ValueError):
        return None
    if row > 0 and column > 0 and math.isfinite(row) and math.isfinite(column):
        return row, column
    return None
