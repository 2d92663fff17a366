"""What the study SR holds that its builder and reader agree on: private concepts and names.

The concepts are in the private scheme ``99RASCORE`` (declared in every report, see
:mod:`dicom_io.codes`): no standard codes exist for SvdH study totals or their change. Units
are UCUM: ``a`` (year) for the time between studies, ``/a`` (per year) for rates.
"""

from __future__ import annotations

from pydicom.sr.coding import Code

from dicom_io.codes import SCHEME_DESIGNATOR


def _private(value: str, meaning: str) -> Code:
    if len(value) > 16 or len(meaning) > 64:  # SH and LO limits of Code Value / Code Meaning
        raise ValueError(f"code too long: {value!r} {meaning!r}")
    return Code(value, SCHEME_DESIGNATOR, meaning)


STUDY_SERIES_DESCRIPTION = "RA joint scores of the study (SvdH) - NOT FOR DIAGNOSTIC USE"
STUDY_TOTALS_ID = "study totals"
COMPARISON_ID = "progression since {against} study"  #: against: previous | first
JOINT_ID = "{label}"

TOTAL_JSN_STUDY = _private("TOT-JSN-STUDY", "Total SvdH JSN score of study")
TOTAL_EROSION_STUDY = _private("TOT-ERO-STUDY", "Total SvdH erosion score of study")
IMAGES_LEFT_OUT = _private("N-IMG-LEFT-OUT", "Number of images of the study left out")
CHOICE = _private("SRC-CHOICE", "Choice among images of the same hand")
OTHER_IMAGE = _private("SRC-OTHER", "Other image of the same hand, not used")
PRIOR_REPORT = _private("PRIOR-REPORT", "Report of the earlier study")
PRIOR_STUDY = _private("PRIOR-STUDY-UID", "Study Instance UID of the earlier study")
PRIOR_DATE = _private("PRIOR-DATE", "Study Date of the earlier study")
YEARS = _private("YEARS-BETWEEN", "Years between the Study Dates")
CHANGE_JSN = _private("CHG-JSN", "Change in SvdH JSN score")
CHANGE_EROSION = _private("CHG-ERO", "Change in SvdH erosion score")
CHANGE_TOTAL = _private("CHG-TOT", "Change in total SvdH score")
RATE_JSN = _private("RATE-JSN", "Change in SvdH JSN score per year")
RATE_EROSION = _private("RATE-ERO", "Change in SvdH erosion score per year")
RATE_TOTAL = _private("RATE-TOT", "Change in total SvdH score per year")
JOINTS_COMPARED = _private("N-COMPARED", "Number of joints compared")
JOINTS_LEFT_OUT = _private("N-LEFT-OUT", "Number of joints left out of the comparison")
LEFT_OUT = _private("LEFT-OUT", "Joints left out of the comparison")

YEAR = Code("a", "UCUM", "year")
PER_YEAR = Code("/a", "UCUM", "per year")
