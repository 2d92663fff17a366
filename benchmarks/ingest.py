"""Ingest rate of rascore's StorageSCP beside dcmtk's ``storescp``, same files; prints JSON.

    python benchmarks/ingest.py [--count 200] [--associations 10] [--repeat 1] [--processes N]

The same ``--count`` phantom radiographs (one written, the rest copies with new SOP Instance
UIDs) are sent by dcmtk's ``storescu`` to each receiver: once through one association, once
split over ``--associations`` storescu processes at once. rascore's SCP runs with a handler
that accepts (the node's own receiving, store and queue are not timed); before it answers it
makes every file durable (fsync of the file and of its folder) and hashes it (SHA-256), none
of which storescp does: storescp only writes the file into the page cache. ``storescp
--fork`` serves the concurrent associations in parallel, one process each, and is given its
largest PDU (128 KiB; its default is 16 KiB, rascore's 256 KiB): storescu sends P-DATA of at
most 128 KiB to either. rascore's SCP runs as the node runs it: in ``--processes`` receiver
processes on one port (default: the usable cores, at most 8; 1: in this process), each
association a thread. With ``--repeat N`` the two receivers
take turns N times and each one's fastest run counts, so that on a shared machine neither
gets all of a burst of someone else's load. Goal (issue 13): at least 0.8× storescp.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from argparse import ArgumentParser
from pathlib import Path

import pydicom
from pydicom.uid import UID

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dicom_io.net.handler import ReceivedInstance
from dicom_io.net.processes import ReceiverProcesses, default_processes
from dicom_io.net.scp import StorageSCP
from scoring.phantom import PhantomConfig, generate_image
from worker.lab.phantom_export import write_image

GOAL_RATIO = 0.8
STORESCP_PDU = 131072  # storescp's maximum
ROOT = "1.2.826.0.1.3680043.10.543.78"  # benchmark UIDs only


def write_files(out: Path, count: int) -> list[Path]:
    """One bilateral phantom, then ``count - 1`` copies that differ only in their UIDs."""
    image = generate_image(4040, 0, PhantomConfig(hands=2))
    first = out / write_image(4040, image, out)["file"]
    ds = pydicom.dcmread(first)
    files = [first]
    for i in range(1, count):
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = UID(f"{ROOT}.{i}")
        ds.save_as(out / f"copy{i:04d}.dcm")
        files.append(out / f"copy{i:04d}.dcm")
    return files


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def send(port: int, files: list[Path], associations: int) -> float:
    """Seconds for ``associations`` storescu processes to send their share of ``files``."""
    shares = [files[i::associations] for i in range(associations)]
    start = time.perf_counter()
    senders = [
        subprocess.Popen(
            ["storescu", "-aet", "BENCH", "-aec", "RECEIVER", "127.0.0.1", str(port)]
            + [str(f) for f in share],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for share in shares
    ]
    for sender in senders:
        _, err = sender.communicate()
        if sender.returncode != 0:
            raise SystemExit(f"storescu failed: {err.decode(errors='replace')[-500:]}")
    return time.perf_counter() - start


def rate(seconds: float, count: int, total_bytes: int) -> dict[str, float]:
    return {
        "seconds": round(seconds, 3),
        "files_per_s": round(count / seconds, 1),
        "mb_per_s": round(total_bytes / seconds / 1e6, 1),
    }


def run_storescp(work: Path, files: list[Path], associations: int) -> float:
    out = work / f"storescp{associations}"
    out.mkdir()
    port = free_port()
    server = subprocess.Popen(
        [
            "storescp",
            "--fork",
            "--max-pdu",
            str(STORESCP_PDU),
            "-aet",
            "RECEIVER",
            "-od",
            str(out),
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)
        seconds = send(port, files, associations)
    finally:
        server.terminate()
        server.wait(10)
    received = len(list(out.iterdir()))
    if received != len(files):
        raise SystemExit(f"storescp kept {received} of {len(files)} files")
    shutil.rmtree(out)
    return seconds


def accept(instance: ReceivedInstance) -> int:
    """Accept (in whichever receiver process): the file stays in the spool to be counted."""
    return 0x0000


def run_rascore(work: Path, files: list[Path], associations: int, processes: int) -> float:
    """rascore's SCP as the node runs it: in this process (``processes`` 1) or in receiver
    processes on one port (:mod:`dicom_io.net.processes`)."""
    spool = work / f"rascore{associations}"
    factory = functools.partial(
        StorageSCP,
        "RECEIVER",
        0,
        accept,
        spool_dir=spool,
        host="127.0.0.1",
        max_associations=max(associations, 10),
    )
    receiver = factory() if processes == 1 else ReceiverProcesses(factory, processes)
    with receiver:
        seconds = send(receiver.port, files, associations)
    received = len(list((spool / "incoming").iterdir()))
    if received != len(files):
        raise SystemExit(f"rascore's SCP kept {received} of {len(files)} files")
    shutil.rmtree(spool)
    return seconds


def main() -> None:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--associations", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=1, help="turns each; the fastest counts")
    parser.add_argument(
        "--processes", type=int, default=default_processes(), help="rascore's receivers"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rascore-bench-ingest-"))
    try:
        (work / "files").mkdir()
        files = write_files(work / "files", args.count)
        total = sum(f.stat().st_size for f in files)
        results: dict[str, dict[str, dict[str, float]]] = {}
        for assocs in (1, args.associations):
            theirs, mine = [], []
            for _ in range(max(args.repeat, 1)):
                theirs.append(run_storescp(work, files, assocs))
                mine.append(run_rascore(work, files, assocs, args.processes))
            dcmtk = rate(min(theirs), len(files), total)
            ours = rate(min(mine), len(files), total)
            results[f"{assocs}_association{'s' if assocs > 1 else ''}"] = {
                "storescp": dcmtk,
                "rascore": ours,
                "ratio": {"value": round(ours["files_per_s"] / dcmtk["files_per_s"], 2)},
            }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ratios = [r["ratio"]["value"] for r in results.values()]
    print(
        json.dumps(
            {
                "benchmark": "ingest",
                "files": len(files),
                "file_mb": round(total / len(files) / 1e6, 2),
                "results": results,
                "goal_ratio": GOAL_RATIO,
                "meets_goal": min(ratios) >= GOAL_RATIO,
                "repeat": max(args.repeat, 1),
                "rascore_processes": args.processes,
                "load_average": [round(x, 2) for x in os.getloadavg()],
                "cpus": os.cpu_count(),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
