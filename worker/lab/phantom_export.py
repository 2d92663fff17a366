"""Phantom images (scoring) written as DICOM studies (dicom_io), with their truth.json.

The phantom knows pixels, geometry and labels; dicom_io knows DICOM; this module is where the
two meet (DESIGN.md, Layout).
"""

from __future__ import annotations

import datetime as dt
import json
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
from scoring.phantom import GENERATOR_VERSION, PhantomConfig, PhantomImage, study_layout
from scoring.phantom.visits import course, generate_visit_image

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


def _visit_tag(image: PhantomImage) -> tuple[object, ...]:
    """What tells a follow-up visit's UIDs apart; nothing for a single set (its UIDs as ever)."""
    return () if image.visit is None else ("visit", image.visit.number)


def study_date(image: PhantomImage) -> dt.date:
    """The day of the image's study: a day per patient, and a follow-up's days after that."""
    days = 0 if image.visit is None else image.visit.days
    return _FIRST_STUDY_DATE + dt.timedelta(days=image.patient.index + days)


def study_identity(seed: int, image: PhantomImage) -> StudyIdentity:
    """Patient and study of ``image``: obviously synthetic, the same for both hands.

    Every visit of a follow-up set is the same patient (name, ID, birth date from the first
    visit's age) in a study of its own: its Study Instance UID, Study ID and Accession Number.
    """
    patient = image.patient
    first = _FIRST_STUDY_DATE + dt.timedelta(days=patient.index)
    visit = image.visit
    return StudyIdentity(
        patient_name=f"PHANTOM^HAND {seed}-{patient.index:04d}",
        patient_id=f"PHANTOM-{seed}-{patient.index:04d}",
        patient_birth_date=f"{first.year - patient.age}0701",
        patient_sex=patient.sex,
        study_instance_uid=_uid(seed, "study", patient.index, *_visit_tag(image)),
        study_id=f"{patient.index % 10000:04d}" + ("" if visit is None else f"V{visit.number}"),
        accession_number=(
            f"PH{seed % 10000:04d}{patient.index:06d}"
            + ("" if visit is None else f"V{visit.number}")
        )[:16],
        study_date=study_date(image).strftime("%Y%m%d"),
        study_time="093000",
        study_description="XR HANDS PA (SYNTHETIC PHANTOM)",
    )


def radiograph_spec(seed: int, image: PhantomImage) -> RadiographSpec:
    acq = image.acquisition
    sides = "both hands" if image.laterality == "B" else f"{image.hands[0]} hand"
    tag = _visit_tag(image)
    return RadiographSpec(
        pixels=image.pixels,
        bits_stored=acq.bits_stored,
        photometric=acq.photometric,
        modality=acq.modality,
        pixel_spacing_mm=acq.pixel_spacing_mm,
        laterality=image.laterality,
        sop_instance_uid=_uid(seed, "image", image.image_index, *tag),
        series_instance_uid=_uid(seed, "series", image.image_index, *tag),
        series_number=1 + image.image_index % 2 if len(image.hands) == 1 else 1,
        instance_number=1,
        series_description=f"Hand PA, {sides} (synthetic phantom)",
        content_date=study_date(image).strftime("%Y%m%d"),
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
        **_visit_record(image, study),
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


def _visit_record(image: PhantomImage, study: StudyIdentity) -> dict[str, Any]:
    """A follow-up image's patient key, visit and dates, for checking a timeline against."""
    if image.visit is None:
        return {}
    return {
        "patient_id": study.patient_id,
        "accession_number": study.accession_number,
        "visit": image.visit.number,
        "study_date": study.study_date,
        "days_since_first_visit": image.visit.days,
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


VISITS_FILE = "visits.json"


def visit_folder(number: int) -> str:
    """A follow-up set's folder of visit ``number``: ``visit-1``, ``visit-2``, …"""
    return f"visit-{number}"


def write_visit_image(args: tuple[int, int, int, int, float, PhantomConfig, str]) -> dict[str, Any]:
    """Image ``index`` at visit ``number`` written into its visit's folder under ``out``; its
    truth.json record (a pool task: ``(seed, index, number, visits, years_apart, config,
    out)``)."""
    seed, index, number, visits, years_apart, config, out = args
    patient_index, _ = study_layout(index, config.hands)
    patient_course = course(seed, patient_index, visits, years_apart, config)
    image = generate_visit_image(seed, index, number, patient_course, config)
    folder = Path(out) / visit_folder(number)
    folder.mkdir(parents=True, exist_ok=True)
    return write_image(seed, image, folder)


def write_visit_truth(
    out: Path,
    seed: int,
    count: int,
    visits: int,
    years_apart: float,
    config: PhantomConfig,
    records: list[dict[str, Any]],
) -> dict[str, Any]:
    """Each visit folder's truth.json (the single set's format, each image with its patient,
    visit and date) and ``out/visits.json``, every patient's timeline: course, and per visit
    the study, its date and the true JSN and erosion totals. Returns visits.json's content."""
    for number in range(1, visits + 1):
        mine = sorted((r for r in records if r["visit"] == number), key=lambda r: r["file"])
        generator = generator_record(seed, count, config) | {
            "visit": number,
            "visits": visits,
            "years_apart": years_apart,
        }
        truth = {"generator": generator, "images": mine}
        (out / visit_folder(number) / "truth.json").write_text(json.dumps(truth, indent=1))
    timeline = {
        "generator": generator_record(seed, count, config)
        | {
            "visits": visits,
            "years_apart": years_apart,
        },
        "patients": [
            _patient_timeline(seed, patient_index, visits, years_apart, config, records)
            for patient_index in sorted({r["patient_index"] for r in records})
        ],
    }
    (out / VISITS_FILE).write_text(json.dumps(timeline, indent=1))
    return timeline


def _patient_timeline(
    seed: int,
    patient_index: int,
    visits: int,
    years_apart: float,
    config: PhantomConfig,
    records: list[dict[str, Any]],
) -> dict[str, Any]:
    patient_course = course(seed, patient_index, visits, years_apart, config)
    mine = [r for r in records if r["patient_index"] == patient_index]
    rows = []
    for number in range(1, visits + 1):
        images = [r for r in mine if r["visit"] == number]
        joints = [j for r in images for j in r["joints"]]
        first = images[0]
        rows.append(
            {
                "visit": number,
                "folder": visit_folder(number),
                "study_instance_uid": first["study_instance_uid"],
                "accession_number": first["accession_number"],
                "study_date": first["study_date"],
                "days_since_first_visit": first["days_since_first_visit"],
                "files": [r["file"] for r in images],
                "joints": len(joints),
                "jsn_total": sum(j["jsn"] for j in joints),
                "erosion_total": sum(j["erosion"] for j in joints),
            }
        )
    return {
        "patient_id": mine[0]["patient_id"],
        "patient_index": patient_index,
        "course": patient_course.course,
        "points_per_year": round(patient_course.points_per_year, 2),
        "visits": rows,
    }
