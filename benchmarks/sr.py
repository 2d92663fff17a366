"""Seconds to build the SR of a 20-joint result, fast against the highdicom reference; JSON.

    taskset -c 0 python benchmarks/sr.py [--repeat N]

One bilateral phantom (seed 2, image 0) with its truth as the result, full-precision class
probabilities for every joint; the build only (no serialisation). ``build_sr`` is the one the
node uses, ``build_sr_reference`` the all-highdicom build it is tested equal to. Goal (issue 13):
SR + SC + GSPS at most 0.15 s on one core, so the SR alone in tens of milliseconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydicom

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dicom_io.results import EROSION_GRADES, JSN_GRADES, JointResult, ModelInfo, ScoringResult
from dicom_io.sr import build_sr
from dicom_io.sr.build import build_sr_reference
from scoring.phantom import generate_image
from worker.lab.phantom_export import write_image

MODEL = ModelInfo("bench", "0", "1.2.826.0.1.3680043.10.543.77.9.9", "rascore")


def _probabilities(grade: int, n: int, salt: int) -> tuple[float, ...]:
    weights = [1.0 / (1 + 3 * abs(k - grade)) + salt * 1e-3 for k in range(n)]
    return tuple(w / sum(weights) for w in weights)


def _result(source: pydicom.Dataset, truth: dict[str, Any]) -> ScoringResult:
    joints = tuple(
        JointResult(
            label=j["label"],
            box=(int(j["box"][0]), int(j["box"][1]), int(j["box"][2]), int(j["box"][3])),
            jsn=int(j["jsn"]),
            erosion=int(j["erosion"]),
            jsn_probs=_probabilities(int(j["jsn"]), JSN_GRADES, i),
            erosion_probs=_probabilities(int(j["erosion"]), EROSION_GRADES, i),
        )
        for i, j in enumerate(truth["joints"])
    )
    return ScoringResult(str(source.SOPInstanceUID), joints, MODEL)


def _median_ms(build: Callable[..., Any], repeat: int, *args: Any) -> dict[str, float]:
    build(*args)  # imports and caches
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        build(*args)
        seconds.append(time.perf_counter() - start)
    return {
        "median_ms": round(statistics.median(seconds) * 1e3, 1),
        "min_ms": round(min(seconds) * 1e3, 1),
        "max_ms": round(max(seconds) * 1e3, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        record = write_image(2, generate_image(2, 0), Path(folder))
        source = pydicom.dcmread(Path(folder) / record["file"], stop_before_pixels=True)
    result = _result(source, record)
    fast = _median_ms(build_sr, args.repeat, source, result)
    reference = _median_ms(build_sr_reference, args.repeat, source, result)
    print(
        json.dumps(
            {
                "joints": len(result.joints),
                "repeat": args.repeat,
                "build_sr": fast,
                "build_sr_reference": reference,
                "speed_up": round(reference["median_ms"] / fast["median_ms"], 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
