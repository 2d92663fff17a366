"""A compressed frame's own header, read before any decoder allocates what it claims.

The JPEG 2000 SIZ marker or JP2 ``ihdr`` box, the JPEG and JPEG-LS SOF and the RLE segment
table must agree with Rows, Columns, Samples per Pixel and Bits Allocated: an 82-byte
codestream that claims 16,000² pixels is refused, never allocated.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from pydicom import Dataset
from pydicom.encaps import generate_fragments
from pydicom.uid import (
    HTJ2K,
    JPEG2000,
    UID,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

from dicom_io.reading.errors import (
    BOUND,
    MAX_PIXELS,
    MAX_SIDE,
    CorruptImage,
    ImageTooLarge,
    header_int,
    one_line,
)

JPEG_FAMILY = frozenset(
    {JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLossless, JPEGLosslessSV1}
    # retired JPEG processes (1.2.840.10008.1.2.4.52 - .66) that old archives still hold
    | {UID(f"1.2.840.10008.1.2.4.{n}") for n in range(52, 67)}
)

J2K = frozenset({JPEG2000, JPEG2000Lossless, HTJ2K, HTJ2KLossless, HTJ2KLosslessRPCL})
JPEG_LS = frozenset({JPEGLSLossless, JPEGLSNearLossless})
_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
#: SOFn markers: baseline, extended, progressive, lossless (Huffman and arithmetic) and
#: JPEG-LS (SOF55, SOF57)
_SOF = frozenset(
    {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7, 0xF9}
)
#: markers without a length: TEM, RST0-7, SOI
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})
#: how much of a frame's start is read for its header: a JPEG's APPn segments (EXIF, ICC
#: profiles) come before its SOF
_HEADER_BYTES = 1 << 20


@dataclass(frozen=True)
class FrameHeader:
    """What a compressed frame says of itself, read from its own header before any decoder."""

    what: str  # e.g. "JPEG 2000 codestream", "JP2 ihdr box", "JPEG SOF3 header"
    rows: int
    columns: int
    samples: int
    bits: int  # bits a sample; 0 when the header does not say


def check_frame_header(ds: Dataset, ts: UID, rows: int, columns: int) -> None:
    """Refuse a compressed frame whose own header disagrees with the data set's, before a
    decoder allocates what the frame claims: ImageTooLarge beyond the bounds, else
    CorruptImage."""
    if ts not in J2K and ts not in JPEG_FAMILY and ts not in JPEG_LS and ts != RLELossless:
        return
    value = ds["PixelData"].value
    if not isinstance(value, bytes | bytearray):
        return
    samples, bits = header_int(ds, "SamplesPerPixel", 1), header_int(ds, "BitsAllocated")
    try:
        start, length = _frame_start(value)
        if ts == RLELossless:
            _check_rle(start, length, samples * ((bits + 7) // 8))
            return
        headers = j2k_headers(start) if ts in J2K else [jpeg_header(start)]
    except (ValueError, struct.error, IndexError) as exc:
        raise CorruptImage(f"pixel data could not be decoded ({ts.name}): {one_line(exc)}") from exc
    for header in headers:
        compare_header(header, ts, (rows, columns, samples, bits))


def compare_header(header: FrameHeader, ts: UID, declared: tuple[int, int, int, int]) -> None:
    rows, columns, samples, bits = declared
    size = f"{header.rows} × {header.columns}"
    if (header.rows, header.columns) != (rows, columns):
        pixels = header.rows * header.columns
        if max(header.rows, header.columns) > MAX_SIDE or pixels > MAX_PIXELS:
            raise ImageTooLarge(
                f"image too large: its {header.what} is {size} pixels "
                f"({pixels / 1e6:.0f} megapixels), {BOUND}, but the header says "
                f"{rows} × {columns}; refused before decoding ({ts.name})"
            )
        raise CorruptImage(
            f"pixel data could not be decoded ({ts.name}): its {header.what} is {size} pixels "
            f"but the header says {rows} × {columns}"
        )
    if header.samples != samples:
        raise CorruptImage(
            f"pixel data could not be decoded ({ts.name}): its {header.what} has "
            f"{header.samples} components but the header says Samples per Pixel {samples}"
        )
    if header.bits > bits:
        raise CorruptImage(
            f"pixel data could not be decoded ({ts.name}): its {header.what} has {header.bits} "
            f"bits a sample, more than Bits Allocated {bits}"
        )


def _frame_start(value: bytes | bytearray) -> tuple[bytes, int]:
    """The first bytes of the (only) frame of encapsulated pixel data, and its whole length."""
    fragments: Iterator[bytes] = generate_fragments(value)
    next(fragments, None)  # the Basic Offset Table
    start, length = b"", 0
    for fragment in fragments:
        if len(start) < _HEADER_BYTES:
            start += fragment[: _HEADER_BYTES - len(start)]
        length += len(fragment)
    if not length:
        raise ValueError("the encapsulated pixel data holds no fragment")
    return start, length


def j2k_headers(data: bytes) -> list[FrameHeader]:
    """The codestream's SIZ and, in a JP2 file, its ihdr box too (each must agree)."""
    if not data.startswith(_JP2_SIGNATURE):
        return [_siz(data)]
    headers: list[FrameHeader] = []
    for kind, payload in _boxes(data):
        if kind == b"jp2h":
            headers += [_ihdr(body) for sub, body in _boxes(payload) if sub == b"ihdr"]
        elif kind == b"jp2c":
            return [_siz(payload), *headers]
    raise ValueError("the JP2 file has no codestream box (jp2c) near its start")


def _boxes(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(type, payload) of the JP2 boxes in ``data`` (ISO 15444-1 I.4)."""
    pos = 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, pos)
        head = 8
        if size == 1:
            size, head = struct.unpack_from(">Q", data, pos + 8)[0], 16
        elif size == 0:
            size = len(data) - pos
        if size < head:
            raise ValueError(f"malformed JP2 box {kind!r} of {size} bytes")
        yield kind, data[pos + head : pos + size]
        pos += size


def _ihdr(body: bytes) -> FrameHeader:
    height, width, components, depth = struct.unpack_from(">IIHB", body)
    bits = 0 if depth == 0xFF else (depth & 0x7F) + 1  # 255: each component says
    return FrameHeader("JP2 ihdr box", height, width, components, bits)


def _siz(data: bytes) -> FrameHeader:
    """The image size of a JPEG 2000 (or HTJ2K) codestream from its SIZ marker (ISO 15444-1
    A.5.1): the first component's size, which is what a decoder allocates for a grey image."""
    if data[:4] != b"\xff\x4f\xff\x51":
        raise ValueError("the frame does not start with the JPEG 2000 SOC and SIZ markers")
    (_, _, x, y, x0, y0, tile_x, tile_y, tile_x0, tile_y0, components) = struct.unpack_from(
        ">HHIIIIIIIIH", data, 4
    )
    if components < 1:
        raise ValueError("the JPEG 2000 SIZ marker has no component")
    depth, step_x, step_y = struct.unpack_from(">BBB", data, 42)
    if not (x > x0 and y > y0 and tile_x and tile_y and step_x and step_y):
        raise ValueError(f"malformed JPEG 2000 SIZ marker ({x} × {y} from {x0}, {y0})")
    if tile_x0 > x0 or tile_y0 > y0:
        raise ValueError("malformed JPEG 2000 SIZ marker (tiles start after the image)")
    tiles = -(-(x - tile_x0) // tile_x) * -(-(y - tile_y0) // tile_y)
    if tiles > 65535:
        raise ValueError(f"the JPEG 2000 SIZ marker declares {tiles} tiles, beyond 65,535")
    columns = -(-x // step_x) - -(-x0 // step_x)
    rows = -(-y // step_y) - -(-y0 // step_y)
    return FrameHeader("JPEG 2000 codestream", rows, columns, components, (depth & 0x7F) + 1)


def jpeg_header(data: bytes) -> FrameHeader:
    """The frame header (SOFn, or JPEG-LS SOF55) of a JPEG or JPEG-LS frame (ITU T.81 B.2)."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("the frame does not start with a JPEG SOI marker")
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError(f"no JPEG marker at byte {pos} of the frame")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        if marker in (0xD9, 0xDA):
            raise ValueError("the JPEG frame has no SOF marker before its scan")
        if marker in _SOF:
            bits, rows, columns, samples = struct.unpack_from(">BHHB", data, pos + 4)
            if rows == 0:
                raise ValueError("the JPEG frame leaves its height to a DNL marker (unsupported)")
            name = "JPEG-LS SOF55" if marker == 0xF7 else f"JPEG SOF{marker - 0xC0}"
            return FrameHeader(f"{name} header", rows, columns, samples, bits)
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if length < 2:
            raise ValueError(f"malformed JPEG marker segment at byte {pos} of the frame")
        pos += 2 + length
    raise ValueError(f"no JPEG SOF marker in the first {len(data)} bytes of the frame")


def _check_rle(data: bytes, length: int, segments: int) -> None:
    """The RLE header (PS3.5 G.5): one segment per byte of a sample, each offset inside the
    frame. Decoders write Rows × Columns a segment whatever it holds; only the table needs
    checking."""
    if len(data) < 64:
        raise ValueError(f"the RLE header is cut: {len(data)} of its 64 bytes")
    count, *offsets = struct.unpack_from("<16I", data)
    if count != segments:
        raise ValueError(f"the RLE header has {count} segments, the pixel module needs {segments}")
    used = offsets[:count]
    inside = all(a < b for a, b in zip([63, *used], [*used, length], strict=True))
    if used[0] != 64 or not inside:
        raise ValueError(f"the RLE segment offsets {used} do not fit the frame's {length} bytes")


_ITEM = b"\xfe\xff\x00\xe0"


def first_fragment_start(fp: BinaryIO) -> bytes | None:
    """The first bytes of the first fragment of encapsulated Pixel Data, read from ``fp``
    standing at the Pixel Data element (where ``dcmread(stop_before_pixels=True)`` leaves it)."""
    head = fp.read(12)
    if len(head) < 12 or head[:4] != b"\xe0\x7f\x10\x00" or head[8:] != b"\xff\xff\xff\xff":
        return None
    item = fp.read(8)  # the Basic Offset Table, then the first fragment
    if len(item) < 8 or item[:4] != _ITEM:
        return None
    fp.seek(struct.unpack("<I", item[4:])[0], 1)
    item = fp.read(8)
    if len(item) < 8 or item[:4] != _ITEM:
        return None
    length = struct.unpack("<I", item[4:])[0]
    return fp.read(min(length, _HEADER_BYTES))
