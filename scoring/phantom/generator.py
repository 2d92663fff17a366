"""Generate phantom radiographs: patient → hands → pose and field → exposure → stored pixels.

Randomness is keyed by (seed, patient) for the patient's anatomy and disease, and by
(seed, image) for the acquisition, so the same seed always gives the same pixels and the two
single-hand images of one patient show the same patient. How the tissues look
(:class:`~.render.TissueStyle`, per patient) and how the image is rendered
(:class:`~.acquisition.Look`, per image) come from streams of their own, so that they leave
anatomy, disease, pose and truth exactly as generator 1.0 drew them for the same seed.

Generator 1.1 randomises that appearance between 1.0's clean look and that of real scanned
films (domain randomisation): about 30 % of images and patients stay near the clean look, the
rest lean towards real. ``PhantomConfig(realism=0.0)`` gives 1.0's pixels exactly;
``realism=1.0`` the most film-like end of every range.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Literal

import numpy as np

from .acquisition import (
    Exposure,
    Look,
    Quantisation,
    add_grain,
    draw_marker,
    expose,
    open_beam_level,
    presentation_window,
    scatter_field,
    tone_curve,
)
from .anatomy import PatientAnatomy, build_hand
from .disease import Distribution, JointScore, sample_scores
from .hand import Hand, JointGeometry, Pose
from .model import (
    Acquisition,
    Encoding,
    JointTruth,
    Modality,
    Patient,
    PhantomImage,
    Photometric,
    Side,
    Visit,
    joint_type,
)
from .render import Canvas, TissueStyle, trabecular_texture
from .soft_tissue import soft_tissue_thickness

GENERATOR_VERSION = "1.1.0"
MIN_SIDE, MAX_SIDE = 1800, 3000
MIN_SPACING, MAX_SPACING = 0.10, 0.20


@dataclass(frozen=True)
class PhantomConfig:
    """What to generate. Defaults give the paper's class frequencies and varied acquisitions."""

    hands: Literal[1, 2] = 2
    distribution: Distribution = "table2"
    modalities: tuple[Modality, ...] = ("CR", "DX")
    photometrics: tuple[Photometric, ...] = ("MONOCHROME1", "MONOCHROME2")
    encodings: tuple[Encoding, ...] = ("explicit",)
    #: draw erosions (tests switch them off to see exactly which pixels they change)
    erosions: bool = True
    noise: bool = True
    #: pin every image's look (0: generator 1.0's clean look, exactly; 1: the most film-like
    #: end of every range); None draws it per image and patient, most of them real-looking
    realism: float | None = None


def study_layout(index: int, hands: int) -> tuple[int, tuple[Side, ...]]:
    """Patient (and study) of image ``index``, and the sides it shows."""
    if hands == 2:
        return index, ("R", "L")
    return index // 2, ("R",) if index % 2 == 0 else ("L",)


def _patient(seed: int, patient_index: int) -> tuple[Patient, np.random.Generator]:
    rng = np.random.default_rng([seed, patient_index, 0])
    sex: Literal["F", "M"] = "F" if rng.random() < 0.8 else "M"
    age = int(np.clip(rng.normal(63, 12), 25, 90))
    severity = float(rng.standard_normal())
    return Patient(patient_index, sex, age, severity), rng


def _fit_field(hands: list[Hand], rng: np.random.Generator) -> tuple[list[Pose], float, float]:
    """Pose the hands side by side (right hand on the image's left, thumbs inward) and size the
    field around them, within what 1,800–3,000 pixels of 0.10–0.20 mm allow."""
    poses: list[Pose] = []
    x = float(rng.uniform(12.0, 35.0))
    top = float(rng.uniform(8.0, 25.0))
    bottom = 0.0
    for hand in hands:
        angle = float(np.clip(rng.normal(0.0, 8.0), -20.0, 20.0))
        probe = Pose(mirror=hand.side == "L", angle_deg=angle, offset=(0.0, 0.0))
        lo, hi = hand.extent(probe)
        offset = (x - lo[0], top + float(rng.uniform(-6.0, 6.0)) - lo[1])
        pose = Pose(probe.mirror, angle, offset)
        poses.append(pose)
        wrist_cut = pose.point((0.0, -float(rng.uniform(25.0, 55.0))))
        bottom = max(bottom, wrist_cut[1])
        x += float(hi[0] - lo[0]) + float(rng.uniform(10.0, 35.0))
    width = x + float(rng.uniform(0.0, 20.0))
    height = bottom
    # keep the aspect ratio and the pixel count within the acquisition's range
    width = max(width, height * MIN_SIDE / MAX_SIDE, MIN_SIDE * MIN_SPACING)
    height = max(height, width * MIN_SIDE / MAX_SIDE, MIN_SIDE * MIN_SPACING)
    return poses, width, height


def _choose_spacing(rng: np.random.Generator, width: float, height: float) -> float:
    lo = max(MIN_SPACING, max(width, height) / MAX_SIDE)
    hi = min(MAX_SPACING, min(width, height) / MIN_SIDE)
    return float(np.round(rng.uniform(lo, max(lo, hi)), 4))


def generate_image(seed: int, index: int, config: PhantomConfig | None = None) -> PhantomImage:
    """Image ``index`` of the phantom set made with ``seed``."""
    config = config or PhantomConfig()
    patient_index, sides = study_layout(index, config.hands)
    patient, hands = _patient_hands(seed, patient_index, sides, config)
    streams = ImageStreams(
        style=np.random.default_rng([seed, patient_index, 5]),
        look=np.random.default_rng([seed, index, 7]),
        image=np.random.default_rng([seed, index, 99]),
    )
    return draw_image(index, config, patient, hands, streams)


@dataclass(frozen=True)
class ImageStreams:
    """The random streams of one image beyond its patient: the tissues' look (per patient, or
    per visit), the rendering's look, and pose, field and exposure."""

    style: np.random.Generator
    look: np.random.Generator
    image: np.random.Generator


def draw_image(
    index: int,
    config: PhantomConfig,
    patient: Patient,
    hands: list[Hand],
    streams: ImageStreams,
    visit: Visit | None = None,
) -> PhantomImage:
    """Pose ``hands`` in a field, expose and encode them: image ``index`` of the set."""
    sides = tuple(hand.side for hand in hands)
    style = TissueStyle.sample(streams.style, config.realism)
    look_rng = streams.look
    look = Look.sample(look_rng, config.realism)
    rng = streams.image
    poses, width, height = _fit_field(hands, rng)
    spacing = _choose_spacing(rng, width, height)
    columns = int(np.clip(round(width / spacing), MIN_SIDE, MAX_SIDE))
    rows = int(np.clip(round(height / spacing), MIN_SIDE, MAX_SIDE))
    posed = [hand.posed(pose) for hand, pose in zip(hands, poses, strict=True)]

    canvas = Canvas(rows, columns, spacing, trabecular_texture(rng, style=style), style)
    _add_soft_tissue(canvas, posed, style, rows, columns)
    # the soft tissue alone, coarsely: where the open beam is (bones and erosions never reach
    # air) and where scatter comes from
    tissue = canvas.attenuation[::4, ::4].copy()
    scatter = scatter_field(tissue[::2, ::2], (rows, columns), spacing, look, step=8)
    for hand in posed:
        for carpal in hand.carpals:
            canvas.draw_ellipsoid(carpal)
        for tube in hand.tubes:
            canvas.draw_tube(tube, erosions=config.erosions)
    exposure = Exposure.sample(rng, columns * spacing, rows * spacing)
    _draw_markers(canvas, posed, columns)

    signal = expose(
        canvas.attenuation, spacing, exposure, rng, noise=config.noise, look=look, scatter=scatter
    )
    presented = tone_curve(signal, look)
    air = open_beam_level(tissue, spacing, exposure, look, scatter)
    if air is not None and air < 0 and look.scatter > 0:
        presented -= np.float32(air)  # scatter lifts the open beam: keep it off the floor
        air = 0.0
    shown = presentation_window(presented, canvas.attenuation, look, air)
    if config.noise:
        add_grain(presented, look, look_rng)
    pixels, acquisition = _encode(
        rng, config, index, presented, shown, exposure, (spacing, rows, columns)
    )
    joints = [_truth(hand.side, g, spacing, rows, columns) for hand in posed for g in hand.joints]
    return PhantomImage(
        pixels=pixels,
        acquisition=acquisition,
        patient=patient,
        study_index=patient.index,
        image_index=index,
        hands=sides,
        joints=joints,
        visit=visit,
    )


def _encode(
    rng: np.random.Generator,
    config: PhantomConfig,
    index: int,
    presented: np.ndarray,
    shown: tuple[float, float],
    exposure: Exposure,
    grid: tuple[float, int, int],
) -> tuple[np.ndarray, Acquisition]:
    """The stored pixels and how the file is to say it was made: modality, photometric
    interpretation, bit depth, transfer syntax, rescale and window. ``grid``: spacing, rows,
    columns."""
    spacing, rows, columns = grid
    modality: Modality = config.modalities[int(rng.integers(len(config.modalities)))]
    photometric: Photometric = config.photometrics[int(rng.integers(len(config.photometrics)))]
    encoding: Encoding = config.encodings[index % len(config.encodings)]  # an even mix
    bits = int(rng.integers(10, 17))
    quant = Quantisation.sample(rng, bits)
    inverted = photometric == "MONOCHROME1"
    pixels = quant.stored(presented, inverted)
    rescale, window = _rescale_and_window(rng, modality, quant, inverted, shown)
    acquisition = Acquisition(
        modality=modality,
        photometric=photometric,
        bits_stored=bits,
        pixel_spacing_mm=spacing,
        rows=rows,
        columns=columns,
        rescale=rescale,
        window=window,
        encoding=encoding,
        kvp=exposure.kvp,
        exposure_mas=exposure.mas,
    )
    return pixels, acquisition


def _patient_hands(
    seed: int, patient_index: int, sides: tuple[Side, ...], config: PhantomConfig
) -> tuple[Patient, list[Hand]]:
    """The patient and the hands shown: one patient's anatomy and scores give both hands of
    every image of their study, each hand from a generator of its own."""
    patient, anatomy, scores = patient_disease(seed, patient_index, config)
    return patient, patient_hands(seed, patient, anatomy, scores, sides)


def patient_disease(
    seed: int, patient_index: int, config: PhantomConfig
) -> tuple[Patient, PatientAnatomy, list[JointScore]]:
    """The patient, their proportions and their joints' scores (at the first visit)."""
    patient, prng = _patient(seed, patient_index)
    anatomy = PatientAnatomy.sample(prng, patient.sex)
    scores = sample_scores(prng, patient.severity, ("R", "L"), config.distribution)
    return patient, anatomy, scores


def patient_hands(
    seed: int,
    patient: Patient,
    anatomy: PatientAnatomy,
    scores: list[JointScore],
    sides: tuple[Side, ...],
    lesion_rngs: Callable[[Side, str], np.random.Generator] | None = None,
) -> list[Hand]:
    """The hands of ``sides`` with ``scores`` drawn in; ``lesion_rngs`` as in
    :func:`~.anatomy.build_hand`, per side."""
    hands: list[Hand] = []
    for side in sides:
        hrng = np.random.default_rng([seed, patient.index, 1 if side == "R" else 2])
        by_name = {s.name: s for s in scores if s.side == side}
        per_joint = None if lesion_rngs is None else partial(lesion_rngs, side)
        hands.append(build_hand(hrng, side, anatomy, by_name, patient.severity, per_joint))
    return hands


def _add_soft_tissue(
    canvas: Canvas, posed: list[Hand], style: TissueStyle, rows: int, columns: int
) -> None:
    """The hands' soft tissue: finger strokes, palm and forearm outlines, swellings."""
    canvas.add_soft_tissue(
        soft_tissue_thickness(
            rows,
            columns,
            canvas.spacing,
            [s for h in posed for s in h.strokes],
            [p for h in posed for p in h.polygons],
            [b for h in posed for b in h.blobs],
            depth_mm=style.tissue_depth_mm,
            round_mm=style.outline_round_mm,
        )
    )


def _draw_markers(canvas: Canvas, posed: list[Hand], columns: int) -> None:
    """A side marker ("R" or "L") beside each hand's outer edge, near the top of the field."""
    spacing = canvas.spacing
    for hand in posed:
        lo = np.min([p.min(axis=0) for p, _ in hand.strokes], axis=0)
        hi = np.max([p.max(axis=0) for p, _ in hand.strokes], axis=0)
        outer_x = lo[0] - 16.0 if hand.side == "R" else hi[0] + 4.0
        corner = (float(np.clip(outer_x, 12.0, columns * spacing - 24.0)), 12.0)
        draw_marker(canvas.attenuation, spacing, hand.side, corner)


def _rescale_and_window(
    rng: np.random.Generator,
    modality: Modality,
    quant: Quantisation,
    inverted: bool,
    shown: tuple[float, float],
) -> tuple[tuple[float, float] | None, tuple[float, float] | None]:
    """The file's rescale and, often, its window (in rescaled units) over the ``shown`` range.

    DX fixes the rescale at slope 1, intercept 0 (DX Image Module); CR may use any, or none.
    """
    rescale_options: list[tuple[float, float] | None] = [(1.0, 0.0)]
    if modality == "CR":
        rescale_options += [(1.0, -1024.0), (0.5, 0.0), None]
    rescale = rescale_options[int(rng.integers(len(rescale_options)))]
    window: tuple[float, float] | None = None
    # air shows grey (the look's fog) where the file carries its window; without one a reader
    # makes its own from the histogram, as it would for any such radiograph
    if modality == "DX" or rng.random() < 0.6:
        a, b = quant.value_of(shown[0], inverted), quant.value_of(shown[1], inverted)
        slope, intercept = rescale or (1.0, 0.0)
        window = (
            round(slope * 0.5 * (a + b) + intercept, 1),
            round(slope * abs(b - a), 1),
        )
    return rescale, window


def _truth(side: Side, g: JointGeometry, spacing: float, rows: int, columns: int) -> JointTruth:
    cx, cy = g.center[0] / spacing, g.center[1] / spacing
    half = g.half_extent / spacing
    x0, y0 = max(round(cx - half), 0), max(round(cy - half), 0)
    x1, y1 = min(round(cx + half), columns), min(round(cy + half), rows)
    return JointTruth(
        label=f"{side}_{g.name}",
        joint_type=joint_type(g.name),
        center=(round(cx, 1), round(cy, 1)),
        box=(x0, y0, x1 - x0, y1 - y0),
        jsn=g.score.jsn,
        erosion=g.score.erosion,
        axis=(round(g.axis[0], 4), round(g.axis[1], 4)),
        jsn_form=g.form,
        erosion_surfaces=g.surfaces,
        gap_mm=round(g.gap, 3),
        normal_gap_mm=round(g.normal_gap, 3),
        width_mm=round(g.width, 2),
        osteopenia=round(g.osteopenia, 3),
        swelling=round(g.swelling, 2),
    )


def generate_set(
    seed: int, count: int, config: PhantomConfig | None = None
) -> Iterator[PhantomImage]:
    """``count`` images; with one hand per image, consecutive pairs are one patient's study."""
    for index in range(count):
        yield generate_image(seed, index, config)
