"""Loading a data set, and the checks that run before any pixel is decoded.

A deflated data set is inflated through a decompressor capped at what its header's image needs
(pydicom's ``dcmread`` inflates without limit); a file without preamble is accepted only when it
looks like an image; :func:`check_bounds` refuses a decompression or spacing bomb on arrival
without reading the pixel data into memory.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any, BinaryIO, cast

from pydicom import Dataset, dcmread
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import data_element_generator, read_preamble
from pydicom.filereader import read_dataset as read_raw_dataset
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

from dicom_io.reading.errors import (
    BOUND,
    MAX_PIXELS,
    MAX_SIDE,
    ColourImage,
    CorruptImage,
    ImageTooLarge,
    MultiFrameImage,
    NoPixelData,
    NotARadiograph,
    NotDicom,
    UnreadableImage,
    UnsupportedPixelFormat,
    header_int,
    one_line,
)
from dicom_io.reading.frames import (
    J2K,
    JPEG_FAMILY,
    JPEG_LS,
    compare_header,
    first_fragment_start,
    j2k_headers,
    jpeg_header,
)
from dicom_io.reading.geometry import check_spacing_bound

#: The storage SOP classes read as radiographs. A dataset handed in as an object (not a path)
#: may also have no SOP Class UID at all.
ACCEPTED_SOP_CLASSES: dict[str, str] = {
    "1.2.840.10008.5.1.4.1.1.1": "CR Image Storage",
    "1.2.840.10008.5.1.4.1.1.1.1": "Digital X-Ray Image Storage - For Presentation",
    "1.2.840.10008.5.1.4.1.1.1.1.1": "Digital X-Ray Image Storage - For Processing",
    "1.2.840.10008.5.1.4.1.1.7": "Secondary Capture Image Storage",
}

#: A deflated data set inflates to at most its header, one frame of the size its Image Pixel
#: module declares and this margin (overlays, padding, trailing elements)...
INFLATE_MARGIN = 16 << 20
#: ...and never beyond this, which is what the largest image allowed needs at 16 bits (when the
#: header's pixel module is not found early in the stream, this is the only bound).
MAX_INFLATED = MAX_PIXELS * 2 + INFLATE_MARGIN

#: header values longer than this are not read by :func:`check_bounds`
_HEADER_VALUE_BYTES = 64 * 1024


def load_dataset(source: Path | str | Dataset) -> tuple[Dataset, bool]:
    """The dataset, and whether it came from a file (which must then name its SOP class)."""
    if isinstance(source, Dataset):
        return source, False
    path = Path(source)
    ds: Dataset
    try:
        ds = _dcmread(path)
    except InvalidDicomError as exc:
        # No preamble and "DICM": some archives store bare datasets. Accept one only if it
        # parses into something that looks like an image, never garbage.
        bare = _read_bare_dataset(path)
        if bare is None:
            raise NotDicom(f"not a DICOM file: {path} ({one_line(exc)})") from exc
        return bare, True
    except (OSError, UnreadableImage):
        raise
    except Exception as exc:  # pydicom raises many types for truncated or mangled files
        raise CorruptImage(
            f"truncated or corrupt DICOM file {path}: {type(exc).__name__}: {one_line(exc)}"
        ) from exc
    if "PixelData" not in ds and _has_pixel_data_tag(path):
        # pydicom drops an encapsulated Pixel Data element whose file ends inside it.
        raise CorruptImage(f"truncated file {path}: it ends inside its Pixel Data (7FE0,0010)")
    return ds, True


def _has_pixel_data_tag(path: Path) -> bool:
    try:
        data = path.read_bytes()
    except OSError:
        return False
    return b"\xe0\x7f\x10\x00" in data or b"\x7f\xe0\x00\x10" in data


def _read_bare_dataset(path: Path) -> Dataset | None:
    try:
        ds = _dcmread(path, force=True)
        sop_class = str(ds.get("SOPClassUID", "") or "")
        rows = ds.get("Rows")
    except UnreadableImage:
        raise
    except Exception:
        return None
    if not sop_class.startswith("1.2.840.10008.") or rows is None:
        return None
    return ds


def read_dicom(path: Path | str, *, pixels: bool = True) -> Dataset:
    """The data set of a DICOM file, read as :func:`read_radiograph` reads it.

    For callers that need the data set itself (the worker builds its results from it): a
    deflated data set is inflated through a capped decompressor (pydicom's ``dcmread``
    inflates without limit, so a 2 MB file can take gigabytes), and a file without preamble is
    accepted only when it looks like an image. ``pixels=False`` stops before the Pixel Data
    (a header to build results from, without reading megabytes it will not use). Raises like
    :func:`read_radiograph`.
    """
    if not pixels:
        try:
            ds = _dcmread(Path(path), stop_before_pixels=True)
        except (OSError, UnreadableImage):
            raise
        except Exception:  # a bare data set, or mangled: the whole reader says which
            return load_dataset(Path(path))[0]
        if "PixelData" in ds:  # an inflated deflated data set is read whole
            del ds.PixelData
        return ds
    return load_dataset(Path(path))[0]


def check_bounds(path: Path | str) -> None:
    """Refuse a decompression or spacing bomb on arrival, without decoding and without reading
    the pixel data into memory: Rows × Columns within :data:`MAX_PIXELS` and :data:`MAX_SIDE`,
    no pixel spacing over the plausible maximum (:class:`ImplausibleSpacing`), and for JPEG
    2000, JPEG and JPEG-LS the first frame's own header agreeing with the pixel module. Raises
    :class:`ImageTooLarge` or :class:`CorruptImage`; anything else wrong with the image is
    left to :func:`read_radiograph`, which says it when the image is scored."""
    with Path(path).open("rb") as fp:
        ds = dcmread(fp, stop_before_pixels=True, defer_size=_HEADER_VALUE_BYTES)
        try:
            rows, columns = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
            samples = int(ds.get("SamplesPerPixel", 1) or 1)
            bits = int(ds.get("BitsAllocated", 0) or 0)
        except (TypeError, ValueError):
            return  # the reader names what is wrong with the pixel module
        if rows > MAX_SIDE or columns > MAX_SIDE or rows * columns > MAX_PIXELS:
            raise ImageTooLarge(
                f"image too large: {rows} × {columns} ({rows * columns / 1e6:.0f} megapixels), "
                f"{BOUND}"
            )
        check_spacing_bound(ds, rows, columns)
        ts = UID(str(ds.file_meta.get("TransferSyntaxUID", "") or ""))
        if ts not in J2K and ts not in JPEG_FAMILY and ts not in JPEG_LS:
            return
        start = first_fragment_start(fp)
    if start is None:
        return  # no encapsulated pixel data where expected: the reader says so
    try:
        headers = j2k_headers(start) if ts in J2K else [jpeg_header(start)]
    except (ValueError, struct.error, IndexError):
        return  # a frame the decoder will refuse as corrupt, costing nothing
    for header in headers:
        compare_header(header, ts, (rows, columns, samples, bits))


# Deflated data sets


def _dcmread(path: Path, force: bool = False, stop_before_pixels: bool = False) -> Dataset:
    """``dcmread``, except that a deflated data set is inflated with a cap (:func:`_inflate`)."""
    with path.open("rb") as fp:
        preamble = read_preamble(fp, force)
        try:
            meta = read_raw_dataset(
                fp, False, True, stop_when=lambda tag, vr, length: tag.group != 2
            )
            deflated = (
                str(meta.get("TransferSyntaxUID", "")).strip() == DeflatedExplicitVRLittleEndian
            )
        except Exception:  # dcmread says what is wrong with the file meta, below
            deflated = False
        if deflated:
            inflated = _inflate(fp)
    if not deflated:
        return dcmread(path, force=force, stop_before_pixels=stop_before_pixels)
    body = read_raw_dataset(cast(BinaryIO, DicomBytesIO(inflated)), False, True)
    ds = FileDataset(str(path), body, preamble, FileMetaDataset(meta), False, True)
    ds.set_original_encoding(False, True, body._character_set)
    return ds


def _inflate(stream: BinaryIO) -> bytes:
    """The deflated data set that follows in ``stream``, inflated at most to the size its own
    header needs (:func:`_inflation_limit`); ImageTooLarge beyond, CorruptImage if damaged."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    out = bytearray()
    limit, probe = MAX_INFLATED, 1 << 20
    try:
        while not inflater.eof:
            pending = inflater.unconsumed_tail or stream.read(1 << 16)
            if not pending:
                out += inflater.flush()  # a truncated stream: dcmread tells what is missing
                break
            out += inflater.decompress(pending, limit + 1 - len(out))
            if probe and len(out) >= probe:  # is the header's pixel module in yet?
                limit = _inflation_limit(bytes(out[:probe]))
                probe = 2 * probe if limit == MAX_INFLATED and probe < _LAST_PROBE else 0
            if len(out) > limit:
                raise ImageTooLarge(
                    f"image too large: the deflated data set inflates beyond "
                    f"{limit / 2**20:.1f} MB, more than its header and image can need "
                    "(a decompression bomb?)"
                )
    except zlib.error as exc:
        raise CorruptImage(f"the deflated data set is corrupt: {one_line(exc)}") from exc
    return bytes(out)


#: the header's Image Pixel module is looked for in the first 1, 2, 4, 8 and 16 MiB inflated
_LAST_PROBE = 16 << 20
_GEOMETRY = {0x00280002: "samples", 0x00280010: "rows", 0x00280011: "columns", 0x00280100: "bits"}


def _inflation_limit(prefix: bytes) -> int:
    """How far a deflated data set whose start is ``prefix`` may inflate: up to the end of its
    Image Pixel module, one frame of the size that module declares, and :data:`INFLATE_MARGIN`.
    :data:`MAX_INFLATED` while the module's end is not in ``prefix``."""
    fp = cast(BinaryIO, DicomBytesIO(prefix))
    stopped = [False]

    def past_pixel_module(tag: Any, vr: Any, length: Any) -> bool:
        stopped[0] = tag.group > 0x0028
        return stopped[0]

    found: dict[str, int] = {}
    try:
        for element in data_element_generator(fp, False, True, stop_when=past_pixel_module):
            if element.tag in _GEOMETRY and isinstance(element.value, bytes):
                found[_GEOMETRY[element.tag]] = struct.unpack("<H", element.value[:2])[0]
    except Exception:  # cut in the middle of an element, or not parseable: no bound yet
        return MAX_INFLATED
    if not stopped[0] or "rows" not in found or "columns" not in found:
        return MAX_INFLATED
    frame = (
        found["rows"]
        * found["columns"]
        * max(found.get("samples", 1), 1)
        * max((found.get("bits", 16) + 7) // 8, 1)
    )
    return min(fp.tell() + frame + INFLATE_MARGIN, MAX_INFLATED)


def check_sop_class(ds: Dataset, from_file: bool) -> str:
    uid = ds.get("SOPClassUID")
    if not uid:
        file_meta = getattr(ds, "file_meta", None)
        uid = file_meta.get("MediaStorageSOPClassUID") if file_meta is not None else None
    if not uid:
        if from_file and "PixelData" not in ds and "Rows" not in ds:
            raise NotDicom("not a DICOM image: the file holds no SOP Class UID and no image")
        if from_file:
            raise NotARadiograph(
                "no SOP Class UID (0008,0016): cannot tell whether the file is a radiograph"
            )
        return ""
    uid = str(uid).strip()
    if uid not in ACCEPTED_SOP_CLASSES:
        name = UID(uid).name
        what = f"{name} ({uid})" if name != uid else uid
        raise NotARadiograph(
            f"SOP class {what} is not a radiograph; accepted: CR, DX (for presentation or "
            "processing) and single-frame grey-scale Secondary Capture"
        )
    return uid


def check_pixel_module(ds: Dataset, from_file: bool) -> tuple[int, int]:
    """Reject what cannot become one grey-scale frame, before spending time decoding."""
    if "PixelData" not in ds:
        if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
            raise UnsupportedPixelFormat("float pixel data is not supported")
        if from_file:
            raise NoPixelData(
                "no Pixel Data (7FE0,0010) in the file: it is truncated, or the instance has "
                "no image"
            )
        raise NoPixelData("no Pixel Data (7FE0,0010) in the dataset")
    spp = header_int(ds, "SamplesPerPixel", 1)
    photometric = str(ds.get("PhotometricInterpretation", "") or "").strip()
    if spp != 1:
        raise ColourImage(
            f"colour image (SamplesPerPixel={spp}, PhotometricInterpretation={photometric}); "
            "a grey-scale radiograph is needed"
        )
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise ColourImage(
            f"PhotometricInterpretation {photometric or '(absent)'} is not grey-scale "
            "(MONOCHROME1 or MONOCHROME2 needed)"
        )
    frames = header_int(ds, "NumberOfFrames", 1)
    if frames > 1:
        raise MultiFrameImage(
            f"multi-frame image ({frames} frames); one frame per radiograph needed"
        )
    rows, columns = header_int(ds, "Rows"), header_int(ds, "Columns")
    if rows < 1 or columns < 1:
        raise CorruptImage(f"image of {rows} × {columns} pixels has no pixels")
    if rows > MAX_SIDE or columns > MAX_SIDE or rows * columns > MAX_PIXELS:
        raise ImageTooLarge(
            f"image too large: absurd dimensions {rows} × {columns} "
            f"({rows * columns / 1e6:.0f} megapixels), {BOUND}"
        )
    bits_allocated = header_int(ds, "BitsAllocated")
    if bits_allocated not in (8, 16, 32):
        raise UnsupportedPixelFormat(
            f"BitsAllocated {bits_allocated} is not supported (8, 16 or 32 needed)"
        )
    bits_stored = header_int(ds, "BitsStored", bits_allocated)
    if not 1 <= bits_stored <= bits_allocated:
        raise CorruptImage(f"BitsStored {bits_stored} does not fit BitsAllocated {bits_allocated}")
    return rows, columns
