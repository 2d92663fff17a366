"""Real hand radiographs given as JPEG/PNG with landmarks (the Digital Hand Atlas format).

Such an image takes the road a scanned film takes through a PACS: it is wrapped as a CR
dataset without pixel spacing and read back by dicom_io, so training and evaluation see the
same display grey-scale the node would make of it.

Landmarks (``image,landmark,name,x,y``, pixels, origin top-left): 18 thumb MCP, 19 thumb IP,
and for fingers 2–5 the MCP, PIP, DIP and tip (21–24, 25–28, 29–32, 33–36).
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from dicom_io.reading import GreyscaleImage, read_radiograph
from scoring.joints import joint_type

#: landmark number → joint name, for the ten scored joints of a hand
SCORED_LANDMARKS: dict[int, str] = {
    19: "IP",
    22: "PIP2",
    26: "PIP3",
    30: "PIP4",
    34: "PIP5",
    18: "MCP1",
    21: "MCP2",
    25: "MCP3",
    29: "MCP4",
    33: "MCP5",
}
#: the DIP joints of fingers 2–5: never scored, the detector's likeliest confusion
DIP_LANDMARKS: dict[int, str] = {23: "DIP2", 27: "DIP3", 31: "DIP4", 35: "DIP5"}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_CR = UID("1.2.840.10008.5.1.4.1.1.1")
#: joint → the joint proximal (MCP: distal) to it on the same ray, giving the bone's axis
_RAY_NEIGHBOUR = {
    "IP": "MCP1",
    "MCP1": "IP",
    **{f"PIP{k}": f"MCP{k}" for k in range(2, 6)},
    **{f"MCP{k}": f"PIP{k}" for k in range(2, 6)},
}
#: how far a landmark (at the base of the distal bone) lies distal of the joint space's
#: middle, as a fraction of the distance to its ray neighbour, read off DHA images: at the MCP
#: joints the landmark sits on the phalanx's epiphysis; at the PIP and IP joints it already
#: sits in the joint space
LANDMARK_OFFSET = {"MCP": 0.04, "PIP": 0.0, "IP": 0.0}


@dataclass(frozen=True)
class LandmarkedImage:
    image_id: str
    path: Path
    landmarks: dict[int, tuple[float, float]]  #: landmark number → (x, y) pixels

    def joints(self) -> dict[str, tuple[float, float]]:
        """Scored joint name → landmark position, for the joints this image has."""
        return {n: self.landmarks[k] for k, n in SCORED_LANDMARKS.items() if k in self.landmarks}

    def joint_centres(self) -> dict[str, tuple[float, float]]:
        """Scored joint name → middle of the joint space: the landmark moved proximally along
        its ray by LANDMARK_OFFSET of the distance to its ray neighbour."""
        marks = self.joints()
        out = {}
        for name, (x, y) in marks.items():
            other = marks.get(_RAY_NEIGHBOUR[name])
            if other is None:
                out[name] = (x, y)
                continue
            dx, dy = other[0] - x, other[1] - y
            # PIP and IP move towards their MCP; an MCP moves away from its PIP (or IP)
            shift = (-1.0 if name.startswith("MCP") else 1.0) * LANDMARK_OFFSET[joint_type(name)]
            out[name] = (x + shift * dx, y + shift * dy)
        return out

    def dips(self) -> dict[str, tuple[float, float]]:
        return {n: self.landmarks[k] for k, n in DIP_LANDMARKS.items() if k in self.landmarks}


def read_landmarks(csv_path: Path, images: Path) -> list[LandmarkedImage]:
    """Images of ``images`` with their landmarks, in image-id order; raises ValueError on a
    malformed row or an image id with no file."""
    marks: dict[str, dict[int, tuple[float, float]]] = {}
    with open(csv_path, newline="") as f:
        for line, row in enumerate(csv.DictReader(f), start=2):
            try:
                marks.setdefault(row["image"].strip(), {})[int(row["landmark"])] = (
                    float(row["x"]),
                    float(row["y"]),
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"{csv_path}:{line}: not image,landmark,name,x,y") from exc
    out = []
    for image_id in sorted(marks):
        found = [images / f"{image_id}{s}" for s in IMAGE_SUFFIXES]
        path = next((p for p in found if p.is_file()), None)
        if path is None:
            raise ValueError(f"{images}: no image file for id {image_id!r}")
        out.append(LandmarkedImage(image_id, path, marks[image_id]))
    return out


def real_split(image_id: str) -> str:
    """ "train" or "validation", fixed by a hash of the image id: the split is made once, the
    same on every machine, and never tuned (about one image in four is for validation)."""
    digest = hashlib.sha256(f"rascore-real-split-1:{image_id}".encode()).digest()
    return "validation" if digest[0] % 4 == 0 else "train"


def wrap_as_cr(pixels: np.ndarray, laterality: str = "") -> Dataset:
    """An 8-bit grey-scale picture as a CR dataset without pixel spacing (a scanned film)."""
    if pixels.ndim != 2 or pixels.dtype != np.uint8:
        raise ValueError("expected a 2-D uint8 grey-scale picture")
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = _CR
    ds.SOPClassUID = _CR
    uid = generate_uid()
    ds.SOPInstanceUID = uid
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "CR"
    ds.BodyPartExamined = "HAND"
    if laterality:
        ds.ImageLaterality = laterality
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    return ds


def load_picture(path: Path) -> np.ndarray:
    """A JPEG/PNG file as 8-bit grey-scale; raises ValueError if it is not one."""
    picture = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if picture is None:
        raise ValueError(f"{path}: not an image OpenCV can read")
    return np.asarray(picture)


def read_picture(path: Path, laterality: str = "") -> GreyscaleImage:
    """A JPEG/PNG radiograph read the way the node reads a scanned film sent as CR."""
    return read_radiograph(wrap_as_cr(load_picture(path), laterality))
