"""One JSON of the benchmark figures, each beside its goal (issue 13), from the scripts' JSON.

    python benchmarks/summary.py [--dir build/bench]

``make bench`` writes each script's JSON into ``--dir`` (score.json, decode.json, ingest.json,
node.json) and then runs this. A missing or unreadable file leaves its figures null with the
reason, so that a script that was skipped or failed shows instead of vanishing; ``meets`` is
true, false, or null when there is no figure.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

Getter = Callable[[dict[str, Any]], float | None]


def _node(rate: float, key: str) -> Getter:
    def get(data: dict[str, Any]) -> float | None:
        for result in data["results"]:
            if result["rate_per_s"] == rate:
                return result[key] if key != "p95" else result["store_to_sr_s"]["p95"]
        return None

    return get


def _ingest(key: str) -> Getter:
    return lambda data: data["results"][key]["ratio"]["value"]


# (figure, file, how to get it, goal, "max" or "min": which side of the goal passes)
FIGURES: tuple[tuple[str, str, Getter, float, str], ...] = (
    ("result_build_s", "score", lambda d: d["result_build"]["seconds_median"], 0.15, "max"),
    ("scorer_s", "score", lambda d: d["seconds_per_radiograph_median"], 0.10, "max"),
    ("decode_uncompressed_ms", "decode", lambda d: d["milliseconds"]["uncompressed"], 50.0, "max"),
    ("sr_p95_s_at_1_per_s", "node", _node(1.0, "p95"), 1.0, "max"),
    ("images_per_minute_at_2_per_s", "node", _node(2.0, "images_per_minute"), 114.0, "min"),
    ("ingest_ratio_1_association", "ingest", _ingest("1_association"), 0.8, "min"),
    ("ingest_ratio_10_associations", "ingest", _ingest("10_associations"), 0.8, "min"),
)


def load(folder: Path) -> dict[str, dict[str, Any] | str]:
    """Each script's JSON by name, or why it is not there."""
    loaded: dict[str, dict[str, Any] | str] = {}
    for name in ("score", "decode", "ingest", "node"):
        path = folder / f"{name}.json"
        try:
            loaded[name] = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            loaded[name] = f"{path}: {type(exc).__name__}"
    return loaded


def summary(folder: Path) -> dict[str, Any]:
    loaded = load(folder)
    figures: dict[str, dict[str, Any]] = {}
    for name, source, get, goal, side in FIGURES:
        data = loaded[source]
        value: float | None = None
        note = ""
        if isinstance(data, str):
            note = data
        else:
            try:
                value = get(data)
            except (KeyError, TypeError, IndexError) as exc:
                note = f"{source}.json has no {exc}"
        meets = None if value is None else (value <= goal if side == "max" else value >= goal)
        figure = {"value": value, "goal": f"{'≤' if side == 'max' else '≥'} {goal}", "meets": meets}
        figures[name] = {**figure, "note": note} if note else figure
    scores = loaded["score"]
    return {
        "summary": "benchmarks (issue 13)",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
        "figures": figures,
        "scorer_dominant_stage": scores.get("dominant_stage") if isinstance(scores, dict) else None,
        "decode_ms": (
            loaded["decode"]["milliseconds"] if isinstance(loaded["decode"], dict) else None
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("build/bench"))
    print(json.dumps(summary(parser.parse_args().dir), indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
