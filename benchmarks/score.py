"""Seconds per radiograph for read + detect + identify + score, one core; prints JSON.

    python benchmarks/score.py [--count N] [--seed S] [--model DIR]

Phantoms (bilateral, uncompressed DICOM) are written to a temporary folder first; the timings
cover what `rascore score` does per file with the model already loaded. The scorer's own
stages (parse, read, detect, identify) come from its timings; its "score" stage is split here,
without touching the scorer, by timing the calls it makes: the joint crops, the two CNNs and
the typicality distance (the rest of "score" is the prior and the abstention rules).
Goal (issue 13): at most 0.10 s per radiograph on one core.

"result_build" times, for the first ``--build-count`` phantoms, what the node's build task does
to make what goes back to the PACS: the source's header read without pixels, the overlay's grey
copy read back (the PNG scoring kept), each of worker.jobs.mapping's builders (SR, overlay SC,
GSPS) and its serialisation (dicom_io.encoding, as the store writes it). "keep_for_build" is
what scoring spends on the grey copy (shrink + PNG), so that the build never decodes. Goal:
SR + SC + GSPS ≤ 0.15 s on one core.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import scoring.pipeline as pipeline
from dicom_io.encoding import encode_file
from dicom_io.reading import read_dicom
from dicom_io.sc import overlay_grey
from scoring.phantom import generate_image
from scoring.pipeline import Scorer
from scoring.typicality import Typicality
from worker.jobs import mapping
from worker.lab.phantom_export import write_image
from worker.scoring_io import ScoredFile, score_file, scoring_result

GOAL_S = 0.10
BUILD_GOAL_S = 0.15
CLOCK: dict[str, float] = {}


def timed(stage: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function``, adding its seconds to ``CLOCK[stage]``."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            CLOCK[stage] = CLOCK.get(stage, 0.0) + (time.perf_counter() - start) * 1e3

    return wrapper


def instrument() -> None:
    pipeline.crop_joint = timed("crops", pipeline.crop_joint)
    pipeline.predict_with_features = timed("cnns", pipeline.predict_with_features)
    Typicality.distance = timed("typicality", Typicality.distance)  # type: ignore[method-assign]


def build_ms(scorer: Scorer, scored: ScoredFile, path: Path) -> dict[str, float]:
    """Milliseconds of the node's build of one scored file, by part (see the docstring)."""
    result = scoring_result(scorer, scored)
    image = scored.image
    times = {}
    start = time.perf_counter()
    _, png = cv2.imencode(".png", overlay_grey(image.pixels), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    times["keep_for_build"] = (time.perf_counter() - start) * 1e3
    start = time.perf_counter()
    header = read_dicom(path, pixels=False)
    grey = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
    times["read"] = (time.perf_counter() - start) * 1e3
    window = (float(image.window[0]), float(image.window[1]), image.window_explanation)
    inputs: dict[str, dict[str, Any]] = {"sc": {"grey": grey}, "gsps": {"window": window}}
    for kind, build in mapping.BUILDERS.items():
        start = time.perf_counter()
        encode_file(build(header, result, **inputs.get(kind, {})))
        times[kind] = (time.perf_counter() - start) * 1e3
    times["total"] = sum(v for k, v in times.items() if k != "keep_for_build")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--seed", type=int, default=4242)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--build-count", type=int, default=5)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    scorer = Scorer.load(args.model)
    instrument()
    stages: dict[str, list[float]] = {}
    builds: dict[str, list[float]] = {}
    pixels = []
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i in range(args.count):
            image = generate_image(args.seed, i)
            files.append(Path(tmp) / write_image(args.seed, image, Path(tmp))["file"])
            pixels.append(image.pixels.size / 1e6)
        score_file(scorer, files[0])  # warm-up
        for path in files:
            CLOCK.clear()
            scored = score_file(scorer, path)
            timings = dict(scored.timings_ms)
            split = {k: CLOCK.get(k, 0.0) for k in ("crops", "cnns", "typicality")}
            timings.update(split, score_rest=timings.get("score", 0.0) - sum(split.values()))
            for stage, ms in timings.items():
                stages.setdefault(stage, []).append(ms)
            if len(builds.get("total", [])) < args.build_count:
                for kind, ms in build_ms(scorer, scored, path).items():
                    builds.setdefault(kind, []).append(ms)
    medians = {stage: round(statistics.median(v), 1) for stage, v in stages.items()}
    parts = {k: v for k, v in medians.items() if k not in ("total", "score")}
    result = {
        "benchmark": "score",
        "images": args.count,
        "megapixels_mean": round(statistics.fmean(pixels), 2),
        "threads": 1,
        "model": scorer.bundle.version,
        "detector": scorer.bundle.detector_kind,
        "milliseconds": {
            stage: {
                "median": medians[stage],
                "p95": round(sorted(v)[int(0.95 * (len(v) - 1))], 1),
            }
            for stage, v in stages.items()
        },
        "dominant_stage": max(parts, key=parts.__getitem__),
        "seconds_per_radiograph_median": round(statistics.median(stages["total"]) / 1e3, 3),
        "goal_seconds": GOAL_S,
        "meets_goal": statistics.median(stages["total"]) / 1e3 <= GOAL_S,
        "result_build": {
            "images": len(builds.get("total", [])),
            "milliseconds_median": {k: round(statistics.median(v), 1) for k, v in builds.items()},
            "seconds_median": round(statistics.median(builds["total"]) / 1e3, 3),
            "goal_seconds": BUILD_GOAL_S,
            "meets_goal": statistics.median(builds["total"]) / 1e3 <= BUILD_GOAL_S,
        },
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
