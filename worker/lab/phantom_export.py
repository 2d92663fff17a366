"""Phantom images (scoring) written as DICOM studies (dicom_io), with their truth.json.

The phantom knows pixels, geometry and labels; dicom_io knows DICOM; this module is where the
two meet (DESIGN.md, Layout).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    generate_uid,
)

from dicom_io.radiograph import RadiographSpec, StudyIdentity, write_radiograph
from scoring.phantom import GENERATOR_VERSION, PhantomConfig, PhantomImage

TRANSFER_SYNTAXES = {
    "explicit": ExplicitVRLittleEndian,
    "jpeg2000-lossless": JPEG2000Lossless,
    "jpegls-lossless": JPEGLSLossless,
}
_FIRST_STUDY_DATE = dt.date(2026, 1, 5)


def _uid(seed: int, *parts: object) -> str:
    """A UID derived from the seed, so the same seed gives byte-identical files."""
    return str(
        generate_uid(
            entropy_srcs=["rascore-phantom", GENERATOR_VERSION, str(seed)] + [str(p) for p in parts]
        )
    )


def study_identity(seed: int, image: PhantomImage) -> StudyIdentity:
    """Patient and study of ``image``: obviously synthetic, the same for both hands."""
    patient = image.patient
    date = _FIRST_STUDY_DATE + dt.timedelta(days=patient.index)
    return StudyIdentity(
        patient_name=f"PHANTOM^HAND {seed}-{patient.index:04d}",
        patient_id=f"PHANTOM-{seed}-{patient.index:04d}",
        patient_birth_date=f"{date.year - patient.age}0701",
        patient_sex=patient.sex,
        study_instance_uid=_uid(seed, "study", patient.index),
        study_id=f"{patient.index % 10000:04d}",
        accession_number=f"PH{seed % 10000:04d}{patient.index:06d}"[:16],
        study_date=date.strftime("%Y%m%d"),
        study_time="093000",
        study_description="XR HANDS PA (SYNTHETIC PHANTOM)",
    )


def radiograph_spec(seed: int, image: PhantomImage) -> RadiographSpec:
    acq = image.acquisition
    sides = "both hands" if image.laterality == "B" else f"{image.hands[0]} hand"
    return RadiographSpec(
        pixels=image.pixels,
        bits_stored=acq.bits_stored,
        photometric=acq.photometric,
        modality=acq.modality,
        pixel_spacing_mm=acq.pixel_spacing_mm,
        laterality=image.laterality,
        sop_instance_uid=_uid(seed, "image", image.image_index),
        series_instance_uid=_uid(seed, "series", image.image_index),
        series_number=1 + image.image_index % 2 if len(image.hands) == 1 else 1,
        instance_number=1,
        series_description=f"Hand PA, {sides} (synthetic phantom)",
        content_date=(_FIRST_STUDY_DATE + dt.timedelta(days=image.patient.index)).strftime(
            "%Y%m%d"
        ),
        content_time="093000",
        rescale=acq.rescale,
        window=acq.window,
        transfer_syntax_uid=TRANSFER_SYNTAXES[acq.encoding],
        kvp=acq.kvp,
        exposure_mas=max(round(acq.exposure_mas), 1),
    )


def file_name(image: PhantomImage) -> str:
    return f"phantom_{image.image_index:05d}.dcm"


def write_image(seed: int, image: PhantomImage, out: Path) -> dict[str, Any]:
    """Write one image; return its truth.json record."""
    spec = radiograph_spec(seed, image)
    study = study_identity(seed, image)
    name = file_name(image)
    write_radiograph(spec, study, out / name)
    return {
        "file": name,
        "sop_instance_uid": spec.sop_instance_uid,
        "study_instance_uid": study.study_instance_uid,
        "patient_index": image.patient.index,
        "severity": round(image.patient.severity, 3),
        "hands": list(image.hands),
        "acquisition": asdict(image.acquisition),
        "joints": [
            {
                "label": j.label,
                "center": list(j.center),
                "box": list(j.box),
                "jsn": j.jsn,
                "erosion": j.erosion,
                "joint_type": j.joint_type,
                "axis": list(j.axis),
                "jsn_form": j.jsn_form,
                "erosion_surfaces": list(j.erosion_surfaces),
                "gap_mm": j.gap_mm,
                "normal_gap_mm": j.normal_gap_mm,
                "width_mm": j.width_mm,
                "osteopenia": j.osteopenia,
                "swelling_mm": j.swelling,
            }
            for j in image.joints
        ],
    }


def generator_record(seed: int, count: int, config: PhantomConfig) -> dict[str, Any]:
    return {
        "version": GENERATOR_VERSION,
        "seed": seed,
        "count": count,
        "hands": config.hands,
        "distribution": config.distribution,
        "modalities": list(config.modalities),
        "photometrics": list(config.photometrics),
        "encodings": list(config.encodings),
        "note": "Synthetic phantom with exact labels. Not patient data. Not for diagnostic use.",
    }
