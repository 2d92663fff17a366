"""Coded concepts of the rascore Structured Report.

Where a concept comes from:

* **Private scheme** ``99RASCORE`` (:data:`SCHEME_DESIGNATOR`). No standard codes exist for the
  Sharp/van der Heijde sub-scores, their grades, the class probabilities of the scoring
  networks or the SvdH totals, so they are private concepts, declared in the SR's Coding Scheme
  Identification Sequence by :func:`coding_scheme_identification`. Private designators start
  with ``99`` (DICOM PS3.3 §8.2).
* **SNOMED CT** (``SCT``): the finding sites. *Hand* (85562004) and the laterality modifiers
  *Left* (7771000) and *Right* (24028007) are DICOM codes (PS3.16 CID 4031 / CID 244, as listed
  in pydicom's concept dictionary). The specific joint codes were checked against published
  SNOMED CT value sets (the FHIR/HSPC SNOMED body-structure examples):
  289002 *Metacarpophalangeal joint of index finger*, 6059006 *Metacarpophalangeal joint of
  middle finger*, 5493005 *Metacarpophalangeal joint of little finger*. For the other joints
  (thumb IP and MCP, ring-finger MCP, PIP 2–5) no SNOMED CT code could be confirmed from a
  source at hand, so they carry private ``99RASCORE`` codes with the anatomical meaning spelled
  out, rather than guessed SNOMED numbers; replacing them with verified SNOMED CT codes only
  needs :data:`JOINT_SITES` changed (readers of older reports keep working, since
  :func:`dicom_io.sr.read_sr` takes the joint's identity from its tracking identifier).
* **Not assessable.** A joint the model will not grade has the private value
  ``NOT-ASSESSABLE`` "Not assessable" for both sub-scores instead of a grade, and its reason as
  a TEXT qualitative evaluation ``NA-REASON``: TID 1501/1410 allow free-text qualitative
  evaluations beside coded ones. SNOMED CT's *Undetermined* (373068000) or *Indeterminate*
  (82334004) would say "the grade is uncertain", not "the algorithm declined to grade", so a
  private concept names what happened.
* **LOINC** (``LN``): the procedure reported (from the LOINC radiology codes):
  26355-8 *XR Hand - bilateral Arthritis*, 26356-6 *XR Hand - left Arthritis*,
  26357-4 *XR Hand - right Arthritis*, and 28582-5 *XR Hand Views* when the laterality of
  the image is not known.
* **DCM**: 109102 *Processing Equipment* (CID 7005) as the purpose of reference of the
  algorithm in the Contributing Equipment Sequence; 121106 *Comment* (CID 12101) for the
  not-for-diagnostic-use note; highdicom supplies the template codes (TID 1500/1410/1501/4019).
* **UMLS**: C0034375 *Qualitative Evaluations*, the TID 1500 container that holds the note.
* **UCUM**: ``1`` *no units* (CID 7181) for probabilities, scores and counts.
"""

from __future__ import annotations

from highdicom.coding_schemes import CodingSchemeIdentificationItem
from pydicom import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

__all__ = [
    "COMMENT",
    "EROSION",
    "EROSION_GRADE_CODES",
    "EROSION_PROB_CODES",
    "HAND",
    "JOINT_SITES",
    "JSN",
    "JSN_GRADE_CODES",
    "JSN_PROB_CODES",
    "LATERALITY",
    "NOT_ASSESSABLE",
    "NOT_ASSESSABLE_REASON",
    "NO_UNITS",
    "NUMBER_NOT_ASSESSABLE",
    "NUMBER_OF_JOINTS",
    "PROCESSING_EQUIPMENT",
    "QUALITATIVE_EVALUATIONS",
    "SCHEME_DESIGNATOR",
    "TOTAL_EROSION_HAND",
    "TOTAL_EROSION_IMAGE",
    "TOTAL_JSN_HAND",
    "TOTAL_JSN_IMAGE",
    "coding_scheme_identification",
    "procedure_reported",
]

SCHEME_DESIGNATOR = "99RASCORE"
SCHEME_NAME = "rascore codes for Sharp/van der Heijde hand joint scoring"
SCHEME_VERSION = "1.0"
SCHEME_RESPONSIBLE_ORGANIZATION = "rascore project"


def _private(value: str, meaning: str) -> Code:
    if len(value) > 16 or len(meaning) > 64:  # SH and LO limits of Code Value / Code Meaning
        raise ValueError(f"code too long: {value!r} {meaning!r}")
    return Code(value, SCHEME_DESIGNATOR, meaning)


def coding_scheme_identification() -> CodingSchemeIdentificationItem:
    """The item of the Coding Scheme Identification Sequence that declares ``99RASCORE``.

    A private scheme is not registered, so Coding Scheme Registry and UID are absent (both
    Type 1C, required only for registered schemes).
    """
    return CodingSchemeIdentificationItem(
        designator=SCHEME_DESIGNATOR,
        name=SCHEME_NAME,
        version=SCHEME_VERSION,
        responsible_organization=SCHEME_RESPONSIBLE_ORGANIZATION,
    )


# --- Scores (qualitative evaluations, TID 1410 rows "Qualitative Evaluation") ------------------

JSN = _private("JSN", "SvdH joint space narrowing score")
EROSION = _private("ERO", "SvdH erosion score")

JSN_GRADE_CODES: tuple[Code, ...] = (
    _private("JSN-0", "SvdH JSN 0: none"),
    _private("JSN-1", "SvdH JSN 1: focal or doubtful"),
    _private("JSN-2", "SvdH JSN 2: generalised, more than 50% of space left"),
    _private("JSN-3", "SvdH JSN 3: generalised, less than 50% left, or subluxation"),
    _private("JSN-4", "SvdH JSN 4: bony ankylosis or complete luxation"),
)
EROSION_GRADE_CODES: tuple[Code, ...] = (
    _private("ERO-0", "SvdH erosion 0: none"),
    _private("ERO-1", "SvdH erosion 1: discrete"),
    _private("ERO-2", "SvdH erosion 2: larger, less than 50% of joint surface"),
    _private("ERO-3", "SvdH erosion 3: extending over the middle of the bone"),
    _private("ERO-4", "SvdH erosion 4"),
    _private("ERO-5", "SvdH erosion 5: complete collapse"),
)

#: the value of both sub-scores of a joint the model will not grade (never a guessed grade)
NOT_ASSESSABLE = _private("NOT-ASSESSABLE", "Not assessable")
#: why (TEXT), e.g. "unlike the training images", "model unsure"
NOT_ASSESSABLE_REASON = _private("NA-REASON", "Reason the joint is not assessable")

# --- Class probabilities of the scoring networks (measurements, unit "1") ---------------------

JSN_PROB_CODES: tuple[Code, ...] = tuple(
    _private(f"P-JSN-{g}", f"Probability of SvdH JSN grade {g}") for g in range(5)
)
EROSION_PROB_CODES: tuple[Code, ...] = tuple(
    _private(f"P-ERO-{g}", f"Probability of SvdH erosion grade {g}") for g in range(6)
)

# --- Totals (TID 1501 measurement groups per hand and per image) -------------------------------

TOTAL_JSN_HAND = _private("TOT-JSN-HAND", "Total SvdH JSN score of hand")
TOTAL_EROSION_HAND = _private("TOT-ERO-HAND", "Total SvdH erosion score of hand")
TOTAL_JSN_IMAGE = _private("TOT-JSN-IMAGE", "Total SvdH JSN score of image")
TOTAL_EROSION_IMAGE = _private("TOT-ERO-IMAGE", "Total SvdH erosion score of image")
#: the joints a total covers (the assessable ones)
NUMBER_OF_JOINTS = _private("N-JOINTS", "Number of joints scored")
#: the joints found but left out of the totals
NUMBER_NOT_ASSESSABLE = _private("N-JOINTS-NA", "Number of joints not assessable")

# --- Standard codes -------------------------------------------------------------------------

NO_UNITS = Code("1", "UCUM", "no units")
HAND = codes.SCT.Hand  # 85562004
LATERALITY: dict[str, Code] = {"L": codes.SCT.Left, "R": codes.SCT.Right}  # 7771000, 24028007
PROCESSING_EQUIPMENT = codes.DCM.ProcessingEquipment  # 109102
COMMENT = codes.DCM.Comment  # 121106
QUALITATIVE_EVALUATIONS = Code("C0034375", "UMLS", "Qualitative Evaluations")

#: Finding site of each joint of the contract's labels (``{side}_{joint}``, joint part only).
JOINT_SITES: dict[str, Code] = {
    "IP": _private("JOINT-IP1", "Interphalangeal joint of thumb"),
    "PIP2": _private("JOINT-PIP2", "Proximal interphalangeal joint of index finger"),
    "PIP3": _private("JOINT-PIP3", "Proximal interphalangeal joint of middle finger"),
    "PIP4": _private("JOINT-PIP4", "Proximal interphalangeal joint of ring finger"),
    "PIP5": _private("JOINT-PIP5", "Proximal interphalangeal joint of little finger"),
    "MCP1": _private("JOINT-MCP1", "Metacarpophalangeal joint of thumb"),
    "MCP2": Code("289002", "SCT", "Metacarpophalangeal joint of index finger"),
    "MCP3": Code("6059006", "SCT", "Metacarpophalangeal joint of middle finger"),
    "MCP4": _private("JOINT-MCP4", "Metacarpophalangeal joint of ring finger"),
    "MCP5": Code("5493005", "SCT", "Metacarpophalangeal joint of little finger"),
}

_PROCEDURES: dict[str, Code] = {
    "B": Code("26355-8", "LN", "XR Hand - bilateral Arthritis"),
    "L": Code("26356-6", "LN", "XR Hand - left Arthritis"),
    "R": Code("26357-4", "LN", "XR Hand - right Arthritis"),
}
_PROCEDURE_UNKNOWN_SIDE = Code("28582-5", "LN", "XR Hand Views")


def procedure_reported(laterality: str | None) -> Code:
    """The imaging procedure for TID 1500 "Procedure reported", by the image's laterality.

    ``laterality`` is Image Laterality (``L``, ``R``, ``B``) or anything else for unknown.
    """
    return _PROCEDURES.get((laterality or "").strip().upper(), _PROCEDURE_UNKNOWN_SIDE)


def code_item(value: str, scheme: str, meaning: str) -> Dataset:
    """A plain Code Sequence item (PS3.3 8.8), for the sequences an IOD builder fills itself
    rather than through highdicom."""
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item
