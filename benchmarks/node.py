"""End-to-end latency of the node: C-STORE by storescu → scored → SR at the destination.

Starts ``rascore serve`` on its embedded defaults (SQLite, embedded Redis) with two scoring
workers, sends phantom radiographs with dcmtk's ``storescu`` at a steady rate for ``--seconds``,
and records when each image's SR (and SC, GSPS) arrives at a storage SCP standing in for the
PACS. A fresh node per rate; prints one JSON with a result per rate.

    python benchmarks/node.py [--rate 1 2] [--seconds 120] [--workers 2]

A few phantoms are drawn and then copied with new study, series and instance UIDs, so that a
long run does not spend minutes drawing. Goals (issue 13, two cores): SR p95 ≤ 1.0 s at
1 image/s; keeping up at 2 images/s (images per minute ≈ 60 × rate, latency not growing).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pydicom
from pydicom.uid import UID

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker.lab.demo import LocalPacs, free_port

SEED = 5151
DRAWN = 6  # distinct phantoms; the rest are copies with new UIDs
ROOT = "1.2.826.0.1.3680043.10.543.79"  # benchmark UIDs only
P95_GOAL_S = 1.0


def _phantom(args: tuple[Path, int]) -> str:
    from scoring.phantom import PhantomConfig, generate_image
    from worker.lab.phantom_export import write_image

    out, index = args
    image = generate_image(SEED, index, PhantomConfig(hands=2 if index % 2 else 1))
    return str(out / write_image(SEED, image, out)["file"])


def make_images(folder: Path, count: int, tag: str) -> tuple[list[Path], list[str]]:
    """``count`` files (distinct studies) and their Study Instance UIDs."""
    drawn = folder / "drawn"
    if not drawn.exists():
        drawn.mkdir(parents=True)
        with ProcessPoolExecutor(2) as pool:
            list(pool.map(_phantom, [(drawn, i) for i in range(DRAWN)]))
    sources = sorted(drawn.iterdir())
    files, studies = [], []
    for i in range(count):
        ds = pydicom.dcmread(sources[i % len(sources)])
        ds.StudyInstanceUID = f"{ROOT}.{tag}.{i}.1"
        ds.SeriesInstanceUID = f"{ROOT}.{tag}.{i}.2"
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = UID(f"{ROOT}.{tag}.{i}.3")
        ds.AccessionNumber = f"B{tag}{i}"[:16]
        path = folder / f"{tag}-{i:04d}.dcm"
        ds.save_as(path)
        files.append(path)
        studies.append(str(ds.StudyInstanceUID))
    return files, studies


def start_node(work: Path, pacs_port: int, workers: int) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {
        **os.environ,
        "RASCORE_HOME": str(work / "home"),
        "RASCORE_DICOM_PORT": str(port),
        "RASCORE_DICOM_HOST": "127.0.0.1",
        "RASCORE_API_PORT": "0",  # no HTTP API needed here
        "RASCORE_WORKERS": str(workers),
        "RASCORE_DESTINATIONS": f"DEMOPACS@127.0.0.1:{pacs_port}",
    }
    env.pop("RASCORE_BROKER_URL", None)
    env.pop("RASCORE_DATABASE_URL", None)
    (work / "home").mkdir(parents=True)
    log = open(work / "home" / "serve.log", "wb")  # noqa: SIM115
    node = subprocess.Popen(
        [sys.executable, "-m", "worker", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 120
    while "node started" not in (work / "home" / "serve.log").read_text(errors="replace"):
        if time.monotonic() > deadline or node.poll() is not None:
            node.kill()
            raise SystemExit("rascore serve did not start")
        time.sleep(0.2)
    time.sleep(5)  # let the workers load the model before the clock starts
    return node, port


def send_all(port: int, files: list[Path], studies: list[str], rate: float) -> dict[str, Any]:
    """Send at ``rate`` per second (a thread each); the send and acknowledgement times."""
    sent: dict[str, float] = {}
    acked: dict[str, float] = {}

    def send(path: Path, study: str) -> None:
        sent[study] = time.monotonic()
        subprocess.run(
            ["storescu", "-aet", "MODALITY", "-aec", "RASCORE", "127.0.0.1", str(port),
             str(path)],
            check=True, capture_output=True,
        )  # fmt: skip
        acked[study] = time.monotonic()

    senders: list[threading.Thread] = []
    start = time.monotonic()
    for i, (path, study) in enumerate(zip(files, studies, strict=True)):
        time.sleep(max(start + i / rate - time.monotonic(), 0))
        thread = threading.Thread(target=send, args=(path, study))
        thread.start()
        senders.append(thread)
    for thread in senders:
        thread.join()
    return {"start": start, "sent": sent, "acked": acked}


def wait_for_results(pacs: LocalPacs, studies: list[str], limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        with pacs.lock:
            done = sum(s in pacs.returned and pacs.returned[s].complete for s in studies)
        if done == len(studies):
            return
        time.sleep(0.5)


def _p95(values: list[float]) -> float:
    return values[max(round(0.95 * len(values)) - 1, 0)] if values else float("nan")


def summarise(pacs: LocalPacs, studies: list[str], sending: dict[str, Any]) -> dict[str, Any]:
    sent, acked, start = sending["sent"], sending["acked"], sending["start"]
    arrivals = {study: returned.arrived for study, returned in pacs.returned.items()}
    finished = {s: r.last_result for s, r in pacs.returned.items() if r.complete}
    with_sr = [s for s in studies if "sr" in arrivals.get(s, {})]
    latencies = sorted(arrivals[s]["sr"] - sent[s] for s in with_sr)
    all_three = sorted(finished[s] - sent[s] for s in studies if s in finished)
    half = len(with_sr) // 2
    by_order = [arrivals[s]["sr"] - sent[s] for s in with_sr]
    last = max(finished.values(), default=start + 1)
    return {
        "sr_received": len(latencies),
        "store_to_sr_s": {
            "median": round(statistics.median(latencies), 3) if latencies else None,
            "p95": round(_p95(latencies), 3),
            "max": round(latencies[-1], 3) if latencies else None,
            # growing latency means the node falls behind even if it catches up at the end
            "median_first_half": round(statistics.median(by_order[:half]), 3) if half else None,
            "median_second_half": round(statistics.median(by_order[half:]), 3) if half else None,
        },
        "store_to_all_results_s": {
            "median": round(statistics.median(all_three), 3) if all_three else None,
            "p95": round(_p95(all_three), 3),
        },
        "c_store_s": {"median": round(statistics.median(acked[s] - sent[s] for s in studies), 3)},
        "images_per_minute": round(60 * len(latencies) / (last - start), 1),
    }


_STAGES_SQL = """
SELECT i.received_at,
       (SELECT min(a.started_at) FROM job_attempts a WHERE a.job_id = j.id AND a.task = 'score'),
       (SELECT max(a.finished_at) FROM job_attempts a WHERE a.job_id = j.id AND a.task = 'score'),
       (SELECT min(a.started_at) FROM job_attempts a WHERE a.job_id = j.id AND a.task = 'build'),
       (SELECT max(a.finished_at) FROM job_attempts a WHERE a.job_id = j.id AND a.task = 'build'),
       (SELECT min(d.sent_at) FROM deliveries d JOIN result_objects r ON d.result_id = r.id
         WHERE r.job_id = j.id AND r.kind = 'sr')
FROM jobs j JOIN instances i ON i.id = j.instance_id
"""
#: the gaps between the node's own timestamps, in order: where an image's latency goes
_STAGE_NAMES = (
    "received_to_score_start",
    "score",
    "score_end_to_build_start",
    "build_all_three",
    "build_start_to_sr_sent",
)


def stages(database: Path) -> dict[str, dict[str, float]]:
    """Median and p95 seconds of each stage, from the node's database after the run.

    The node records when it received each image, when its score and build attempts ran and
    when the SR was sent; the gaps say whether latency is queueing or work. The SR is sent
    while the SC and GSPS are still being built, so the last stage overlaps the build.
    """
    import sqlite3
    from datetime import datetime

    with sqlite3.connect(database) as db:
        rows = db.execute(_STAGES_SQL).fetchall()
    gaps: dict[str, list[float]] = {name: [] for name in _STAGE_NAMES}
    for row in rows:
        if any(v is None for v in row):
            continue
        t = [datetime.fromisoformat(v).timestamp() for v in row]
        for name, (a, b) in zip(
            _STAGE_NAMES, ((0, 1), (1, 2), (2, 3), (3, 4), (3, 5)), strict=True
        ):
            gaps[name].append(t[b] - t[a])
    return {
        name: {
            "median": round(statistics.median(v), 3),
            "p95": round(_p95(sorted(v)), 3),
        }
        for name, v in gaps.items()
        if v
    }


def run_rate(work: Path, run: int, rate: float, seconds: float, workers: int) -> dict[str, Any]:
    """One fresh node and PACS, ``rate × seconds`` images; the figures for this rate."""
    tag = str(run + 1)  # a UID component: digits
    files, studies = make_images(work, max(round(rate * seconds), 1), tag)
    pacs = LocalPacs(work / f"pacs-{tag}")
    pacs.scp.start()
    try:
        node, port = start_node(work / f"node-{tag}", pacs.scp.port, workers)
    except BaseException:
        pacs.scp.stop()
        raise
    load_before = os.getloadavg()[0]
    try:
        sending = send_all(port, files, studies, rate)
        wait_for_results(pacs, studies, 600)
    finally:
        node.send_signal(signal.SIGTERM)
        node.wait(120)
        pacs.scp.stop()
    figures = summarise(pacs, studies, sending)
    figures["node_stages_s"] = stages(work / f"node-{tag}" / "home" / "rascore.db")
    return {
        "images": len(files),
        "rate_per_s": rate,
        "seconds": seconds,
        "workers": workers,
        **figures,
        "keeps_up": figures["images_per_minute"] >= 0.95 * 60 * rate,
        "load_average_before": round(load_before, 2),
        "load_average_after": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, nargs="+", default=[1.0, 2.0], help="images/s")
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rascore-bench-node-"))
    try:
        results = [
            run_rate(work, i, rate, args.seconds, args.workers) for i, rate in enumerate(args.rate)
        ]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        json.dumps(
            {
                "benchmark": "node",
                "results": results,
                "goal": {"p95_s_at_1_per_s": P95_GOAL_S, "keeps_up_at_2_per_s": True},
                "cpus": os.cpu_count(),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
