"""``rascore demo``: the round trip a department will see, on one machine, in about a minute.

Starts the node on its embedded defaults (SQLite, embedded Redis, two workers) under
``OUT/var``, stands up a local storage SCP as the PACS, sends phantom radiographs with a real
SCU (C-STORE over TCP), waits for the SR, the overlay SC and the GSPS of each to come back,
prints the scores read from the SRs and where the overlay PNGs are, and stops everything.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.uid import SecondaryCaptureImageStorage

from dicom_io.net import RESULT_SOP_CLASSES, ReceivedInstance, StorageSCP, send_files
from dicom_io.results import JOINTS_PER_HAND, NOT_FOR_DIAGNOSTIC_USE, ScoringResult
from dicom_io.sc.progress import SERIES_DESCRIPTION as STUDY_SC_SERIES
from dicom_io.sr import read_sr
from dicom_io.sr.study_template import STUDY_SERIES_DESCRIPTION as STUDY_SR_SERIES
from worker.png import overlay_png

SR_CLASS = "1.2.840.10008.5.1.4.1.1.88.34"
GSPS_CLASS = "1.2.840.10008.5.1.4.1.1.11.1"
KINDS = {SR_CLASS: "sr", SecondaryCaptureImageStorage: "sc", GSPS_CLASS: "gsps"}
#: a study's report and its overlay of changes come later, in series of their own
STUDY_KINDS = {STUDY_SR_SERIES: "study-sr", STUDY_SC_SERIES: "study-sc"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Returned:
    """What came back for one source image: files and arrival times (monotonic) by kind."""

    files: dict[str, Path] = field(default_factory=dict)
    arrived: dict[str, float] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """The image's own SR, SC and GSPS are here (a study's report may come later)."""
        return all(kind in self.arrived for kind in KINDS.values())

    @property
    def last_result(self) -> float:
        """When the last of the image's own SR, SC and GSPS arrived."""
        return max(self.arrived[kind] for kind in KINDS.values() if kind in self.arrived)


class LocalPacs:
    """The demo's PACS: a storage SCP filing what the node sends back, by source study."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.returned: dict[str, Returned] = {}
        self.lock = threading.Lock()
        self.scp = StorageSCP(
            "DEMOPACS",
            0,
            self._on_store,
            spool_dir=folder / "spool",
            host="127.0.0.1",
            sop_classes=RESULT_SOP_CLASSES,
        )

    def _on_store(self, received: ReceivedInstance) -> int:
        now = time.monotonic()
        ds = pydicom.dcmread(received.path, stop_before_pixels=True)
        kind = STUDY_KINDS.get(str(ds.get("SeriesDescription", "")), "") or KINDS.get(
            received.sop_class_uid, "other"
        )
        study = str(ds.StudyInstanceUID)
        key = hashlib.sha256(study.encode()).hexdigest()[:8]  # never a UID as a file name
        target = self.folder / f"study-{key}_{kind}.dcm"
        shutil.move(received.path, target)
        with self.lock:
            returned = self.returned.setdefault(study, Returned())
            returned.files[kind] = target
            returned.arrived[kind] = now
        return 0


def _overlay_png(sc_path: Path) -> Path:
    png = sc_path.with_suffix(".png")
    png.write_bytes(overlay_png(sc_path))
    return png


def _print_scores(source: Path, result: ScoringResult, png: Path) -> None:
    print(f"\n{source.name}: {len(result.joints)} joints, model {result.model.version}")
    print(f"  {'joint':8} {'JSN':>3} {'erosion':>7}")
    for joint in result.joints:
        if joint.assessable:
            print(f"  {joint.label:8} {joint.jsn:>3} {joint.erosion:>7}")
        else:  # never a grade the model would not give
            print(f"  {joint.label:8} n/a ({joint.why_not})")
    scored = result.hand_joints_scored()
    for side, (jsn, erosion) in sorted(result.hand_totals().items()):
        print(
            f"  {side} hand totals: JSN {jsn}, erosion {erosion} "
            f"({scored[side]} of {JOINTS_PER_HAND} joints scored)"
        )
    print(
        f"  image totals: JSN {result.total_jsn}, erosion {result.total_erosion} "
        f"({result.joints_scored} of {result.joints_expected} joints scored)"
    )
    print(f"  overlay: {png}")


def _node_env(home: Path, port: int, workers: int, pacs_port: int) -> dict[str, str]:
    """The node's environment: embedded defaults under ``home``, results to the local PACS."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("RASCORE_")},
        "RASCORE_HOME": str(home),
        "RASCORE_DICOM_PORT": str(port),
        "RASCORE_DICOM_HOST": "127.0.0.1",
        "RASCORE_API_PORT": "0",  # no HTTP API needed here
        "RASCORE_WORKERS": str(workers),
        "RASCORE_DESTINATIONS": f"DEMOPACS@127.0.0.1:{pacs_port}",
        "RASCORE_MIN_FREE_MB": "64",
    }


def _wait_started(node: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while "node started" not in log.read_text(errors="replace"):
        if node.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the node did not start; see {log}")
        time.sleep(0.2)


def _send_and_wait(
    phantoms: list[Path], port: int, pacs: LocalPacs, timeout: float
) -> tuple[dict[str, Path], list[str]]:
    """C-STORE the phantoms; wait for the studies whose results all came back."""
    print(f"sending {len(phantoms)} phantom radiographs by C-STORE ...", file=sys.stderr)
    statuses = send_files(f"RASCORE@127.0.0.1:{port}", phantoms, calling_ae="DEMOSCU")
    for status in statuses:
        if not status.ok:
            raise RuntimeError(f"C-STORE of {status.path.name} failed: {status.error}")
    studies = {
        str(pydicom.dcmread(p, stop_before_pixels=True).StudyInstanceUID): p for p in phantoms
    }
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        with pacs.lock:
            complete = [s for s in studies if s in pacs.returned and pacs.returned[s].complete]
        if len(complete) == len(studies):
            break
        time.sleep(0.5)
    print(
        f"results back for {len(complete)} of {len(studies)} images "
        f"in {time.monotonic() - started:.1f} s",
        file=sys.stderr,
    )
    return studies, complete


def run_demo(phantoms: list[Path], out: Path, workers: int = 2, timeout: float = 300) -> int:
    """The round trip; returns the number of images whose three results came back."""
    out.mkdir(parents=True, exist_ok=True)
    received = out / "received"
    shutil.rmtree(received, ignore_errors=True)
    received.mkdir()
    pacs = LocalPacs(received)
    pacs.scp.start()
    port = free_port()
    home = out / "var"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir()
    env = _node_env(home, port, workers, pacs.scp.port)
    print(f"starting the node (AE RASCORE, port {port}, home {home}) ...", file=sys.stderr)
    with open(home / "serve.log", "wb") as log:
        node = subprocess.Popen(
            [sys.executable, "-m", "worker", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        _wait_started(node, home / "serve.log")
        studies, complete = _send_and_wait(phantoms, port, pacs, timeout)
    finally:
        node.send_signal(signal.SIGTERM)
        node.wait(120)
        pacs.scp.stop()
    for study in complete:
        files = pacs.returned[study].files
        result = read_sr(pydicom.dcmread(files["sr"]))
        _print_scores(studies[study], result, _overlay_png(files["sc"]))
    print(f"\n{NOT_FOR_DIAGNOSTIC_USE}")
    print(f"received objects: {received}; node's database and store: {home}")
    return len(complete)
