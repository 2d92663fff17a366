"""Synthetic hand radiographs with real headers, for the tests that read and write DICOM.

Each is made by :mod:`dicom_io.radiograph`, so its header is one the node itself writes, around
a bright disc ("bone") on a ramp ("soft tissue"). A caller names its own UID root, so that the
objects of different test files never share a UID.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from dicom_io.radiograph import RadiographSpec, StudyIdentity


def study(root: str, patient_name: str, patient_id: str, accession_number: str) -> StudyIdentity:
    """A study of hands PA under ``root`` (its Study Instance UID is ``root.1``)."""
    return StudyIdentity(
        patient_name=patient_name,
        patient_id=patient_id,
        patient_birth_date="19600131",
        patient_sex="F",
        study_instance_uid=f"{root}.1",
        study_id="1",
        accession_number=accession_number,
        study_date="20240102",
        study_time="093000",
        study_description="Hands PA",
    )


def disc_on_ramp(rows: int, columns: int, top: int) -> np.ndarray:
    """Stored values: a disc at 0.8 of ``top`` on 0.2 of it, plus a ramp of 0.1 to the right."""
    yy, xx = np.mgrid[:rows, :columns]
    level = np.where((yy - rows / 2) ** 2 + (xx - columns / 2) ** 2 < (rows / 4) ** 2, 0.8, 0.2)
    return np.rint((level + 0.1 * xx / columns) * top).astype(np.uint16)


def hand_spec(root: str, pixels: np.ndarray, *, bits: int = 12, **changes: Any) -> RadiographSpec:
    """A right hand PA, CR, MONOCHROME2, 0.15 mm pixels, instance ``root.2`` in series
    ``root.3``; ``changes`` replace any of these (and add what the spec leaves out)."""
    spec = RadiographSpec(
        pixels=pixels,
        bits_stored=bits,
        photometric="MONOCHROME2",
        modality="CR",
        pixel_spacing_mm=0.15,
        laterality="R",
        sop_instance_uid=f"{root}.2",
        series_instance_uid=f"{root}.3",
        series_number=1,
        instance_number=1,
        series_description="Hand PA",
        content_date="20240102",
        content_time="093512",
    )
    return dataclasses.replace(spec, **changes)
