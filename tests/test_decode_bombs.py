"""Decompression and spacing bombs: refused before any decoder runs, with the memory bounded.

Issue 11, finding 2: only the header's Rows and Columns were bounded. An 82-byte JPEG 2000
codestream of 16000² behind a 100² header decoded to gigabytes, a deflated data set inflated
without limit, and Pixel Spacing 4\\4 on a 4000² image made a 32000² working image. Each bomb is
built here with real encoders (dcmtk, pydicom's, zlib) or by hand where a header is all it
takes; the memory is measured as the peak RSS of a child process doing the read.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    HTJ2KLossless,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLossless,
    JPEGLSLossless,
    RLELossless,
)
from radiographs import disc_on_ramp, hand_spec, study
from spooled import spooled

from dicom_io import reading
from dicom_io.radiograph import build_radiograph
from dicom_io.reading import CorruptImage, ImageTooLarge, UnreadableImage, decode, read_radiograph
from scoring.detection import cascade

ROOT = "1.2.826.0.1.3680043.10.543.11"  # test UIDs only
REPO = Path(__file__).resolve().parents[1]
STUDY = study(ROOT, "Bomb^Test", "BOMB-0001", "BOMB0001")
#: the acceptance bound is 500 MB for the node; a single read must stay far below it
MAX_GROWTH_MB = 200


# Inputs


def radiograph(rows: int = 100, columns: int = 100, spacing: float = 0.15) -> Dataset:
    """A CR with a bright disc on a ramp, with a real header (see tests/radiographs.py)."""
    pixels = disc_on_ramp(rows, columns, 4095)
    return build_radiograph(hand_spec(ROOT, pixels, pixel_spacing_mm=spacing), STUDY)


def j2k_codestream(rows: int, columns: int, bits: int = 12, components: int = 1) -> bytes:
    """A valid JPEG 2000 codestream of a flat image: one tile, no wavelet levels, one empty
    packet. A few dozen bytes whatever the size, so it decodes to rows × columns of nothing."""
    siz = struct.pack(">HHIIIIIIIIH", 38 + 3 * components, 0, columns, rows, 0, 0, columns, rows,
                      0, 0, components)  # fmt: skip
    siz += bytes([bits - 1, 1, 1]) * components
    cod = struct.pack(">HBBHBBBBBB", 12, 0, 0, 1, 0, 0, 4, 4, 0, 1)
    qcd = struct.pack(">HBB", 4, 0x40, bits << 3)
    packet = b"\x00"
    sot = struct.pack(">HHIBB", 10, 0, 12 + 2 + len(packet), 0, 1)
    return (
        b"".join(
            (b"\xff\x4f\xff\x51", siz, b"\xff\x52", cod, b"\xff\x5c", qcd, b"\xff\x90", sot),
        )
        + b"\xff\x93"
        + packet
        + b"\xff\xd9"
    )


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def jp2(codestream: bytes, rows: int, columns: int) -> bytes:
    """The codestream wrapped as a JP2 file (signature, ftyp, jp2h with ihdr and colr, jp2c),
    as some archives store JPEG 2000 frames."""
    ihdr = struct.pack(">IIHBBBB", rows, columns, 1, 11, 7, 0, 0)
    colr = struct.pack(">BBBI", 1, 0, 0, 17)  # enumerated: greyscale
    return (
        box(b"jP  ", b"\r\n\x87\n")
        + box(b"ftyp", b"jp2 " + b"\x00\x00\x00\x00" + b"jp2 ")
        + box(b"jp2h", box(b"ihdr", ihdr) + box(b"colr", colr))
        + box(b"jp2c", codestream)
    )


def with_frame(ds: Dataset, transfer_syntax: str, frame: bytes) -> Dataset:
    ds.file_meta.TransferSyntaxUID = UID(transfer_syntax)
    ds.PixelData = encapsulate([frame])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    return ds


def dcmtk_frame(tmp_path: Path, *command: str) -> tuple[Dataset, bytes]:
    """A real frame from a dcmtk encoder, and the data set it came in."""
    tool = shutil.which(command[0])
    if tool is None:
        pytest.fail(f"{command[0]} is not installed; install the Debian package dcmtk")
    source, target = tmp_path / "plain.dcm", tmp_path / "encoded.dcm"
    radiograph().save_as(source, enforce_file_format=True)
    subprocess.run([tool, *command[1:], str(source), str(target)], check=True, timeout=60)
    ds = pydicom.dcmread(target)
    return ds, next(generate_frames(ds.PixelData, number_of_frames=1))


def patch_sof(frame: bytes, rows: int, columns: int) -> bytes:
    """The JPEG (or JPEG-LS) frame with its SOF's height and width replaced."""
    i = 2
    while i < len(frame):
        marker = frame[i + 1]
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xF7):
            return frame[: i + 5] + struct.pack(">HH", rows, columns) + frame[i + 9 :]
        i += 2 + struct.unpack(">H", frame[i + 2 : i + 4])[0]
    raise AssertionError("no SOF marker")


def never_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a decoder ran on a frame that should have been refused")

    monkeypatch.setattr(decode, "pixel_array", never)
    monkeypatch.setattr(decode, "_decode_with_dcmtk", never)


def one_line(exc: pytest.ExceptionInfo[UnreadableImage]) -> str:
    message = str(exc.value)
    assert message and "\n" not in message, f"not a one-line reason: {message!r}"
    return message


# Compressed frames whose own header disagrees with the data set's


def test_a_small_hand_made_codestream_is_a_real_one() -> None:
    """The bomb's recipe at the header's own size decodes: the codestreams below are valid."""
    image = read_radiograph(with_frame(radiograph(), JPEG2000Lossless, j2k_codestream(100, 100)))
    assert image.pixels.shape == (100, 100)
    image = read_radiograph(
        with_frame(radiograph(), JPEG2000Lossless, jp2(j2k_codestream(100, 100), 100, 100))
    )
    assert image.pixels.shape == (100, 100)


@pytest.mark.parametrize(
    ("transfer_syntax", "frame"),
    [
        pytest.param(JPEG2000Lossless, j2k_codestream(16000, 16000), id="j2k"),
        pytest.param(HTJ2KLossless, j2k_codestream(16000, 16000), id="htj2k"),
        pytest.param(JPEG2000Lossless, jp2(j2k_codestream(16000, 16000), 16000, 16000), id="jp2"),
        pytest.param(
            JPEG2000Lossless, jp2(j2k_codestream(16000, 16000), 100, 100), id="jp2-ihdr-lies"
        ),
    ],
)
def test_jpeg_2000_bombs_are_refused_before_decoding(
    transfer_syntax: str, frame: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    never_decode(monkeypatch)
    ds = with_frame(radiograph(), transfer_syntax, frame)
    start = time.perf_counter()
    with pytest.raises(ImageTooLarge) as exc:
        read_radiograph(ds)
    assert time.perf_counter() - start < 2.0
    message = one_line(exc)
    assert "too large" in message and "16000 × 16000" in message and "100 × 100" in message


@pytest.mark.parametrize(
    ("frame", "words"),
    [
        pytest.param(j2k_codestream(300, 100), "300 × 100", id="j2k-taller"),
        pytest.param(j2k_codestream(100, 100, components=3), "3 components", id="j2k-colour"),
        pytest.param(j2k_codestream(100, 100, bits=16 + 8), "24 bits", id="j2k-deeper"),
        pytest.param(j2k_codestream(100, 100)[:20], "could not be decoded", id="j2k-cut"),
        pytest.param(b"\x00" * 64, "could not be decoded", id="not-j2k"),
    ],
)
def test_jpeg_2000_frames_that_disagree_with_the_header_are_corrupt(
    frame: bytes, words: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    never_decode(monkeypatch)
    with pytest.raises(CorruptImage) as exc:
        read_radiograph(with_frame(radiograph(), JPEG2000Lossless, frame))
    assert words in one_line(exc)


@pytest.mark.parametrize(
    ("command", "transfer_syntax"),
    [
        pytest.param(("dcmcjpeg", "+eb", "+rm"), JPEGBaseline8Bit, id="jpeg-baseline"),
        pytest.param(("dcmcjpeg", "+el"), JPEGLossless, id="jpeg-lossless"),
        pytest.param(("dcmcjpls",), JPEGLSLossless, id="jpeg-ls"),
    ],
)
def test_jpeg_bombs_are_refused_before_decoding(
    command: tuple[str, ...], transfer_syntax: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds, frame = dcmtk_frame(tmp_path, *command)
    assert ds.file_meta.TransferSyntaxUID == transfer_syntax
    assert read_radiograph(ds).pixels.shape == (100, 100)  # the real frame reads
    never_decode(monkeypatch)
    with pytest.raises(ImageTooLarge) as exc:
        read_radiograph(with_frame(ds, transfer_syntax, patch_sof(frame, 60000, 60000)))
    message = one_line(exc)
    assert "too large" in message and "60000 × 60000" in message and "100 × 100" in message
    with pytest.raises(CorruptImage, match="100 × 101"):
        read_radiograph(with_frame(ds, transfer_syntax, patch_sof(frame, 100, 101)))


def test_rle_header_is_checked_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    ds = radiograph()
    ds.compress(RLELossless, generate_instance_uid=False)
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    assert struct.unpack("<I", frame[:4])[0] == 2  # 16 bits: two byte segments
    never_decode(monkeypatch)
    eight = struct.pack("<I", 8) + frame[4:]
    with pytest.raises(CorruptImage, match="8 segments") as exc:
        read_radiograph(with_frame(radiograph(), RLELossless, eight))
    one_line(exc)
    beyond = frame[:8] + struct.pack("<I", len(frame) + 10_000) + frame[12:]
    with pytest.raises(CorruptImage, match="offset") as exc:
        read_radiograph(with_frame(radiograph(), RLELossless, beyond))
    one_line(exc)


# Deflated data sets


def deflated_file(path: Path, rows: int, columns: int, pixel_bytes: int) -> Path:
    """A deflated CR file whose Pixel Data holds ``pixel_bytes`` bytes (zeros past the image),
    written the way a hostile sender would: a small header, then a huge element."""
    ds = radiograph(rows, columns)
    del ds.PixelData
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, False
    write_dataset(body, ds)
    meta = DicomBytesIO()
    meta.is_little_endian, meta.is_implicit_VR = True, False
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    write_file_meta_info(meta, ds.file_meta, enforce_standard=True)
    squeeze = zlib.compressobj(1, zlib.DEFLATED, -zlib.MAX_WBITS)
    with path.open("wb") as out:
        out.write(b"\x00" * 128 + b"DICM" + meta.getvalue())
        out.write(squeeze.compress(body.getvalue()))
        out.write(squeeze.compress(b"\xe0\x7f\x10\x00OW\x00\x00" + struct.pack("<I", pixel_bytes)))
        image = radiograph(rows, columns).PixelData
        out.write(squeeze.compress(image))
        zeros = bytes(1 << 20)
        left = pixel_bytes - len(image)
        while left > 0:
            out.write(squeeze.compress(zeros[: min(left, len(zeros))]))
            left -= len(zeros)
        out.write(squeeze.flush())
    return path


def test_a_deflated_file_that_fits_its_header_reads(tmp_path: Path) -> None:
    """2,000² of 16 bits (8 MB inflated, past the first probe of the header) reads as before."""
    path = deflated_file(tmp_path / "fits.dcm", 2000, 2000, 2000 * 2000 * 2)
    image = read_radiograph(path)
    assert image.pixels.shape == (2000, 2000)
    assert image.transfer_syntax_uid == DeflatedExplicitVRLittleEndian
    assert reading.read_dicom(path).Rows == 2000


def test_a_corrupt_deflated_stream_is_refused(tmp_path: Path) -> None:
    path = deflated_file(tmp_path / "ok.dcm", 100, 100, 100 * 100 * 2)
    data = bytearray(path.read_bytes())
    data[-200:] = b"\xff" * 200
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptImage) as exc:
        read_radiograph(path)
    one_line(exc)


# Memory, measured in a child process


#: The child's memory: the kernel's peak RSS (VmHWM) is reset just before the read, so the
#: growth is the read's own high-water mark above what the process held before it.
MEMORY = """
def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
def reset():
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    return status("VmRSS")
peak = lambda: status("VmHWM")
"""

CHILD = MEMORY + textwrap.dedent(
    """
    import json, resource, sys, time
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # the test machine is shared
    from dicom_io.reading import UnreadableImage, read_radiograph
    read_radiograph(sys.argv[2])  # warm: decoders imported, caches filled
    before, start, outcome = reset(), time.perf_counter(), {}
    try:
        image = read_radiograph(sys.argv[1])
        outcome = {"error": None, "shape": list(image.pixels.shape)}
    except UnreadableImage as exc:
        outcome = {"error": type(exc).__name__, "message": str(exc)}
    except MemoryError as exc:
        outcome = {"error": "MemoryError", "message": str(exc)}
    outcome.update(seconds=time.perf_counter() - start, growth_mb=peak() - before, base_mb=before)
    print(json.dumps(outcome))
    """
)


def read_in_child(path: Path, warm: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(warm)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    outcome: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(path.name, outcome)  # the figures, with -s
    return outcome


def test_jpeg_2000_bomb_memory(tmp_path: Path) -> None:
    warm, bomb = tmp_path / "warm.dcm", tmp_path / "bomb.dcm"
    with_frame(radiograph(), JPEG2000Lossless, j2k_codestream(100, 100)).save_as(warm)
    with_frame(radiograph(), JPEG2000Lossless, j2k_codestream(16000, 16000)).save_as(bomb)
    assert bomb.stat().st_size < 4000
    outcome = read_in_child(bomb, warm)
    assert outcome["error"] == "ImageTooLarge", outcome
    assert outcome["growth_mb"] < MAX_GROWTH_MB and outcome["seconds"] < 5.0


def test_deflate_bomb_memory(tmp_path: Path) -> None:
    warm = deflated_file(tmp_path / "warm.dcm", 100, 100, 100 * 100 * 2)
    bomb = deflated_file(tmp_path / "bomb.dcm", 100, 100, 512 << 20)
    assert bomb.stat().st_size < 4 << 20
    outcome = read_in_child(bomb, warm)
    assert outcome["error"] == "ImageTooLarge" and "too large" in outcome["message"], outcome
    assert outcome["growth_mb"] < MAX_GROWTH_MB and outcome["seconds"] < 10.0
    with pytest.raises(ImageTooLarge):
        reading.read_dicom(bomb)


# Pixel spacing


def test_implausible_pixel_spacing_is_ignored_with_the_reason() -> None:
    ds = radiograph(spacing=4.0)
    image = read_radiograph(ds)
    assert image.pixel_spacing_mm is None and image.spacing_source is None
    assert "Pixel Spacing" in image.spacing_note and "4" in image.spacing_note
    ds.ImagerPixelSpacing = [0.15, 0.15]  # a plausible one behind it is used
    image = read_radiograph(ds)
    assert image.pixel_spacing_mm == (0.15, 0.15)
    assert image.spacing_source == "ImagerPixelSpacing" and "ignored" in image.spacing_note
    assert read_radiograph(radiograph(spacing=0.15)).spacing_note == ""


def test_the_working_image_is_bounded_whatever_the_spacing() -> None:
    grey = np.zeros((600, 500), np.float32)
    small, factor = cascade.working_image(
        grey, 0.05
    )  # 0.05 mm to 0.5 mm: 6,000 px without the bound
    assert max(small.shape) <= cascade.MAX_WORKING_SIDE
    assert small.shape[0] == pytest.approx(600 / factor, abs=1)
    normal, normal_factor = cascade.working_image(grey, 0.15)  # the usual case is untouched
    assert normal_factor == pytest.approx(0.5 / 0.15) and normal.shape == (180, 150)
    with pytest.raises(ValueError, match="spacing"):
        cascade.working_image(grey, 0.0)


SPACING_CHILD = MEMORY + textwrap.dedent(
    """
    import json, resource, sys, time
    import cv2
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # the test machine is shared
    from dicom_io.reading import read_radiograph
    from scoring.detection.cascade import CascadeDetector
    from scoring.pipeline import Scorer
    scorer = Scorer.load()
    # the paper's detector path, with a cascade OpenCV ships: the working image is what counts
    scorer.keypoints = None
    scorer.detector = CascadeDetector(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    before, start = reset(), time.perf_counter()
    image = read_radiograph(sys.argv[1])
    spacing = image.pixel_spacing_mm[1] if image.pixel_spacing_mm else None
    try:
        score = scorer.score(image.pixels, spacing, image.laterality)
        outcome = {"error": None, "spacing_mm": score.spacing_mm,
                   "assumed": score.spacing_assumed, "note": image.spacing_note}
    except Exception as exc:
        outcome = {"error": type(exc).__name__, "message": str(exc)[:300]}
    outcome.update(seconds=time.perf_counter() - start, growth_mb=peak() - before, base_mb=before)
    print(json.dumps(outcome))
    """
)


def test_spacing_bomb_memory(tmp_path: Path) -> None:
    """Pixel Spacing 4\\4 on a 4000² image: the reader ignores it, the scorer works at its
    fallback spacing, and the process grows by what the image itself needs (32 MB stored,
    64 MB display) plus a bounded working image."""
    path = tmp_path / "spacing.dcm"
    ds = radiograph(4000, 4000, spacing=4.0)
    ds.save_as(path, enforce_file_format=True)
    del ds
    proc = subprocess.run(
        [sys.executable, "-c", SPACING_CHILD, str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    outcome = json.loads(proc.stdout.strip().splitlines()[-1])
    print(outcome)
    assert outcome["error"] is None, outcome
    assert outcome["assumed"] and "Pixel Spacing" in outcome["note"]
    assert outcome["growth_mb"] < 2 * MAX_GROWTH_MB


def test_scorer_ignores_an_implausible_spacing() -> None:
    """The guard in scoring holds without dicom_io's: a spacing of 4 mm is treated as absent."""
    from scoring.pipeline import Scorer

    scorer = Scorer.load()
    grey = np.zeros((400, 300), np.float32)
    score = scorer.score(grey, 4.0, "L")
    assert score.spacing_assumed and score.spacing_mm != 4.0
    assert "4" in score.spacing_note
    assert not scorer.score(grey, 0.15, "L").spacing_assumed


# dcmtk's decoders


def jpeg_extended() -> Path:
    """A 12-bit JPEG Extended image (pydicom's test data): only dcmdjpeg decodes it here."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file("JPGExtended.dcm", download=False)
    assert isinstance(path, str)
    return Path(path)


def test_dcmtk_decoder_runs_under_a_memory_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    path = jpeg_extended()
    assert read_radiograph(path).decoder == "dcmtk dcmdjpeg"
    monkeypatch.setattr(decode, "DCMTK_MEMORY_MB", 16)  # too little even to start
    with pytest.raises(CorruptImage) as exc:
        read_radiograph(path)
    message = one_line(exc)
    assert "dcmdjpeg" in message and "16 MB" in message


def test_dcmtk_decoder_runs_under_a_time_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    path = jpeg_extended()
    monkeypatch.setattr(decode, "DCMTK_TIMEOUT_S", 0.001)
    with pytest.raises(CorruptImage) as exc:
        read_radiograph(path)
    message = one_line(exc)
    assert "dcmdjpeg" in message and "0.001 s" in message


def test_an_oversized_image_says_too_large() -> None:
    """The job's reason is the message: it must say so in words an operator searches for."""
    ds = radiograph()
    ds.Rows = ds.Columns = 20000
    with pytest.raises(ImageTooLarge, match="too large") as exc:
        read_radiograph(ds)
    one_line(exc)


def test_a_decoder_out_of_memory_says_too_large(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever slips past the checks and exhausts memory is refused as too large, not as a
    corrupt file (the operator's next step differs)."""

    def exhausted(*args: Any, **kwargs: Any) -> None:
        raise MemoryError

    monkeypatch.setattr(decode, "pixel_array", exhausted)
    ds = with_frame(radiograph(), JPEG2000Lossless, j2k_codestream(100, 100))
    with pytest.raises(ImageTooLarge, match="too large") as exc:
        read_radiograph(ds)
    one_line(exc)


def test_a_jpeg_with_large_app_segments_still_reads(tmp_path: Path) -> None:
    """EXIF and ICC segments (up to 64 kB each) come before the SOF: the header search must
    look past them, or real files converted from camera JPEGs would be refused."""
    ds, frame = dcmtk_frame(tmp_path, "dcmcjpeg", "+eb", "+rm")
    app = b"\xff\xe1" + struct.pack(">H", 60_002) + bytes(60_000)
    padded = frame[:2] + app * 3 + frame[2:]
    image = read_radiograph(with_frame(ds, JPEGBaseline8Bit, padded))
    assert image.pixels.shape == (100, 100)


# -- on arrival: the node refuses a bomb while the sender can still be told ---------------------


def _receiver(tmp_path: Path) -> Any:
    from worker.db import migrate
    from worker.model_ref import ModelRef
    from worker.node.receiving import Receiver
    from worker.node.store import Store

    url = f"sqlite:///{tmp_path / 'rascore.db'}"
    migrate.upgrade(url)
    return Receiver(
        url, Store(tmp_path / "store"), ModelRef(tmp_path, "m", "1"), ["HAND"], lambda _: True
    )


@pytest.mark.parametrize(
    ("transfer_syntax", "frame", "comment"),
    [
        (JPEG2000Lossless, j2k_codestream(16000, 16000), "image too large"),
        (JPEG2000Lossless, j2k_codestream(900, 900), "disagrees with Rows/Columns"),
        (JPEG2000Lossless, jp2(j2k_codestream(16000, 16000), 16000, 16000), "image too large"),
    ],
    ids=["j2k-16000", "j2k-900", "jp2-16000"],
)
def test_the_receiver_refuses_a_bomb_with_0xc000(
    tmp_path: Path, transfer_syntax: str, frame: bytes, comment: str
) -> None:
    from dicom_io.net import CannotUnderstand

    receiver = _receiver(tmp_path)
    bomb = with_frame(radiograph(), transfer_syntax, frame)
    with pytest.raises(CannotUnderstand, match=comment) as refused:
        receiver(spooled(tmp_path / "spool", bomb))
    assert refused.value.status == 0xC000 and len(str(refused.value)) <= 64
    assert not list((tmp_path / "store").rglob("*.dcm")), "nothing filed"
    # a true frame of the size the header says is accepted as before
    honest = with_frame(radiograph(), transfer_syntax, j2k_codestream(100, 100))
    assert receiver(spooled(tmp_path / "spool", honest)) == 0x0000


def test_the_receiver_refuses_a_spacing_bomb_with_0xc000(tmp_path: Path) -> None:
    """4 mm a pixel on 4,000²: an image 16 m wide, refused on arrival; a spacing too small to
    be true makes nothing larger and is left to the reader, which passes it over."""
    from dicom_io.net import CannotUnderstand

    receiver = _receiver(tmp_path)
    with pytest.raises(CannotUnderstand, match="implausible pixel spacing") as refused:
        receiver(spooled(tmp_path / "spool", radiograph(4000, 4000, spacing=4.0)))
    assert refused.value.status == 0xC000
    with pytest.raises(reading.ImplausibleSpacing, match=r"16\.0 × 16\.0 m"):
        reading.check_bounds(_saved(tmp_path))
    assert receiver(spooled(tmp_path / "spool", radiograph(200, 200, spacing=0.001))) == 0x0000
    assert receiver(spooled(tmp_path / "spool", radiograph(200, 200, spacing=2.0))) == 0x0000


def _saved(tmp_path: Path) -> Path:
    path = tmp_path / "spacing-bomb.dcm"
    radiograph(4000, 4000, spacing=4.0).save_as(path, enforce_file_format=True)
    return path
