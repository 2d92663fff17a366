"""Seconds per radiograph for read + detect + identify + score, one core; prints JSON.

    python benchmarks/score.py [--count N] [--seed S] [--model DIR]

Phantoms (bilateral, uncompressed DICOM) are written to a temporary folder first; the timings
cover what `rascore score` does per file with the model already loaded.
Goal (issue 4): at most 0.10 s per radiograph on one core.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scoring.phantom import generate_image
from scoring.pipeline import Scorer
from worker.lab.phantom_export import write_image
from worker.scoring_io import score_file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--seed", type=int, default=4242)
    parser.add_argument("--model", type=Path, default=None)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    scorer = Scorer.load(args.model)
    stages: dict[str, list[float]] = {}
    pixels = []
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i in range(args.count):
            image = generate_image(args.seed, i)
            files.append(Path(tmp) / write_image(args.seed, image, Path(tmp))["file"])
            pixels.append(image.pixels.size / 1e6)
        score_file(scorer, files[0])  # warm-up
        for path in files:
            for stage, ms in score_file(scorer, path).timings_ms.items():
                stages.setdefault(stage, []).append(ms)
    result = {
        "benchmark": "score",
        "images": args.count,
        "megapixels_mean": round(statistics.fmean(pixels), 2),
        "threads": 1,
        "model": scorer.bundle.version,
        "milliseconds": {
            stage: {
                "median": round(statistics.median(v), 1),
                "p95": round(sorted(v)[int(0.95 * (len(v) - 1))], 1),
            }
            for stage, v in stages.items()
        },
        "seconds_per_radiograph_median": round(statistics.median(stages["total"]) / 1e3, 3),
        "goal_seconds": 0.10,
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
