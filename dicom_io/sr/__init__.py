"""The scores as a DICOM Structured Report, and back.

:func:`build_sr` writes a Comprehensive 3D SR whose root is TID 1500 "Measurement Report", laid
out as IHE AI Results (AIR) asks:

* the observer is the algorithm (TID 1004 device observer: device UID, name, manufacturer,
  model name); Procedure Reported is the imaging procedure (LOINC hand radiograph for
  arthritis, by the image's laterality);
* an Image Library (TID 1600) entry for the source radiograph;
* one TID 1410 planar ROI group per joint: tracking identifier (the label, e.g. ``R_PIP3``, and
  a UID), the finding site (the coded joint with its laterality), the joint's box as a closed
  5-point POLYLINE of (column, row) points on the source image, the JSN and erosion grades as
  coded qualitative evaluations and the class probabilities of both networks as measurements;
* a joint the model will not grade keeps its group, region and finding site, but both
  sub-scores have the coded value "Not assessable" instead of a grade, and the reason follows as
  a TEXT qualitative evaluation (its class probabilities, if the model gave any, stay as they
  are: they are what the model said, not a grade);
* one TID 1501 group per hand (finding site Hand with laterality) and one for the image, with
  the SvdH JSN and erosion totals over the assessable joints, the number of joints they cover
  ("Number of joints scored") and the number left out as not assessable;
* TID 4019 algorithm identification (name, version, manufacturer) in every group;
* a TID 1500 "Qualitative Evaluations" container with the not-for-diagnostic-use comment;
* the algorithm in the Contributing Equipment Sequence (purpose: Processing Equipment;
  manufacturer, model name, software version, Device UID), VerificationFlag UNVERIFIED,
  PreliminaryFlag PRELIMINARY, and a Series Description that says it is not for diagnosis.

An image with no joints gives a report without measurement groups: TID 1500 needs at least one
of its Imaging Measurements or Qualitative Evaluations containers, and the latter holds the
note and says that no joint was found.

Coordinates: SCOORD image coordinates put (0, 0) at the top left corner of the top left pixel,
so the box ``(x, y, w, h)`` (pixels x..x+w-1, y..y+h-1) is the polygon (x, y), (x+w, y),
(x+w, y+h), (x, y+h), (x, y). Graphic Data is 32-bit float, exact for these integers.

Probabilities: highdicom writes a Python float both as Numeric Value (DS, rounded to 16
characters, for display) and as Floating Point Value (FD, the exact IEEE double);
:func:`read_sr` reads the FD, so probabilities round-trip bit for bit. Integers (totals, counts)
are written as DS only.

:func:`read_sr` turns such a report back into the :class:`~dicom_io.results.ScoringResult`
(labels, boxes, grades, probabilities, model) and checks that the totals agree with the joints.

The package: ``build`` (:func:`build_sr`, and :func:`~dicom_io.sr.build.build_sr_reference`,
the same report with every content item through highdicom, 4-10 times slower, kept as what the
fast one is tested equal to), ``fast`` (the Imaging Measurements container as plain pydicom),
``read`` (:func:`read_sr`) and ``template`` (what both agree on); ``study`` and
``study_read`` (:func:`build_study_sr`, :func:`read_study_sr`: the study SR, both hands of a
study and its progression, with ``study_template``). It imports highdicom, pydicom and
``dicom_io.results`` (and ``study_results``), ``dicom_io.codes`` and
``dicom_io.source_header``; never ``scoring`` or ``worker``.
"""

from dicom_io.sr.build import build_sr
from dicom_io.sr.read import read_sr
from dicom_io.sr.study import build_study_sr
from dicom_io.sr.study_read import read_study_sr
from dicom_io.sr.template import NO_JOINTS_TEXT, SERIES_DESCRIPTION, SRFormatError

__all__ = [
    "NO_JOINTS_TEXT",
    "SERIES_DESCRIPTION",
    "SRFormatError",
    "build_sr",
    "build_study_sr",
    "read_sr",
    "read_study_sr",
]
