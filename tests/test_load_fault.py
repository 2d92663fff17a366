"""The load and fault run, small: concurrent senders, cut associations, a full spool disk.

benchmarks/load_fault.py does the work and the checks (every acknowledged image scored exactly
once and its SR, SC and GSPS delivered, nothing left in the spool, no store file without its
row); the full-size run (500 images, 20 associations) is for the figures, this one for CI.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_a_short_load_and_fault_run_loses_nothing() -> None:
    run = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "load_fault.py"),
         "--images", "40", "--associations", "20", "--cut-every", "10", "--full-s", "3",
         "--timeout", "600"],
        capture_output=True, text=True, timeout=900, cwd=REPO,
    )  # fmt: skip
    assert run.stdout.strip(), run.stderr[-3000:]
    figures = json.loads(run.stdout)
    assert figures["problems"] == [], figures
    assert run.returncode == 0, run.stderr[-3000:]
    assert figures["acknowledged"] == 40 and figures["results_complete"] == 40
    assert figures["jobs"] == {"done": 40}
    assert figures["cuts"] >= 2, "associations were cut mid-transfer"
    refused = figures["statuses"].get("0xA700", 0) + figures["statuses"].get(
        "association refused", 0
    )
    assert refused >= 1, "the full disk refused work while it lasted"
