"""Load and fault run: many senders at once, cut associations, a full spool disk; nothing lost.

Starts ``rascore serve`` on its embedded defaults (SQLite, embedded Redis) with two scoring
workers and a storage SCP standing in for the PACS, then sends ``--images`` phantom
radiographs over ``--associations`` concurrent pynetdicom associations. Faults injected:

- every ``--cut-every`` images, one association is cut in the middle of a data set (its socket
  shut down from under it); the sender, as a PACS would, sends that image again later;
- halfway through, the spool disk is driven below the node's free-space watermark by a ballast
  file (C-STOREs then get 0xA700 and are retried), then freed after ``--full-s`` seconds.

Then it checks, from the node's database and the PACS's inbox, that every acknowledged image
was scored exactly once and its SR, SC and GSPS delivered, that nothing is left in the spool,
and it reports the node's peak memory (the serve process and all its children). Prints JSON;
exits 1 when a check fails.

    python benchmarks/load_fault.py [--images 500] [--associations 20] [--cut-every 50]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pydicom
from pydicom.uid import generate_uid
from pynetdicom import AE
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from dicom_io.net import STORAGE_SOP_CLASSES
from worker.db.models import Delivery, DeliveryStatus, ImageScoreRow, Instance, Job, JobAttempt
from worker.lab.demo import LocalPacs, free_port

SEED = 6262
DISTINCT = 8  # phantoms generated; each is sent under fresh UIDs, so every image is new
MB = 1 << 20


def _phantom(args: tuple[Path, int]) -> str:
    from scoring.phantom import PhantomConfig, generate_image
    from worker.lab.phantom_export import write_image

    out, index = args
    image = generate_image(SEED, index, PhantomConfig(hands=1 + index % 2))
    return str(out / write_image(SEED, image, out)["file"])


@dataclass
class Tally:
    """What the senders saw, shared between their threads."""

    acknowledged: dict[str, float] = field(default_factory=dict)  # SOP Instance UID → time
    statuses: Counter[str] = field(default_factory=Counter)
    cuts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Sender:
    """One association's worth of images; reconnects after a cut or an abort, retries 0xA700."""

    def __init__(self, port: int, tally: Tally, cut_every: int, counter: list[int]) -> None:
        self.port = port
        self.tally = tally
        self.cut_every = cut_every
        self.counter = counter  # shared [images started], to pick which transfer to cut
        self.ae = AE(ae_title="LOADGEN")
        self.ae.acse_timeout = self.ae.dimse_timeout = self.ae.network_timeout = 120
        for sop in STORAGE_SOP_CLASSES:
            self.ae.add_requested_context(sop)
        self.assoc = None

    def _associate(self) -> None:
        while self.assoc is None or not self.assoc.is_established:
            self.assoc = self.ae.associate("127.0.0.1", self.port, ae_title="RASCORE")
            if not self.assoc.is_established:
                with self.tally.lock:
                    self.tally.statuses["association refused"] += 1
                time.sleep(0.5)

    def send_all(self, datasets: list[pydicom.Dataset]) -> None:
        for ds in datasets:
            while not self._send(ds):
                time.sleep(1.0)  # a PACS waits before it tries again
        if self.assoc is not None and self.assoc.is_established:
            self.assoc.release()

    def _send(self, ds: pydicom.Dataset) -> bool:
        self._associate()
        assert self.assoc is not None
        with self.tally.lock:
            self.counter[0] += 1
            cut = self.counter[0] % self.cut_every == 0
        if cut:
            threading.Timer(0.05, self._cut).start()
        try:
            status = self.assoc.send_c_store(ds)
        except (RuntimeError, OSError):  # the association died under us (a cut, an abort)
            status = pydicom.Dataset()
        code = int(status.Status) if "Status" in status else None
        with self.tally.lock:
            if code is None:
                self.tally.statuses["no response (association lost)"] += 1
            else:
                self.tally.statuses[f"0x{code:04X}"] += 1
            if code == 0x0000:
                self.tally.acknowledged[str(ds.SOPInstanceUID)] = time.monotonic()
        if code is None or not self.assoc.is_established:
            self.assoc = None
        return code == 0x0000

    def _cut(self) -> None:
        """Shut the association's socket in the middle of the transfer."""
        assoc = self.assoc
        sock = getattr(getattr(getattr(assoc, "dul", None), "socket", None), "socket", None)
        if sock is None:
            return
        try:
            sock.shutdown(2)
        except OSError:
            return
        with self.tally.lock:
            self.tally.cuts += 1


def _renamed(template: pydicom.Dataset, index: int) -> pydicom.Dataset:
    """A new image: ``template``'s elements (its pixels shared, not copied) under new UIDs."""
    ds = pydicom.Dataset()
    ds.update(template)  # elements are replaced below, never changed: the template stays
    ds.file_meta = pydicom.dataset.FileMetaDataset(template.file_meta)
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientID = f"LOAD{index:05d}"
    return ds


class MemoryWatch(threading.Thread):
    """Samples the resident memory of a process and its children every 0.25 s."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.peak_total = 0
        self.peak_serve = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                processes = [self.root, *self.root.children(recursive=True)]
                rss = {p.pid: p.memory_info().rss for p in processes if p.is_running()}
            except psutil.Error:
                rss = {}
            if rss:
                self.peak_total = max(self.peak_total, sum(rss.values()))
                self.peak_serve = max(self.peak_serve, rss.get(self.root.pid, 0))
            self.stop.wait(0.25)


def _fill_disk(path: Path, below_mb: int) -> Path:
    """A ballast file that leaves ``below_mb`` MB free on ``path``'s disk."""
    ballast = path / "ballast.bin"
    free = shutil.disk_usage(path).free
    size = max(free - below_mb * MB, 0)
    with open(ballast, "wb") as out:
        os.posix_fallocate(out.fileno(), 0, size)
    return ballast


def _check(home: Path, pacs: LocalPacs, tally: Tally, studies: dict[str, str]) -> dict[str, object]:
    engine = create_engine(f"sqlite:///{home / 'rascore.db'}")
    with Session(engine) as session:
        instances = dict(session.execute(select(Instance.sop_instance_uid, Instance.id)).all())
        per_uid = Counter(session.scalars(select(Instance.sop_instance_uid)))
        jobs = Counter(session.scalars(select(Job.instance_id)))
        done = Counter(
            session.scalars(select(ImageScoreRow.instance_id))
        )  # one score row per scored job
        attempts_done = Counter(
            session.scalars(
                select(Job.instance_id)
                .join(JobAttempt, JobAttempt.job_id == Job.id)
                .where(JobAttempt.task == "score", JobAttempt.outcome == "done")
            )
        )
        deliveries = Counter(session.scalars(select(Delivery.status)))
        job_statuses = Counter(str(s) for s in session.scalars(select(Job.status)))
        n_store_files = session.scalar(select(func.count(Instance.id)))
    acknowledged = set(tally.acknowledged)
    problems: list[str] = []
    if len(acknowledged) != len(studies):
        problems.append(f"{len(studies) - len(acknowledged)} images never acknowledged")
    missing = acknowledged - set(instances)
    if missing:
        problems.append(f"{len(missing)} acknowledged images not on record")
    if any(n != 1 for n in per_uid.values()):
        problems.append("an image recorded more than once")
    for uid in acknowledged & set(instances):
        iid = instances[uid]
        if jobs[iid] != 1 or done[iid] != 1 or attempts_done[iid] != 1:
            problems.append(f"instance {iid}: jobs {jobs[iid]}, scores {done[iid]}, "
                            f"score attempts done {attempts_done[iid]}")  # fmt: skip
    with pacs.lock:
        complete = sum(
            (study in pacs.returned and pacs.returned[study].complete)
            for uid, study in studies.items()
            if uid in acknowledged
        )
    if complete != len(acknowledged):
        problems.append(f"results of {len(acknowledged) - complete} images not delivered")
    if deliveries.get(DeliveryStatus.SENT, 0) != sum(deliveries.values()):
        problems.append(f"deliveries not all sent: {dict(deliveries)}")
    spool = home / "spool"
    leftovers = [str(p.relative_to(home)) for p in spool.rglob("*") if p.is_file()]
    if leftovers:
        problems.append(f"{len(leftovers)} files left in the spool: {leftovers[:5]}")
    store_images = [p for p in (home / "store" / "images").rglob("*") if p.is_file()]
    if len(store_images) != n_store_files:
        problems.append(
            f"{len(store_images)} image files in the store for {n_store_files} instances"
        )
    return {
        "problems": problems[:20],
        "instances": len(instances),
        "jobs": dict(job_statuses),
        "deliveries": {str(k): v for k, v in deliveries.items()},
        "results_complete": complete,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--associations", type=int, default=20)
    parser.add_argument("--cut-every", type=int, default=50)
    parser.add_argument("--full-s", type=float, default=10.0, help="how long the disk is full")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="rascore-load-fault-"))
    images_dir = work / "images"
    images_dir.mkdir()
    with ProcessPoolExecutor(2) as pool:
        files = list(pool.map(_phantom, [(images_dir, i) for i in range(DISTINCT)]))
    templates = [pydicom.dcmread(f) for f in files]
    datasets = [_renamed(templates[i % DISTINCT], i) for i in range(args.images)]
    studies = {str(ds.SOPInstanceUID): str(ds.StudyInstanceUID) for ds in datasets}
    image_mb = sum(Path(f).stat().st_size for f in files) / DISTINCT / MB

    home = work / "home"
    home.mkdir()
    # The watermark: enough room for the whole run (images, results, database) plus a margin,
    # so only the ballast file can push the disk below it.
    needed_mb = int(args.images * image_mb * 4) + 2048
    min_free_mb = max(shutil.disk_usage(work).free // MB - needed_mb, 64)
    pacs = LocalPacs(work / "pacs")
    pacs.scp.start()
    port = free_port()
    env = {
        **os.environ,
        "RASCORE_HOME": str(home),
        "RASCORE_DICOM_PORT": str(port),
        "RASCORE_DICOM_HOST": "127.0.0.1",
        "RASCORE_API_PORT": "0",
        "RASCORE_WORKERS": str(args.workers),
        "RASCORE_DESTINATIONS": f"DEMOPACS@127.0.0.1:{pacs.scp.port}",
        "RASCORE_MAX_ASSOCIATIONS": str(args.associations + 5),
        "RASCORE_MAX_ASSOCIATIONS_PER_HOST": str(args.associations + 5),
        "RASCORE_MIN_FREE_MB": str(min_free_mb),
    }
    for name in ("RASCORE_BROKER_URL", "RASCORE_DATABASE_URL", "RASCORE_STORE_DIR"):
        env.pop(name, None)
    log_path = home / "serve.log"
    log = open(log_path, "wb")  # noqa: SIM115
    node = subprocess.Popen(
        [sys.executable, "-m", "worker", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    watch = MemoryWatch(node.pid)
    watch.start()
    tally = Tally()
    counter = [0]
    full_window: dict[str, float] = {}
    try:
        deadline = time.monotonic() + 180
        while "node started" not in log_path.read_text(errors="replace"):
            if time.monotonic() > deadline or node.poll() is not None:
                raise SystemExit("rascore serve did not start")
            time.sleep(0.2)
        baseline_mb = watch.peak_total / MB

        start = time.monotonic()
        shares = [datasets[i :: args.associations] for i in range(args.associations)]
        senders = [Sender(port, tally, args.cut_every, counter) for _ in shares]
        threads = [
            threading.Thread(target=s.send_all, args=(share,), daemon=True)
            for s, share in zip(senders, shares, strict=True)
        ]
        for thread in threads:
            thread.start()
        while len(tally.acknowledged) < args.images // 2:
            time.sleep(0.1)
        ballast = _fill_disk(home, below_mb=max(min_free_mb - 32, 1))
        full_window["start"] = time.monotonic() - start
        time.sleep(args.full_s)
        ballast.unlink()
        full_window["end"] = time.monotonic() - start
        for thread in threads:
            thread.join()
        sent_s = time.monotonic() - start

        def delivered() -> int:
            with pacs.lock:
                return sum(r.complete for r in pacs.returned.values())

        while delivered() < len(tally.acknowledged) and time.monotonic() - start < args.timeout:
            time.sleep(1.0)
        all_done_s = time.monotonic() - start
        time.sleep(5)  # let the last delivery rows commit
    finally:
        node.send_signal(signal.SIGTERM)
        try:
            node.wait(120)
        except subprocess.TimeoutExpired:
            node.kill()
        watch.stop.set()
        pacs.scp.stop()

    checked = _check(home, pacs, tally, studies)
    figures = {
        "images": args.images,
        "associations": args.associations,
        "acknowledged": len(tally.acknowledged),
        "cuts": tally.cuts,
        "statuses": dict(tally.statuses),
        "disk_full_s": [round(full_window.get("start", 0), 1), round(full_window.get("end", 0), 1)],
        "all_sent_s": round(sent_s, 1),
        "all_results_s": round(all_done_s, 1),
        "images_per_minute": round(60 * args.images / all_done_s, 1),
        "node_memory_mb": {
            "after_start": round(baseline_mb),
            "peak_all_processes": round(watch.peak_total / MB),
            "peak_serve_process": round(watch.peak_serve / MB),
        },
        "image_mb": round(image_mb, 1),
        "machine_cpus": os.cpu_count(),
        **checked,
    }
    print(json.dumps(figures, indent=1))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"kept {work}", file=sys.stderr)
    sys.exit(1 if checked["problems"] else 0)


if __name__ == "__main__":
    main()
