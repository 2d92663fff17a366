"""Milliseconds to decode and window one 2,500 × 2,000 16-bit radiograph; prints JSON.

    python benchmarks/decode.py [--runs N] [--seed S]

The image is a phantom radiograph (scoring.phantom) cropped and resized to 2,500 rows ×
2,000 columns, scaled to 16 bits stored and written by dicom_io.radiograph as a DX (with its
window) in each transfer syntax; each case times ``read_radiograph(path)`` from a warm page
cache: parsing the file, decoding, the modality LUT, the VOI and the inversion. "histogram"
cases strip the window so that the reader has to find one in the anatomy.
Goal (issue 3): under 50 ms uncompressed. Issue 13 asks for each syntax: uncompressed, JPEG 2000
and JPEG-LS lossless are written by dicom_io.radiograph; RLE Lossless is the uncompressed file
compressed by pydicom and JPEG Lossless (SV1) by dcmtk's ``dcmcjpeg``, since dicom_io writes
neither. A syntax that cannot be written or read here is reported with the reason, not timed.

"bombs" (issue 11) times the refusal of two decompression bombs behind a 100 × 100 header and
the reader's peak memory above what the process held before (the kernel's VmHWM, reset first):
an 82-byte JPEG 2000 codestream that claims 16,000² pixels, and a 2 MB deflated data set whose
Pixel Data inflates to 512 MB. Goal: refused, under 200 MB (the node's bound is 500 MB).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import cv2
import numpy as np
import pydicom
from pydicom.encaps import encapsulate
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test radiographs

from radiographs import hand_spec, study

from dicom_io.radiograph import RadiographSpec, StudyIdentity, build_radiograph, write_radiograph
from dicom_io.reading import UnreadableImage, read_radiograph
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


def other_syntaxes(uncompressed: Path, out: Path) -> dict[str, Path | str]:
    """RLE and JPEG Lossless copies of ``uncompressed``, or why one could not be written."""
    cases: dict[str, Path | str] = {}
    try:
        ds = pydicom.dcmread(uncompressed)
        ds.compress(RLELossless)
        ds.save_as(out / "rle_lossless.dcm")
        cases["rle_lossless"] = out / "rle_lossless.dcm"
    except Exception as exc:  # a missing encoder is a result here
        cases["rle_lossless"] = f"not written: {type(exc).__name__}: {exc}"
    if shutil.which("dcmcjpeg") is None:
        cases["jpeg_lossless_sv1"] = "not written: dcmtk's dcmcjpeg not installed"
    else:
        target = out / "jpeg_lossless_sv1.dcm"
        run = subprocess.run(
            ["dcmcjpeg", "+e1", str(uncompressed), str(target)], capture_output=True, text=True
        )
        cases["jpeg_lossless_sv1"] = (
            target if run.returncode == 0 else f"not written: dcmcjpeg {run.stderr[-200:]}"
        )
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


def small_header() -> pydicom.Dataset:
    """A 100 × 100 DX header (with its 20 kB of pixels) that the bombs hide behind."""
    pixels = np.full((100, 100), 1000, np.uint16)
    spec = hand_spec(ROOT, pixels, sop_instance_uid=f"{ROOT}.9", series_description="Bomb")
    return build_radiograph(spec, study(ROOT, "BOMB", "BOMB-1", "B1"))


def j2k_bomb(path: Path, side: int = 16000) -> Path:
    """One tile, no wavelet levels, one empty packet: a valid codestream of side² pixels."""
    siz = (
        struct.pack(">HHIIIIIIIIH", 41, 0, side, side, 0, 0, side, side, 0, 0, 1) + b"\x0b\x01\x01"
    )
    cod = struct.pack(">HBBHBBBBBB", 12, 0, 0, 1, 0, 0, 4, 4, 0, 1)
    tile = b"\xff\x90" + struct.pack(">HHIBB", 10, 0, 15, 0, 1) + b"\xff\x93\x00"
    codestream = b"\xff\x4f\xff\x51" + siz + b"\xff\x52" + cod + b"\xff\x5c\x00\x04\x40\x60"
    ds = small_header()
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.PixelData = encapsulate([codestream + tile + b"\xff\xd9"])
    ds["PixelData"].VR, ds["PixelData"].is_undefined_length = "OB", True
    ds.save_as(path, enforce_file_format=True)
    return path


def deflate_bomb(path: Path, pixel_bytes: int = 512 << 20) -> Path:
    """A deflated file whose Pixel Data holds ``pixel_bytes`` bytes of zeros."""
    ds = small_header()
    del ds.PixelData
    body, meta = DicomBytesIO(), DicomBytesIO()
    for buffer in (body, meta):
        buffer.is_little_endian, buffer.is_implicit_VR = True, False
    write_dataset(body, ds)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    write_file_meta_info(meta, ds.file_meta, enforce_standard=True)
    squeeze = zlib.compressobj(1, zlib.DEFLATED, -zlib.MAX_WBITS)
    zeros = bytes(1 << 20)
    with path.open("wb") as out:
        out.write(b"\x00" * 128 + b"DICM" + meta.getvalue() + squeeze.compress(body.getvalue()))
        out.write(squeeze.compress(b"\xe0\x7f\x10\x00OW\x00\x00" + struct.pack("<I", pixel_bytes)))
        for start in range(0, pixel_bytes, len(zeros)):
            out.write(squeeze.compress(zeros[: pixel_bytes - start]))
        out.write(squeeze.flush())
    return path


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def refuse(path: Path) -> dict[str, float | str]:
    """Time and peak memory (above the process's RSS before) of reading a bomb."""
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    before = _status_mb("VmRSS")
    start = time.perf_counter()
    try:
        read_radiograph(path)
        outcome = "read (not refused)"
    except UnreadableImage as exc:
        outcome = f"{type(exc).__name__}: {exc}"
    return {
        "ms": round((time.perf_counter() - start) * 1000.0, 2),
        "growth_mb": round(_status_mb("VmHWM") - before, 1),
        "file_kb": round(path.stat().st_size / 1024, 1),
        "outcome": outcome,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory(prefix="rascore-bench-") as tmp:
        cases = write_cases(Path(tmp), args.seed)
        results: dict[str, dict[str, float | str]] = {
            name: time_reads(path, args.runs) for name, path in cases.items()
        }
        for name, case in other_syntaxes(cases["uncompressed"], Path(tmp)).items():
            if isinstance(case, str):
                results[name] = {"error": case}
                continue
            try:
                results[name] = time_reads(case, args.runs)
            except Exception as exc:  # a missing decoder is a result here
                results[name] = {"error": f"not read: {type(exc).__name__}: {exc}"[:300]}
        bombs = {
            "j2k_16000_behind_100": refuse(j2k_bomb(Path(tmp) / "j2k_bomb.dcm")),
            "deflate_512mb_behind_100": refuse(deflate_bomb(Path(tmp) / "deflate_bomb.dcm")),
        }
    uncompressed = float(results["uncompressed"]["median_ms"])
    print(
        json.dumps(
            {
                "benchmark": "decode",
                "image": {"rows": ROWS, "columns": COLUMNS, "bits_stored": 16},
                "runs": args.runs,
                "what": "read_radiograph(path): parse, decode, modality LUT, VOI, inversion",
                "milliseconds": {
                    name: r.get("median_ms", r.get("error")) for name, r in results.items()
                },
                "cases": results,
                "goal_ms": {"uncompressed": GOAL_MS},
                "meets_goal": uncompressed < GOAL_MS,
                "bombs": bombs,
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
