"""End-to-end latency of the node: C-STORE by storescu → scored → SR at the destination.

Starts ``rascore serve`` on its embedded defaults (SQLite, embedded Redis) with two scoring
workers, sends phantom radiographs with dcmtk's ``storescu`` at a steady rate, and records when
each image's SR (and SC, GSPS) arrives at a storage SCP standing in for the PACS. Prints JSON.

    python benchmarks/node.py [--count 100] [--rate 1.0] [--workers 2]
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

import pydicom

from worker.lab.demo import LocalPacs, free_port

SEED = 5151


def _phantom(args: tuple[Path, int]) -> str:
    from scoring.phantom import PhantomConfig, generate_image
    from worker.lab.phantom_export import write_image

    out, index = args
    image = generate_image(SEED, index, PhantomConfig(hands=1 + index % 2))
    return str(out / write_image(SEED, image, out)["file"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--rate", type=float, default=1.0, help="images per second")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="rascore-bench-node-"))
    images_dir = work / "images"
    images_dir.mkdir()
    with ProcessPoolExecutor(2) as pool:
        files = [Path(f) for f in pool.map(_phantom, [(images_dir, i) for i in range(args.count)])]
    studies = [str(pydicom.dcmread(f, stop_before_pixels=True).StudyInstanceUID) for f in files]

    pacs = LocalPacs(work / "pacs")
    pacs.scp.start()
    port = free_port()
    env = {
        **os.environ,
        "RASCORE_HOME": str(work / "home"),
        "RASCORE_DICOM_PORT": str(port),
        "RASCORE_DICOM_HOST": "127.0.0.1",
        "RASCORE_API_PORT": "0",  # no HTTP API needed here
        "RASCORE_WORKERS": str(args.workers),
        "RASCORE_DESTINATIONS": f"DEMOPACS@127.0.0.1:{pacs.scp.port}",
    }
    env.pop("RASCORE_BROKER_URL", None)
    env.pop("RASCORE_DATABASE_URL", None)
    (work / "home").mkdir()
    log = open(work / "home" / "serve.log", "wb")  # noqa: SIM115
    node = subprocess.Popen(
        [sys.executable, "-m", "worker", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 120
        while "node started" not in (work / "home" / "serve.log").read_text(errors="replace"):
            if time.monotonic() > deadline or node.poll() is not None:
                raise SystemExit("rascore serve did not start")
            time.sleep(0.2)
        time.sleep(5)  # let the workers load the model before the clock starts

        sent: dict[str, float] = {}
        acked: dict[str, float] = {}
        senders: list[threading.Thread] = []

        def send(path: Path, study: str) -> None:
            sent[study] = time.monotonic()
            subprocess.run(
                ["storescu", "-aet", "MODALITY", "-aec", "RASCORE", "127.0.0.1", str(port),
                 str(path)],
                check=True, capture_output=True,
            )  # fmt: skip
            acked[study] = time.monotonic()

        start = time.monotonic()
        for i, (path, study) in enumerate(zip(files, studies, strict=True)):
            time.sleep(max(start + i / args.rate - time.monotonic(), 0))
            thread = threading.Thread(target=send, args=(path, study))
            thread.start()
            senders.append(thread)
        for thread in senders:
            thread.join()
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            with pacs.lock:
                done = sum(
                    s in pacs.returned and len(pacs.returned[s].arrived) == 3 for s in studies
                )
            if done == len(studies):
                break
            time.sleep(0.5)
    finally:
        node.send_signal(signal.SIGTERM)
        node.wait(120)
        pacs.scp.stop()

    arrivals = {study: returned.arrived for study, returned in pacs.returned.items()}
    latencies = sorted(arrivals[s]["sr"] - sent[s] for s in studies if "sr" in arrivals.get(s, {}))
    all_three = sorted(max(arrivals[s].values()) - sent[s] for s in studies if s in arrivals)
    store_s = sorted(acked[s] - sent[s] for s in studies)
    last = max(max(a.values()) for a in arrivals.values())
    p95 = latencies[max(round(0.95 * len(latencies)) - 1, 0)]
    print(
        json.dumps(
            {
                "images": args.count,
                "rate_per_s": args.rate,
                "workers": args.workers,
                "sr_received": len(latencies),
                "store_to_sr_s": {
                    "median": round(statistics.median(latencies), 3),
                    "p95": round(p95, 3),
                    "max": round(latencies[-1], 3),
                },
                "store_to_all_results_s": {
                    "median": round(statistics.median(all_three), 3),
                    "p95": round(all_three[max(round(0.95 * len(all_three)) - 1, 0)], 3),
                },
                "c_store_s": {"median": round(statistics.median(store_s), 3)},
                "images_per_minute": round(60 * len(latencies) / (last - start), 1),
                "machine_cpus": os.cpu_count(),
            },
            indent=1,
        )
    )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
