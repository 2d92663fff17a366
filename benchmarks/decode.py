"""Milliseconds to decode and window one 2,500 × 2,000 16-bit radiograph; prints JSON.

    python benchmarks/decode.py [--runs N] [--seed S]

The image is a phantom radiograph (scoring.phantom) cropped and resized to 2,500 rows ×
2,000 columns, scaled to 16 bits stored and written by dicom_io.writing as a DX (with its
window) in each transfer syntax; each case times ``read_radiograph(path)`` from a warm page
cache: parsing the file, decoding, the modality LUT, the VOI and the inversion. "histogram"
cases strip the window so that the reader has to find one in the anatomy.
Goal (issue 3): under 50 ms uncompressed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import cv2
import numpy as np
import pydicom
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, JPEGLSLossless

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dicom_io.reading import read_radiograph
from dicom_io.writing import RadiographSpec, StudyIdentity, write_radiograph
from scoring.phantom import generate_image

ROWS, COLUMNS = 2500, 2000
GOAL_MS = 50.0
ROOT = "1.2.826.0.1.3680043.10.543.77"  # benchmark UIDs only


def phantom_16bit(seed: int) -> tuple[np.ndarray, str, float]:
    """(stored pixels, photometric, spacing): a centre crop of 4:5, resized to 2,500 × 2,000."""
    image = generate_image(seed, 0)
    acq = image.acquisition
    px: np.ndarray = image.pixels.astype(np.float32) * np.float32(
        65535.0 / (2**acq.bits_stored - 1)
    )
    rows, columns = px.shape
    if rows * COLUMNS < columns * ROWS:  # too wide: crop columns
        keep = rows * COLUMNS // ROWS
        px = px[:, (columns - keep) // 2 : (columns - keep) // 2 + keep]
    else:
        keep = columns * ROWS // COLUMNS
        px = px[(rows - keep) // 2 : (rows - keep) // 2 + keep, :]
    spacing = acq.pixel_spacing_mm * px.shape[0] / ROWS
    px = cv2.resize(px, (COLUMNS, ROWS), interpolation=cv2.INTER_AREA)
    stored = np.clip(np.rint(px), 0, 65535).astype(np.uint16)
    return stored, acq.photometric, spacing


def write_cases(out: Path, seed: int) -> dict[str, Path]:
    pixels, photometric, spacing = phantom_16bit(seed)
    # A window on the anatomy, as a DX For Presentation must carry one.
    lo, hi = (float(v) for v in np.percentile(pixels[::4, ::4], (60.0, 99.8)))
    if photometric == "MONOCHROME1":
        lo, hi = (float(v) for v in np.percentile(pixels[::4, ::4], (0.2, 40.0)))
    study = StudyIdentity(
        patient_name="BENCHMARK^DECODE",
        patient_id="BENCH-0001",
        patient_birth_date="",
        patient_sex="",
        study_instance_uid=f"{ROOT}.1",
        study_id="1",
        accession_number="BENCH1",
        study_date="20260105",
        study_time="093000",
        study_description="Decode benchmark (synthetic phantom)",
    )
    spec = RadiographSpec(
        pixels=pixels,
        bits_stored=16,
        photometric=photometric,  # type: ignore[arg-type]
        modality="DX",
        pixel_spacing_mm=round(spacing, 4),
        laterality="B",
        sop_instance_uid=f"{ROOT}.2",
        series_instance_uid=f"{ROOT}.3",
        series_number=1,
        instance_number=1,
        series_description="Decode benchmark",
        content_date="20260105",
        content_time="093000",
        rescale=(1.0, 0.0),
        window=((lo + hi) / 2.0, max(hi - lo, 1.0)),
    )
    cases: dict[str, Path] = {}
    for name, ts in (
        ("uncompressed", ExplicitVRLittleEndian),
        ("jpeg2000_lossless", JPEG2000Lossless),
        ("jpegls_lossless", JPEGLSLossless),
    ):
        path = write_radiograph(
            dataclasses.replace(spec, transfer_syntax_uid=ts), study, out / f"{name}.dcm"
        )
        cases[name] = path
        # The same file without a window: the reader makes one from the histogram.
        ds = pydicom.dcmread(path)
        for keyword in ("WindowCenter", "WindowWidth", "WindowCenterWidthExplanation"):
            delattr(ds, keyword)
        ds.save_as(out / f"{name}_histogram.dcm")
        cases[f"{name}_histogram"] = out / f"{name}_histogram.dcm"
    return cases


def time_reads(path: Path, runs: int) -> dict[str, float | str]:
    read_radiograph(path)  # warm-up: imports, plugin discovery, page cache
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        image = read_radiograph(path)
        times.append((time.perf_counter() - start) * 1000.0)
        assert image.pixels.shape == (ROWS, COLUMNS)
    return {
        "median_ms": round(statistics.median(times), 2),
        "min_ms": round(min(times), 2),
        "max_ms": round(max(times), 2),
        "file_kb": round(path.stat().st_size / 1024),
        "decoder": image.decoder,
        "voi": image.voi,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory(prefix="rascore-bench-") as tmp:
        cases = write_cases(Path(tmp), args.seed)
        results = {name: time_reads(path, args.runs) for name, path in cases.items()}
    uncompressed = float(results["uncompressed"]["median_ms"])
    print(
        json.dumps(
            {
                "benchmark": "decode",
                "image": {"rows": ROWS, "columns": COLUMNS, "bits_stored": 16},
                "runs": args.runs,
                "what": "read_radiograph(path): parse, decode, modality LUT, VOI, inversion",
                "milliseconds": {name: r["median_ms"] for name, r in results.items()},
                "cases": results,
                "goal_ms": {"uncompressed": GOAL_MS},
                "meets_goal": uncompressed < GOAL_MS,
                "machine": {
                    "python": platform.python_version(),
                    "numpy": np.__version__,
                    "pydicom": pydicom.__version__,
                    "cpus": os.cpu_count(),
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
