"""The SCP's spool: received data sets made into durable Part-10 files.

pynetdicom writes a received data set into ``tmp`` behind the file meta the spool keeps; that
file is hashed, fsynced, checked, renamed into ``incoming`` and the folder fsynced; only then
may the C-STORE be acknowledged. File names come from ``uuid4``, never from a UID in the data.
A deflated data set (or a file behind any other meta) is copied instead, a deflated one
inflated as it is copied, its output counted, so that no later reader inflates anything.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import mmap
import os
import shutil
import threading
import zlib
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import FileMetaDataset
from pydicom.uid import UID
from pynetdicom import dimse_messages
from pynetdicom.dsutils import encode_file_meta

from dicom_io.net.handler import CannotUnderstand, DataSetMismatch, OutOfResources
from dicom_io.net.peers import ae_title_problem

logger = logging.getLogger(__name__)


COPY_CHUNK = 1 << 20
MB = 1024 * 1024
DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


_hook_lock = threading.Lock()
_hook_installed = False


def keep_pynetdicom_temporary_files_in_the_spool() -> None:
    """Make pynetdicom write a received data set's temporary file into the spool's ``tmp``,
    behind the file meta the spool keeps (:func:`spool_meta`).

    pynetdicom calls ``NamedTemporaryFile`` without a folder (the system's temporary folder,
    often another, smaller disk) and writes its own file meta. With the spool's folder and
    meta, the file can become the spooled file by a rename instead of a copy
    (:func:`adopt_part10`). The data set is decoded in the association's DUL thread, so the
    folder is found from that thread's association and its server; anything else keeps
    pynetdicom's defaults.
    """
    global _hook_installed
    with _hook_lock:
        if _hook_installed:
            return
        original_file = dimse_messages.NamedTemporaryFile
        original_meta = dimse_messages.create_file_meta

        def named_temporary_file(*args: Any, **kwargs: Any) -> Any:
            folder = getattr(getattr(_this_association(), "_server", None), "tmp_dir", None)
            if "dir" not in kwargs and folder is not None:
                kwargs["dir"] = folder
            return original_file(*args, **kwargs)

        def create_file_meta(*, sop_class_uid: Any, sop_instance_uid: Any, **kwargs: Any) -> Any:
            assoc = _this_association()
            syntax = kwargs.get("transfer_syntax")
            if getattr(getattr(assoc, "_server", None), "tmp_dir", None) is None or not syntax:
                return original_meta(
                    sop_class_uid=sop_class_uid, sop_instance_uid=sop_instance_uid, **kwargs
                )
            return spool_meta(assoc, str(sop_class_uid), str(sop_instance_uid), UID(syntax))

        dimse_messages.NamedTemporaryFile = named_temporary_file
        dimse_messages.create_file_meta = create_file_meta
        _hook_installed = True


def _this_association() -> Any:
    return getattr(threading.current_thread(), "assoc", None)


def spool_meta(assoc: Any, sop_class: str, sop_instance: str, syntax: UID) -> FileMetaDataset:
    """A spooled file's meta: its UIDs, its (inflated) syntax, this node, the sender."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance)
    meta.TransferSyntaxUID = syntax
    meta.ImplementationClassUID = assoc.ae.implementation_class_uid
    if assoc.ae.implementation_version_name:
        meta.ImplementationVersionName = assoc.ae.implementation_version_name
    calling = assoc.requestor.ae_title.strip()
    if ae_title_problem(calling) is None:
        meta.SourceApplicationEntityTitle = calling
    return meta


def inflate(data: Any, out: Any, digest: Any, cap: int) -> None:
    """Inflate a Deflated Explicit VR LE data set from ``data`` into ``out``, never holding
    more than a chunk in memory, and refuse it as soon as its output passes ``cap`` bytes."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    written = 0
    try:
        for chunk in iter(lambda: data.read(COPY_CHUNK), b""):
            digest.update(chunk)  # bytes after the end of the stream are hashed, not inflated
            pending = chunk
            while not inflater.eof:
                piece = inflater.decompress(pending, COPY_CHUNK)
                pending = inflater.unconsumed_tail
                written += len(piece)
                if written > cap:
                    raise CannotUnderstand(f"data set inflates beyond {cap // MB} MB")
                out.write(piece)
                if not pending and not piece:
                    break
    except zlib.error as exc:
        raise CannotUnderstand("deflated data set is corrupt") from exc
    if not inflater.eof:
        raise CannotUnderstand("deflated data set is truncated")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def carries_meta(source: Path, offset: int, meta: Any) -> bool:
    """Whether ``source`` begins with exactly the preamble and file meta ``meta`` encodes."""
    with open(source, "rb") as data:
        head = data.read(offset)
    return head[128:] == b"DICM" + encode_file_meta(meta) and not any(head[:128])


def write_part10(
    source: Path,
    offset: int,
    meta: Any,
    *,
    part: Path,
    final: Path,
    digest: Any,
    inflate_cap: int | None,
) -> int:
    """Make the data set at ``offset`` of ``source``, behind ``meta``, the durable file
    ``final``: written to ``part``, fsynced, checked against ``meta``'s UIDs, renamed and the
    folder fsynced. ``digest`` sees the data set as received; with ``inflate_cap`` it is
    inflated, refused beyond that many bytes. Returns the file's size; a write that fails
    (disk full) is :class:`OutOfResources`."""
    try:
        with open(part, "xb") as out, open(source, "rb") as data:
            out.write(b"\x00" * 128 + b"DICM" + encode_file_meta(meta))
            data.seek(offset)
            if inflate_cap is not None:
                inflate(data, out, digest, inflate_cap)
            else:
                while chunk := data.read(COPY_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
            size = out.tell()
        check_header(part, str(meta.MediaStorageSOPClassUID), str(meta.MediaStorageSOPInstanceUID))
        os.replace(part, final)
        fsync_dir(final.parent)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            part.unlink()
        if isinstance(exc, OSError):
            raise _spool_error(exc) from exc
        raise
    return size


def adopt_part10(source: Path, offset: int, meta: Any, *, final: Path, digest: Any) -> int:
    """Make pynetdicom's received file ``source`` (already behind ``meta``, in the spool's
    ``tmp``) the durable file ``final``: hashed from ``offset``, fsynced, checked against
    ``meta``'s UIDs, renamed and the folder fsynced. An image's 12 MB are thus written once,
    not copied again; pynetdicom's later unlink of ``source`` finds nothing. Returns the
    file's size."""
    renamed = False
    try:
        with open(source, "rb") as data:
            size = os.fstat(data.fileno()).st_size
            hash_mapped(data.fileno(), offset, size, digest)
            os.fsync(data.fileno())
        sop_class, sop_instance = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
        check_header(source, str(sop_class), str(sop_instance))
        os.replace(source, final)
        renamed = True
        fsync_dir(final.parent)
    except OSError as exc:
        if renamed:
            with contextlib.suppress(OSError):
                final.unlink()
        raise _spool_error(exc) from exc
    return size


def hash_mapped(fd: int, offset: int, size: int, digest: Any) -> None:
    """Hash bytes ``offset:size`` of ``fd`` through a mapping, in one call.

    hashlib drops the GIL while it hashes, and a chunked read took it back ~25 times per
    12 MB image: under ten associations each retake could wait a whole switch interval (5 ms)
    for the GIL. One call over the mapping retakes it once, and copies nothing."""
    if size <= offset:
        return
    with mmap.mmap(fd, size, access=mmap.ACCESS_READ) as mapped, memoryview(mapped) as view:
        digest.update(view[offset:])


def _spool_error(exc: OSError) -> OutOfResources:
    logger.error(
        "cannot write the spool: %s",
        exc.strerror or exc,
        extra={"event": "dicom.store.spool_error", "errno": exc.errno},
    )
    why = "spool disk is full" if exc.errno in DISK_FULL else "cannot write the spool"
    return OutOfResources(why)


def check_header(path: Path, sop_class: str, sop_instance: str) -> None:
    """The data set must parse and name the same SOP class and instance as the request."""
    try:
        # Large values (a hostile private element) are skipped over, never read into memory.
        ds = dcmread(path, stop_before_pixels=True, defer_size=MB)
        ds_class = str(ds.get("SOPClassUID", "") or "")
        ds_instance = str(ds.get("SOPInstanceUID", "") or "")
    except Exception as exc:
        raise CannotUnderstand("data set cannot be parsed") from exc
    if not ds_class or not ds_instance:
        raise CannotUnderstand("data set has no SOP Class or SOP Instance UID")
    if ds_class != sop_class:
        raise DataSetMismatch("SOP Class UID differs from the C-STORE request")
    if ds_instance != sop_instance:
        raise DataSetMismatch("SOP Instance UID differs from the C-STORE request")


def sweep(folders: list[Path]) -> None:
    """Remove what a previous run left in ``folders``: at start no association is running."""
    files = size = 0
    for folder in folders:
        for path in folder.iterdir():
            with contextlib.suppress(OSError):
                if path.is_file() and not path.is_symlink():
                    length = path.stat().st_size
                    path.unlink()
                    files, size = files + 1, size + length
    if files:
        logger.warning(
            "removed %d orphaned file(s) (%d bytes) from the spool",
            files,
            size,
            extra={"event": "dicom.spool.swept", "files": files, "bytes": size},
        )


def full_disk(folders: tuple[Path, ...], min_free: int, need: int) -> Path | None:
    """The first of ``folders`` whose disk would keep less than ``min_free`` bytes free after
    ``need`` more (0: no watermark); a folder that is not mounted is as good as full."""
    if not min_free:
        return None
    for folder in folders:
        try:
            if shutil.disk_usage(folder).free - need < min_free:
                return folder
        except OSError:
            return folder
    return None


def discard_partial(event: Any) -> None:
    """On a closed connection (``EVT_CONN_CLOSE``), remove the temporary file of a data set
    whose transfer the peer broke off."""
    message = getattr(getattr(event.assoc, "dimse", None), "message", None)
    partial = getattr(message, "_data_set_file", None)
    if partial is None:
        return
    with contextlib.suppress(OSError):
        partial.close()
        os.unlink(partial.name)
    logger.warning(
        "connection closed in the middle of a data set; partial data discarded",
        extra={
            "event": "dicom.store.partial_discarded",
            "peer_host": event.assoc.requestor.address,
            "partial_path": str(partial.name),
        },
    )
