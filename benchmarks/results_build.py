"""Milliseconds to build (and serialise) the overlay SC and the GSPS of phantoms, and the SC's
size; JSON. Medians of CPU time (single-threaded OpenCV), which a busy shared machine disturbs
less than wall time.

    taskset -c 0 python benchmarks/results_build.py [--images N] [--repeat N]

``decode``: from the whole source, as before issue 13 (the SC decodes it; the GSPS of a source
without a window decodes it for the histogram window). ``kept``: from the header alone (read
without pixels) plus what scoring keeps, the overlay's grey PNG (read here, timed) and the
window; the source's window is removed so the GSPS needs the kept one; ``build_task``: SR,
SC and GSPS as the node's build makes them (header, grey copy, three builds, serialised).
``rle``: the kept SC
encoded RLE Lossless, its encode time and size beside the native one. On a tree without the
kept path (before the change) only ``decode`` is measured.
"""

from __future__ import annotations

import argparse
import inspect
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import pydicom
from pydicom.filebase import DicomBytesIO

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dicom_io.pr import build_gsps
from dicom_io.reading import read_radiograph
from dicom_io.results import EROSION_GRADES, JSN_GRADES, JointResult, ModelInfo, ScoringResult
from dicom_io.sc import build_overlay_sc
from scoring.phantom import generate_image
from worker.lab.phantom_export import write_image

MODEL = ModelInfo("bench", "0", "1.2.826.0.1.3680043.10.543.77.9.9", "rascore")
WINDOW_TAGS = ("WindowCenter", "WindowWidth", "WindowCenterWidthExplanation", "VOILUTSequence")


def _probabilities(grade: int, n: int) -> tuple[float, ...]:
    weights = [1.0 / (1 + 3 * abs(k - grade)) for k in range(n)]
    return tuple(w / sum(weights) for w in weights)


def _result(source: pydicom.Dataset, truth: dict[str, Any]) -> ScoringResult:
    joints = tuple(
        JointResult(
            label=j["label"],
            box=(int(j["box"][0]), int(j["box"][1]), int(j["box"][2]), int(j["box"][3])),
            jsn=int(j["jsn"]),
            erosion=int(j["erosion"]),
            jsn_probs=_probabilities(int(j["jsn"]), JSN_GRADES),
            erosion_probs=_probabilities(int(j["erosion"]), EROSION_GRADES),
        )
        for j in truth["joints"]
    )
    return ScoringResult(str(source.SOPInstanceUID), joints, MODEL)


def _ms(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    out = fn()
    seconds = []
    for _ in range(repeat):
        start = time.process_time()
        out = fn()
        seconds.append(time.process_time() - start)
    return statistics.median(seconds) * 1e3, out


def _serialised(ds: pydicom.Dataset) -> bytes:
    buffer = DicomBytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return bytes(buffer.getvalue())


def _one(path: Path, record: dict[str, Any], repeat: int, kept: bool) -> dict[str, float]:
    full = pydicom.dcmread(path)
    for tag in WINDOW_TAGS:  # a source without a window: the GSPS needs the histogram one
        if tag in full:
            del full[tag]
    result = _result(full, record)
    out: dict[str, float] = {}
    out["sc_decode_ms"], sc = _ms(lambda: _serialised(build_overlay_sc(full, result)), repeat)
    out["gsps_decode_ms"], _ = _ms(lambda: _serialised(build_gsps(full, result)), repeat)
    out["sc_bytes_decode"] = len(sc)
    if not kept:
        return out
    from dicom_io.sc import overlay_grey

    image = read_radiograph(full)
    window = (*image.window, image.window_explanation)
    png = Path(path).with_suffix(".png")
    cv2.imwrite(str(png), overlay_grey(image.pixels), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    header = pydicom.dcmread(path, stop_before_pixels=True)
    for tag in WINDOW_TAGS:
        if tag in header:
            del header[tag]

    def sc_kept() -> bytes:
        grey = cv2.imread(str(png), cv2.IMREAD_GRAYSCALE)
        return _serialised(build_overlay_sc(header, result, grey=grey))

    out["sc_kept_ms"], sc_bytes = _ms(sc_kept, repeat)
    out["gsps_kept_ms"], _ = _ms(
        lambda: _serialised(build_gsps(header, result, window=window)), repeat
    )
    out["sc_bytes_kept"] = len(sc_bytes)
    out["grey_png_bytes"] = png.stat().st_size
    out["build_task_ms"], _ = _ms(lambda: _build_task(path, png, result, window), repeat)
    _rle(out, header, result, png, repeat)
    return out


def _build_task(path: Path, png: Path, result: ScoringResult, window: Any) -> list[bytes]:
    """What the node's build does for a scored job: the header, the grey copy, SR, SC, GSPS."""
    from dicom_io.reading import read_dicom
    from dicom_io.sr import build_sr

    header = read_dicom(path, pixels=False)
    for tag in WINDOW_TAGS:
        if tag in header:
            del header[tag]
    grey = cv2.imread(str(png), cv2.IMREAD_GRAYSCALE)
    return [
        _serialised(build_sr(header, result)),
        _serialised(build_overlay_sc(header, result, grey=grey)),
        _serialised(build_gsps(header, result, window=window)),
    ]


def _rle(out: dict[str, float], header: Any, result: ScoringResult, png: Path, n: int) -> None:
    from pydicom.uid import RLELossless

    sc = build_overlay_sc(header, result, grey=cv2.imread(str(png), cv2.IMREAD_GRAYSCALE))

    def encode() -> bytes:
        ds = pydicom.dcmread(DicomBytesIO(_serialised(sc)))
        ds.compress(RLELossless, encoding_plugin="pylibjpeg")
        return _serialised(ds)

    out["sc_rle_encode_ms"], rle = _ms(encode, n)
    out["sc_bytes_rle"] = len(rle)
    out["sc_rle_decompress_ms"], _ = _ms(lambda: _decompressed(rle), n)


def _decompressed(data: bytes) -> bytes:
    """What the SCU does for a peer that accepts only uncompressed: read, decompress, and
    (as pynetdicom does to send it) encode native."""
    ds = pydicom.dcmread(DicomBytesIO(data))
    ds.decompress()
    return _serialised(ds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    kept = "grey" in inspect.signature(build_overlay_sc).parameters
    per: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for i in range(args.images):
            record = write_image(2, generate_image(2, i), Path(folder))
            figures = _one(Path(folder) / record["file"], record, args.repeat, kept)
            for key, value in figures.items():
                per.setdefault(key, []).append(value)
    medians = {k: round(statistics.median(v), 1) for k, v in per.items()}
    print(json.dumps({"images": args.images, "repeat": args.repeat, **medians}, indent=2))


if __name__ == "__main__":
    main()
