"""A small site folder made from phantoms, in the canonical layout (worker.lab.site.folder):
one PNG per hand, the phantom's truth as reader ``truth``, and optionally a second reader who
disagrees by one grade on some joints."""

from __future__ import annotations

import tempfile
from pathlib import Path

import cv2
import numpy as np

from dicom_io.reading import read_radiograph
from scoring.joints import JOINT_NAMES
from scoring.phantom import PhantomConfig, PhantomImage, generate_image
from worker.lab.phantom_export import write_image
from worker.lab.site.folder import (
    IMAGES,
    JointLabel,
    SiteImage,
    sha256_file,
    write_manifest,
    write_tables,
)


def display_grey(seed: int, index: int, config: PhantomConfig) -> tuple[np.ndarray, PhantomImage]:
    """Phantom ``index`` as the 8-bit display picture a site would export, and its truth."""
    phantom = generate_image(seed, index, config)
    with tempfile.TemporaryDirectory() as tmp:
        name = write_image(seed, phantom, Path(tmp))["file"]
        grey = read_radiograph(Path(tmp) / name).pixels
    return np.rint(np.clip(grey, 0.0, 1.0) * 255.0).astype(np.uint8), phantom


def make_site(root: Path, patients: int = 3, seed: int = 7, second_reader: bool = False) -> Path:
    """Write ``patients`` phantom patients, both hands each as two images (as RA2-DREAM has
    them), as a site folder. The thumb IP gets no JSN (RA2-DREAM scores none)."""
    (root / IMAGES).mkdir(parents=True)
    images: list[SiteImage] = []
    labels: list[JointLabel] = []
    config = PhantomConfig(hands=1)
    for i in range(2 * patients):
        grey, phantom = display_grey(seed, i, config)
        patient = f"SITE{i // 2:03d}"
        side = phantom.hands[0]
        image_id = f"{patient}-{side}H"
        name = f"{IMAGES}/{image_id}.png"
        cv2.imwrite(str(root / name), grey)
        images.append(SiteImage(image_id, name, sha256_file(root / name), patient, side))
        truths = {t.label.split("_", 1)[1]: t for t in phantom.joints}
        for joint in JOINT_NAMES:
            truth = truths[joint]
            jsn = None if joint == "IP" else truth.jsn
            labels.append(JointLabel(image_id, patient, side, joint, "truth", jsn, truth.erosion))
            if second_reader:
                shift = 1 if (i + JOINT_NAMES.index(joint)) % 3 == 0 else 0
                labels.append(
                    JointLabel(
                        image_id,
                        patient,
                        side,
                        joint,
                        "second",
                        None if jsn is None else min(jsn + shift, 4),
                        min(truth.erosion + shift, 5),
                    )
                )
    write_tables(root, labels, [])
    write_manifest(root, images, {"format": "phantom", "seed": seed})
    return root
