"""The store: received images and result objects, under names the node chooses.

Every worker reads and writes the same folder (``RASCORE_STORE_DIR``); on several machines it is
a shared file system. Keys are relative paths made of a date and a uuid — never a UID from the
data, which could hold anything. Every write is atomic and durable: temporary file, fsync,
rename, fsync of the folder.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset
from sqlalchemy import select

from dicom_io.encoding import encode_file
from worker.db.engine import session_scope
from worker.db.models import Instance

log = logging.getLogger(__name__)

#: an image filed less than this long ago may belong to a C-STORE whose commit is on its way
ORPHAN_GRACE_S = 3600.0
_BATCH = 500


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _makedirs_durable(folder: Path) -> None:
    """Create ``folder`` and its missing parents, fsyncing each parent that gained an entry
    (else a power cut could lose a new day's folder with an acknowledged image in it)."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for new in reversed(missing):
        try:
            new.mkdir()
        except FileExistsError:  # another thread made it first
            continue
        _fsync_dir(new.parent)


class Store:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        """The file of ``key``; refuses keys that would leave the store."""
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"store key {key!r} leaves the store")
        return path

    @staticmethod
    def new_image_key(now: dt.datetime | None = None) -> str:
        now = now or dt.datetime.now(dt.UTC)
        return f"images/{now:%Y/%m/%d}/{uuid.uuid4().hex}.dcm"

    @staticmethod
    def result_key(job_id: int, kind: str) -> str:
        return f"results/{job_id // 1000:06d}/{job_id}/{kind}.dcm"

    @staticmethod
    def overlay_grey_key(job_id: int) -> str:
        """The grey copy scoring keeps for the overlay (beside the results, not in images/,
        where the orphan sweep removes whatever no instance row names)."""
        return f"results/{job_id // 1000:06d}/{job_id}/overlay-grey.png"

    def write_bytes(self, key: str, data: bytes) -> Path:
        """Write ``data`` to ``key`` durably: temporary file, fsync, rename, fsync of the folder."""
        target = self.path(key)
        _makedirs_durable(target.parent)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, target)
        _fsync_dir(target.parent)
        return target

    def file_image(self, spooled: Path, key: str) -> Path:
        """Move a spooled (already fsynced) file to ``key``, durably."""
        target = self.path(key)
        _makedirs_durable(target.parent)
        try:
            os.rename(spooled, target)
        except OSError:  # another file system (a shared store): copy, fsync, then rename
            tmp = target.with_suffix(".part")
            with open(spooled, "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
                dst.flush()
                os.fsync(dst.fileno())
            os.rename(tmp, target)
            spooled.unlink()
        _fsync_dir(target.parent)
        return target

    def write_dataset(self, key: str, dataset: Dataset) -> Path:
        target = self.path(key)
        _makedirs_durable(target.parent)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
        with open(tmp, "wb") as f:
            f.write(encode_file(dataset))  # pydicom's bytes, several times faster
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, target)
        _fsync_dir(target.parent)
        return target

    def remove(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)


@dataclass(frozen=True)
class OrphanSweep:
    """What :func:`sweep_orphan_images` found and removed."""

    checked: int
    removed: int
    bytes: int


def _old_image_files(store: Store, cutoff: float) -> Iterator[tuple[str, Path]]:
    images = store.root / "images"
    if not images.is_dir():
        return
    for folder, _dirs, files in os.walk(images):
        for name in files:
            path = Path(folder) / name
            try:
                if path.is_symlink() or path.stat().st_mtime >= cutoff:
                    continue
            except OSError:
                continue
            yield path.relative_to(store.root).as_posix(), path


def sweep_orphan_images(
    store: Store, database_url: str, grace_s: float = ORPHAN_GRACE_S
) -> OrphanSweep:
    """Remove image files that no Instance row references and that are older than ``grace_s``.

    The receiver files an image before it commits its row, so a crash in between leaves a
    file nobody will ever read; its sender got no success and sends it again. Younger files
    are left alone: their C-STORE may be committing right now. Left-over ``.part`` files of
    a copy to a shared store are removed the same way.
    """
    cutoff = time.time() - grace_s
    checked = removed = size = 0
    batch: list[tuple[str, Path]] = []

    def flush() -> None:
        nonlocal removed, size
        keys = [key for key, _ in batch]
        with session_scope(database_url) as session:
            known = set(
                session.scalars(select(Instance.store_key).where(Instance.store_key.in_(keys)))
            )
        for key, path in batch:
            if key in known:
                continue
            try:
                length = path.stat().st_size
                path.unlink()
            except OSError:
                continue
            removed, size = removed + 1, size + length
        batch.clear()

    for key, path in _old_image_files(store, cutoff):
        checked += 1
        batch.append((key, path))
        if len(batch) >= _BATCH:
            flush()
    if batch:
        flush()
    result = OrphanSweep(checked=checked, removed=removed, bytes=size)
    if removed:
        log.warning(
            "removed %d image file(s) no instance references",
            removed,
            extra={"event": "store.orphans_swept", "files": removed, "bytes": size},
        )
    return result
