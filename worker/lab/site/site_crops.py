"""Clips of a site's labelled joints, cut where the scorer will cut them in service.

Each image is read the way the node reads it (a JPEG or PNG as a scanned film sent as CR, a
DICOM file as it is), so the networks learn from the grey levels they will be given. A joint's
place is the site's own x, y where the labels give one; otherwise the model's detector is run
on the image and the joint it finds under the same label (``L_MCP2``) is taken. A labelled
joint the detector does not find is left out and counted, never guessed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from dicom_io.reading import UnreadableImage, read_radiograph
from scoring.crops import crop_joint
from scoring.detection.geometry import place_template
from scoring.detection.identify import HandTemplate
from scoring.pipeline import FALLBACK_SPACING_MM, Scorer, plausible_spacing
from scoring.training.cnn import CLIP_SIZE, CONTEXT
from worker.lab.real_images import read_picture
from worker.lab.site.folder import SiteFolder, SiteImage
from worker.lab.site.samples import Key

PICTURES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"})
Box = tuple[float, float, float, float]


def read_site_image(site: SiteFolder, image: SiteImage) -> tuple[np.ndarray, float | None]:
    """Display grey-scale pixels and the column spacing (mm; the manifest's, else the
    file's, else None). Raises UnreadableImage, OSError or ValueError."""
    path = site.path(image)
    if path.suffix.lower() in PICTURES:
        grey = read_picture(path, image.hand)
    else:
        grey = read_radiograph(path)
    spacing = image.pixel_spacing_mm or grey.pixel_spacing_mm
    return grey.pixels, (float(spacing[1]) if spacing else None)


def _given_boxes(
    given: Mapping[str, tuple[float, float]],
    template: HandTemplate,
    spacing: float | None,
    detected: Mapping[str, tuple[int, int, int, int]],
) -> dict[str, Box]:
    """Boxes around the site's centres, sized as the scorer sizes them: from the mean hand
    fitted to those centres, else the detector's box, else the spacing."""
    boxes: dict[str, Box] = {}
    for hand in sorted({label.split("_", 1)[0] for label in given}):
        names = {lab.split("_", 1)[1]: xy for lab, xy in given.items() if lab[0] == hand}
        placed = place_template(template, names)
        for name, (x, y) in names.items():
            label = f"{hand}_{name}"
            if placed is not None:
                side = placed.box_side(template, name)
            elif label in detected:
                side = float(detected[label][2])
            else:
                side = template.joint_size_mm[name] / (spacing or FALLBACK_SPACING_MM)
            boxes[label] = (x - side / 2, y - side / 2, side, side)
    return boxes


@dataclass
class LocatedJoints:
    """Where an image's labelled joints are, and which the detector did not find."""

    boxes: dict[str, Box]
    from_labels: int
    from_detector: int
    not_found: list[str]


def locate_joints(
    scorer: Scorer,
    grey: np.ndarray,
    spacing: float | None,
    hand: str,
    wanted: Mapping[str, tuple[float, float] | None],
) -> LocatedJoints:
    """Boxes for the labels in ``wanted`` (label → the site's centre, or None: ask the
    detector, which is run only then)."""
    detected: dict[str, tuple[int, int, int, int]] = {}
    if any(position is None for position in wanted.values()):
        spacing_ok, _ = plausible_spacing(spacing)
        found = scorer.score(grey, spacing_ok, hand)
        detected = {joint.label: joint.box for joint in found.joints}
    given = {label: xy for label, xy in wanted.items() if xy is not None}
    boxes = _given_boxes(given, scorer.bundle.template, spacing, detected)
    asked = [label for label, xy in wanted.items() if xy is None]
    for label in asked:
        if label in detected:
            boxes[label] = tuple(float(v) for v in detected[label])  # type: ignore[assignment]
    not_found = sorted(label for label in asked if label not in detected)
    return LocatedJoints(boxes, len(given), len(asked) - len(not_found), not_found)


@dataclass
class SiteClips:
    """The clips of a set of images, and what could not be clipped."""

    clips: dict[Key, np.ndarray] = field(default_factory=dict)
    from_labels: int = 0
    from_detector: int = 0
    not_found: int = 0  #: labelled joints the detector did not find (left out)
    unreadable: list[str] = field(default_factory=list)  #: image ids

    def card(self) -> dict[str, object]:
        return {
            "joints_clipped": len(self.clips),
            "placed_by_site_xy": self.from_labels,
            "placed_by_detector": self.from_detector,
            "not_found_by_detector": self.not_found,
            "unreadable_images": len(self.unreadable),
        }


def clip_images(
    site: SiteFolder,
    images: list[SiteImage],
    positions: Mapping[Key, tuple[float, float] | None],
    scorer: Scorer,
    advance: Callable[[], None] = lambda: None,
) -> SiteClips:
    """Clips (with context, CLIP_SIZE square) of every labelled joint of ``images``."""
    out = SiteClips()
    by_image: dict[str, dict[str, tuple[float, float] | None]] = {}
    for (image_id, label), xy in positions.items():
        by_image.setdefault(image_id, {})[label] = xy
    for image in images:
        wanted = by_image.get(image.image_id, {})
        if wanted:
            try:
                grey, spacing = read_site_image(site, image)
            except (UnreadableImage, OSError, ValueError):
                out.unreadable.append(image.image_id)
                advance()
                continue
            located = locate_joints(scorer, grey, spacing, image.hand, wanted)
            for label, box in located.boxes.items():
                out.clips[(image.image_id, label)] = crop_joint(grey, box, CLIP_SIZE, CONTEXT)
            out.from_labels += located.from_labels
            out.from_detector += located.from_detector
            out.not_found += len(located.not_found)
        advance()
    return out
