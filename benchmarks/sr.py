"""Seconds to build the SR of a 20-joint result, fast against the highdicom reference; then to
write the SR, SC and GSPS and to send the SR; JSON.

    taskset -c 0 python benchmarks/sr.py [--repeat N] [--no-send]

One bilateral phantom (seed 2, image 0) with its truth as the result, full-precision class
probabilities for every joint. ``build_sr`` is the one the node uses, ``build_sr_reference``
the all-highdicom build it is tested equal to. ``write``: pydicom's ``save_as`` against
``dicom_io.encoding.encode_file`` (the same bytes). ``send``: one C-STORE of the written SR to
dcmtk's storescp (``--ignore``) through one association, as a data set (read and re-encoded:
the SCU before issue 13) and as its path (the stored bytes). Goal (issue 13): SR + SC + GSPS
at most 0.15 s on one core, so the SR alone in tens of milliseconds.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pydicom
from pynetdicom.dsutils import encode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dicom_io.net.scu as scu
from dicom_io.encoding import encode_file
from dicom_io.pr import build_gsps
from dicom_io.results import EROSION_GRADES, JSN_GRADES, JointResult, ModelInfo, ScoringResult
from dicom_io.sc import build_overlay_sc
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


def _save_as(ds: pydicom.Dataset) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _write(source: pydicom.Dataset, result: ScoringResult, repeat: int) -> dict[str, Any]:
    """pydicom's writer against ours, per result object; the bytes checked equal."""
    timings: dict[str, Any] = {}
    for kind, build in (("sr", build_sr), ("sc", build_overlay_sc), ("gsps", build_gsps)):
        ds = build(source, result)
        assert encode_file(ds) == _save_as(ds), f"{kind}: not pydicom's bytes"
        pydicom_ms = _median_ms(_save_as, repeat, ds)
        fast_ms = _median_ms(encode_file, repeat, ds)
        timings[kind] = {
            "save_as": pydicom_ms,
            "encode_file": fast_ms,
            "speed_up": round(pydicom_ms["median_ms"] / fast_ms["median_ms"], 1),
        }
    return timings


@contextmanager
def _storescp() -> Iterator[scu.Destination]:
    """dcmtk's storescp on a free port, receiving without storing; stopped at the end."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    exe = shutil.which("storescp") or "/usr/bin/storescp"
    proc = subprocess.Popen([exe, "--ignore", "-aet", "DEST", str(port)])
    dest = scu.Destination("DEST", "127.0.0.1", port)
    try:
        deadline = time.monotonic() + 10
        while not scu.echo(dest, timeout=2) and time.monotonic() < deadline:
            time.sleep(0.05)
        yield dest
    finally:
        proc.terminate()
        proc.wait()


def _send(sr_path: Path, repeat: int, per_association: int = 5) -> dict[str, Any]:
    """Milliseconds per C-STORE of the SR, as a data set and as its path."""
    as_stored = scu._how_to_send
    timings: dict[str, Any] = {}
    with _storescp() as dest:
        for mode in ("dataset", "path"):
            if mode == "dataset":  # the file read and re-encoded, as the SCU did before
                scu._how_to_send = lambda assoc, item: scu._CONVERT
            try:

                def send() -> None:
                    statuses = scu.send_files(dest, [sr_path] * per_association)
                    assert all(s.ok for s in statuses), statuses

                timing = _median_ms(send, repeat)
            finally:
                scu._how_to_send = as_stored
            timings[mode] = {k: round(v / per_association, 1) for k, v in timing.items()}
    timings["note"] = f"ms per instance, {per_association} per association, its set-up included"
    # what the path saves: reading the file and pynetdicom encoding it again
    timings["read_and_encode"] = _median_ms(
        lambda: encode(pydicom.dcmread(sr_path), False, True, False), repeat
    )
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--no-send", action="store_true", help="skip the storescp part")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        record = write_image(2, generate_image(2, 0), Path(folder))
        source = pydicom.dcmread(Path(folder) / record["file"])
        source.PixelData  # noqa: B018 (read now: the SC renders from it)
        result = _result(source, record)
        fast = _median_ms(build_sr, args.repeat, source, result)
        reference = _median_ms(build_sr_reference, args.repeat, source, result)
        report: dict[str, Any] = {
            "joints": len(result.joints),
            "repeat": args.repeat,
            "build_sr": fast,
            "build_sr_reference": reference,
            "speed_up": round(reference["median_ms"] / fast["median_ms"], 1),
            "write": _write(source, result, args.repeat),
        }
        if not args.no_send:
            sr_path = Path(folder) / "sr.dcm"
            sr_path.write_bytes(encode_file(build_sr(source, result)))
            report["send_sr"] = _send(sr_path, args.repeat)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
