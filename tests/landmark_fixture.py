"""A small set in the Digital Hand Atlas format made from phantoms (tests cannot use ../shared).

Each phantom is written as an 8-bit PNG of its display grey-scale, and ``landmarks.csv``
(``image,landmark,name,x,y``) gets the ten scored joints of one hand. Like the real landmarks,
each sits at the base of the joint's distal bone: the truth centre (the middle of the joint
space) moved ``LANDMARK_SHIFT_MM`` distally along the joint's axis. The format holds one hand
per image, so a two-hand phantom has landmarks on its left hand only (the atlas's hands are
left hands); its right hand's joints then lie at no landmark. The phantom draws DIP joints but
gives no truth for them, so the set has no DIP landmarks.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import cv2

from scoring.phantom import PhantomConfig, generate_image
from scoring.phantom.gallery import display_grey
from worker.lab.real_images import SCORED_LANDMARKS

LANDMARK_SHIFT_MM = 2.5
_NUMBER = {name: number for number, name in SCORED_LANDMARKS.items()}


@dataclass(frozen=True)
class FixtureImage:
    image_id: str
    hands: int  #: 1 or 2 hands in the picture
    index: int  #: phantom image index (with hands=1, odd indices are left hands)


#: two single left hands and one picture of both hands
FIXTURE_IMAGES = (
    FixtureImage("ph-single-1", 1, 1),
    FixtureImage("ph-single-3", 1, 3),
    FixtureImage("ph-both-0", 2, 0),
)


def write_dha_fixture(out: Path, seed: int = 5) -> tuple[Path, Path]:
    """Write the pictures and ``landmarks.csv`` under ``out``; return (csv, images folder)."""
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, int, str, float, float]] = []
    for item in FIXTURE_IMAGES:
        image = generate_image(seed, item.index, PhantomConfig(hands=item.hands))  # type: ignore[arg-type]
        assert "L" in image.hands, "the fixture landmarks left hands"
        cv2.imwrite(str(images / f"{item.image_id}.png"), display_grey(image))
        shift = LANDMARK_SHIFT_MM / image.acquisition.pixel_spacing_mm
        for joint in image.joints:
            side, name = joint.label.split("_", 1)
            if side != "L":
                continue
            x = joint.center[0] + shift * joint.axis[0]
            y = joint.center[1] + shift * joint.axis[1]
            rows.append((item.image_id, _NUMBER[name], name, round(x, 1), round(y, 1)))
    landmarks = out / "landmarks.csv"
    with open(landmarks, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "landmark", "name", "x", "y"])
        writer.writerows(sorted(rows))
    return landmarks, images
