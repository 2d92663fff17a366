"""Seconds per phantom image on one core; prints JSON.

    python benchmarks/phantom.py [--count N] [--seed S] [--hands 1|2] [--write]

Generation only by default (pixels and truth); ``--write`` adds writing the DICOM file.
Goal (issue 2): under 1 s per bilateral image on one core.
"""

from __future__ import annotations

import argparse
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scoring.phantom import PhantomConfig, generate_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--hands", type=int, default=2, choices=(1, 2))
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    config = PhantomConfig(hands=args.hands)
    times, megapixels = [], []
    write_times = []
    generate_image(args.seed, 0, config)  # warm-up: imports, FFT plans
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.count):
            start = time.perf_counter()
            image = generate_image(args.seed, i, config)
            times.append(time.perf_counter() - start)
            megapixels.append(image.pixels.size / 1e6)
            if args.write:
                from worker.lab.phantom_export import write_image

                start = time.perf_counter()
                write_image(args.seed, image, Path(tmp))
                write_times.append(time.perf_counter() - start)
    result = {
        "benchmark": "phantom",
        "hands": args.hands,
        "images": args.count,
        "threads": 1,
        "seconds_per_image": {
            "mean": round(statistics.fmean(times), 3),
            "median": round(statistics.median(times), 3),
            "max": round(max(times), 3),
        },
        "megapixels": {
            "mean": round(statistics.fmean(megapixels), 2),
            "max": round(max(megapixels), 2),
        },
        "seconds_per_megapixel": round(sum(times) / sum(megapixels), 4),
        "goal_seconds_per_bilateral_image": 1.0,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
    }
    if write_times:
        result["write_seconds_per_image"] = round(statistics.fmean(write_times), 3)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
