"""Phantom radiographs in every transfer syntax a sender may use, made with the tools a site
has (dcmtk's dcmconv, dcmcjpeg, dcmcjpls, dcmcrle; pydicom for JPEG 2000), for the
interoperability tests. Each file is a new instance, so each is scored on its own."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import (
    JPEG2000,
    CTImageStorage,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    generate_uid,
)
from servers import require

GSPS_STORAGE = "1.2.840.10008.5.1.4.1.1.11.1"
#: transfer syntax -> (tool and options, 8-bit source); None: pydicom encodes it
RECIPES: dict[str, tuple[list[str], bool] | None] = {
    "1.2.840.10008.1.2": (["dcmconv", "+ti"], False),
    "1.2.840.10008.1.2.1": (["dcmconv", "+te"], False),
    "1.2.840.10008.1.2.2": (["dcmconv", "+tb"], False),
    "1.2.840.10008.1.2.1.99": (["dcmconv", "+td"], False),
    "1.2.840.10008.1.2.5": (["dcmcrle"], False),
    "1.2.840.10008.1.2.4.70": (["dcmcjpeg", "+e1"], False),
    "1.2.840.10008.1.2.4.57": (["dcmcjpeg", "+el"], False),
    "1.2.840.10008.1.2.4.50": (["dcmcjpeg", "+eb"], True),
    "1.2.840.10008.1.2.4.51": (["dcmcjpeg", "+ee"], False),
    "1.2.840.10008.1.2.4.80": (["dcmcjpls", "+el"], False),
    "1.2.840.10008.1.2.4.81": (["dcmcjpls", "+en"], False),
    "1.2.840.10008.1.2.4.90": None,
    "1.2.840.10008.1.2.4.91": None,
}


def small_base(phantom: Path, out: Path, factor: int = 3) -> Path:
    """The phantom at a third of its size (pixel spacing scaled to match) and 12 bits, so
    that every JPEG process (extended sequential is 12 bits at most) can encode it."""
    ds = pydicom.dcmread(phantom)
    pixels = ds.pixel_array[::factor, ::factor] >> max(int(ds.BitsStored) - 12, 0)
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        if keyword in ds:
            setattr(ds, keyword, [float(v) * factor for v in getattr(ds, keyword)])
    for keyword in ("WindowCenter", "WindowWidth", "VOILUTSequence"):
        if keyword in ds:
            delattr(ds, keyword)
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<u2").tobytes()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(out, enforce_file_format=True)
    return out


def _renew(source: Path, out: Path, eight_bit: bool = False) -> Path:
    """A copy of ``source`` as a new instance (optionally 8 bits), explicit little endian."""
    ds = pydicom.dcmread(source)
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if eight_bit:
        pixels = (ds.pixel_array >> 4).astype(np.uint8)
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
        ds.PixelData = pixels.tobytes()
    ds.save_as(out, enforce_file_format=True)
    return out


def in_syntax(base: Path, syntax: str, out: Path) -> Path:
    """A new instance of ``base`` in transfer syntax ``syntax``."""
    recipe = RECIPES[syntax]
    plain = _renew(base, out.with_suffix(".plain.dcm"), eight_bit=bool(recipe and recipe[1]))
    if recipe is None:
        ds = pydicom.dcmread(plain)
        lossless = syntax == JPEG2000Lossless
        if lossless:
            ds.compress(JPEG2000Lossless)
        else:
            ds.compress(JPEG2000, j2k_cr=[10])
        ds.save_as(out, enforce_file_format=True)
    else:
        tool, *options = recipe[0]
        subprocess.run(
            [require(tool, "dcmtk"), *options, str(plain), str(out)],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
    written = pydicom.dcmread(out, stop_before_pixels=True).file_meta.TransferSyntaxUID
    assert written == syntax, f"{out.name}: {written}, not {syntax}"
    plain.unlink()
    return out


def refused_ct(base: Path, out: Path) -> Path:
    """The phantom relabelled as a CT image: a SOP class the node does not accept."""
    ds = pydicom.dcmread(base)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.Modality = "CT"
    ds.save_as(out, enforce_file_format=True)
    return out


def refused_gsps(base: Path, out: Path) -> Path:
    """A presentation state of the phantom (the header is enough: it is refused at
    negotiation, before any data set is read)."""
    image = pydicom.dcmread(base, stop_before_pixels=True)
    ds = Dataset()
    for keyword in ("PatientName", "PatientID", "StudyInstanceUID", "StudyDate", "StudyTime"):
        setattr(ds, keyword, getattr(image, keyword, ""))
    ds.SOPClassUID = GSPS_STORAGE
    ds.SOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "PR"
    ds.ContentLabel = "INTEROP"
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(out, enforce_file_format=True)
    return out
