"""The phantom's pictures carry its labels, its labels follow the paper, and it is repeatable."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import replace

import numpy as np
import pytest
from joint_measure import grey, joint_space

from scoring.phantom import JOINT_NAMES, PhantomConfig, PhantomImage, generate_image
from scoring.phantom.acquisition import Look
from scoring.phantom.disease import TABLE2_EROSION, TABLE2_JSN, sample_scores
from scoring.phantom.gallery import display_grey
from scoring.phantom.render import TissueStyle

UNIFORM = PhantomConfig(distribution="uniform")


@pytest.fixture(scope="module")
def uniform_set_without_erosions() -> list[PhantomImage]:
    """Bilateral images with every JSN grade well represented and no erosions to confound."""
    config = replace(UNIFORM, erosions=False)
    return [generate_image(21, i, config) for i in range(8)]


@pytest.fixture(scope="module")
def film_set_without_erosions() -> list[PhantomImage]:
    """The same, every image and patient at the most film-like end of every look range: grey
    air, bone squeezed by the film's curve, grain, scatter, soft and coarse bone."""
    config = replace(UNIFORM, erosions=False, realism=1.0)
    return [generate_image(21, i, config) for i in range(8)]


@pytest.mark.parametrize("images", ["uniform_set_without_erosions", "film_set_without_erosions"])
def test_measured_joint_space_falls_with_jsn_grade(
    images: str, request: pytest.FixtureRequest
) -> None:
    by_grade: dict[int, list[float]] = defaultdict(list)
    for image in request.getfixturevalue(images):
        values = grey(image)
        for joint in image.joints:
            if joint.jsn_form in ("ankylosis", "luxation"):
                continue
            space = joint_space(values, joint, image.acquisition.pixel_spacing_mm)
            by_grade[joint.jsn].append(space.width_mm)
    means = [statistics.fmean(by_grade[g]) for g in range(4)]
    assert all(len(by_grade[g]) >= 10 for g in range(4)), {g: len(v) for g, v in by_grade.items()}
    assert means[0] > means[1] > means[2] > means[3], means
    # grade 2 keeps more than half the space, grade 3 less (SvdH), measured through the blur
    assert means[2] > 0.6 * means[0]
    assert means[3] < 0.6 * means[0]


def test_ankylosed_joint_has_bone_across_the_space(
    uniform_set_without_erosions: list[PhantomImage],
) -> None:
    fused, open_ = [], []
    for image in uniform_set_without_erosions:
        values = grey(image)
        for joint in image.joints:
            space = joint_space(values, joint, image.acquisition.pixel_spacing_mm)
            if joint.jsn_form == "ankylosis":
                fused.append(space.depth)
            elif joint.jsn <= 2:
                open_.append(space.depth)
    assert fused, "no ankylosed joint in the sample"
    # an open joint's space falls to about half the bone's brightness; a fused one barely dips
    assert max(fused) < 0.25 < min(open_), (max(fused), min(open_))


def test_ankylosed_joint_has_bone_across_the_space_in_the_film_look(
    film_set_without_erosions: list[PhantomImage],
) -> None:
    """A film's grey joint spaces dip less against the bone than the clean look's (soft tissue
    and scatter lift them, the curve squeezes bone), so depths are compared within the look:
    every fused joint dips less than every open one, and well under its own image's open
    joints."""
    fused, open_ = [], []
    for image in film_set_without_erosions:
        values = grey(image)
        depths = {
            j.label: joint_space(values, j, image.acquisition.pixel_spacing_mm).depth
            for j in image.joints
        }
        opened = [depths[j.label] for j in image.joints if j.jsn <= 2]
        for joint in image.joints:
            if joint.jsn_form == "ankylosis":
                fused.append(depths[joint.label])
                assert depths[joint.label] < 0.6 * statistics.median(opened), joint.label
        open_ += opened
    assert fused, "no ankylosed joint in the sample"
    assert max(fused) < min(open_), (max(fused), min(open_))


def test_erosions_change_pixels_only_in_joints_labelled_eroded() -> None:
    config = replace(UNIFORM, hands=2)
    areas: dict[int, list[int]] = defaultdict(list)
    for index in range(3):
        with_erosions = generate_image(33, index, config)
        without = generate_image(33, index, replace(config, erosions=False))
        changed = with_erosions.pixels != without.pixels
        inside = np.zeros_like(changed)
        for joint in with_erosions.joints:
            x, y, w, h = joint.box
            box_changed = int(changed[y : y + h, x : x + w].sum())
            if joint.erosion == 0:
                continue
            inside[y : y + h, x : x + w] = True
            areas[joint.erosion].append(box_changed)
            assert box_changed > 0, f"{joint.label} is labelled erosion {joint.erosion}"
        outside = changed & ~inside
        assert not outside.any(), f"{int(outside.sum())} pixels changed outside eroded joints"
    # larger scores remove more bone (joints of different sizes: compare averages)
    mean_area = {score: statistics.fmean(v) for score, v in areas.items()}
    assert mean_area[1] < mean_area[2] < mean_area[3], mean_area


def test_erosions_stay_inside_their_joints_in_the_film_look() -> None:
    """Scatter, grain and the window come from the exposure, never from the bones' pixels."""
    config = replace(UNIFORM, realism=1.0)
    with_erosions = generate_image(33, 0, config)
    without = generate_image(33, 0, replace(config, erosions=False))
    changed = with_erosions.pixels != without.pixels
    for joint in with_erosions.joints:
        if joint.erosion:
            x, y, w, h = joint.box
            changed[y : y + h, x : x + w] = False
    assert not changed.any(), f"{int(changed.sum())} pixels changed outside eroded joints"


def test_look_never_moves_anatomy_or_truth() -> None:
    """How an image looks (realism 0 … 1) leaves patient, labels, geometry and field alone."""
    for index in range(3):
        images = [generate_image(5, index, PhantomConfig(realism=r)) for r in (0.0, 0.5, 1.0)]
        first = images[0]
        for other in images[1:]:
            assert other.joints == first.joints
            assert other.patient == first.patient
            assert replace(other.acquisition, window=None) == replace(
                first.acquisition, window=None
            )
            assert not np.array_equal(other.pixels, first.pixels)


def test_clean_look_is_the_default_look() -> None:
    """Realism 0 is generator 1.0's look: every look and style parameter at its default."""
    rng = np.random.default_rng(3)
    clean = Look.sample(rng, 0.0)
    assert replace(clean, shading_phases=Look().shading_phases) == Look()
    assert TissueStyle.sample(rng, 0.0) == TissueStyle()


def test_most_looks_are_real_but_the_clean_look_stays() -> None:
    looks = [Look.sample(np.random.default_rng([8, i, 7])) for i in range(400)]
    styles = [TissueStyle.sample(np.random.default_rng([8, i, 5])) for i in range(400)]
    for drawn in (looks, styles):
        realism = np.array([d.realism for d in drawn])
        assert 0.6 < np.mean(realism >= 0.45) < 0.8
        assert 0.2 < np.mean(realism <= 0.2) < 0.4
    # each parameter spans its clean value and real-looking ones
    fog = np.array([look.fog for look in looks])
    assert np.mean(fog < 0.05) > 0.15 and np.mean(fog > 0.2) > 0.3
    blur = np.array([look.extra_blur_mm for look in looks])
    assert blur.min() < 0.01 and blur.max() > 0.1
    density = np.array([s.bone_density for s in styles])
    assert density.max() > 0.98 and density.min() < 0.8


def test_film_look_shows_air_grey_and_clean_look_black() -> None:
    """The window a film-like image carries reaches below the open beam: air is mid-grey, as
    on a scanned film, not black; the clean look keeps air black. Bone is brighter than air in
    both."""
    for realism, air_low, air_high in ((0.0, 0, 12), (1.0, 40, 120)):
        image = generate_image(12, 0, PhantomConfig(realism=realism))
        assert image.acquisition.window is not None  # as a viewer shows it: in its window
        grey = display_grey(image)
        # air: the darkest twentieth of the picture (no anatomy is darker than the open beam)
        air = float(np.percentile(grey, 5))
        assert air_low <= air <= air_high, (realism, air)
        bone = [grey[round(j.center[1]), round(j.center[0])] for j in image.joints]
        assert float(np.median(bone)) > air + 40, (realism, np.median(bone), air)


def test_same_seed_same_pixels_other_seed_other_pixels() -> None:
    first = generate_image(5, 1)
    again = generate_image(5, 1)
    other = generate_image(6, 1)
    assert np.array_equal(first.pixels, again.pixels)
    assert first.joints == again.joints
    assert first.acquisition == again.acquisition
    assert not np.array_equal(first.pixels[:100, :100], other.pixels[:100, :100]) or (
        first.pixels.shape != other.pixels.shape
    )


def test_acquisition_within_the_promised_ranges() -> None:
    photometrics, modalities = set(), set()
    for index in range(10):
        image = generate_image(77, index)
        acq = image.acquisition
        photometrics.add(acq.photometric)
        modalities.add(acq.modality)
        assert 0.10 <= acq.pixel_spacing_mm <= 0.20
        assert 1800 <= acq.rows <= 3000 and 1800 <= acq.columns <= 3000
        assert image.pixels.shape == (acq.rows, acq.columns)
        assert 10 <= acq.bits_stored <= 16
        assert int(image.pixels.max()) < 1 << acq.bits_stored
        if acq.modality == "DX":
            assert acq.rescale == (1.0, 0.0) and acq.window is not None
        labels = [j.label for j in image.joints]
        assert sorted(labels) == sorted(f"{s}_{n}" for s in ("R", "L") for n in JOINT_NAMES)
        for joint in image.joints:
            x, y, w, h = joint.box
            assert x >= 0 and y >= 0 and x + w <= acq.columns and y + h <= acq.rows
            assert x <= joint.center[0] <= x + w and y <= joint.center[1] <= y + h
        # the patient's right hand is hung on the image's left
        right = [j.center[0] for j in image.joints if j.side == "R"]
        left = [j.center[0] for j in image.joints if j.side == "L"]
        assert max(right) < min(left)
    assert photometrics == {"MONOCHROME1", "MONOCHROME2"}
    assert modalities == {"CR", "DX"}


def test_single_hand_images_pair_into_one_patient() -> None:
    config = PhantomConfig(hands=1)
    right, left = generate_image(9, 0, config), generate_image(9, 1, config)
    assert right.hands == ("R",) and left.hands == ("L",)
    assert right.patient == left.patient and right.study_index == left.study_index
    assert {j.label[0] for j in right.joints} == {"R"}
    assert len(left.joints) == 10


def _frequencies(distribution: str) -> dict[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    counts = {
        "jsn": {"PIP/IP": np.zeros(5), "MCP": np.zeros(5)},
        "erosion": {"PIP/IP": np.zeros(6), "MCP": np.zeros(6)},
    }
    for _ in range(3000):
        severity = float(rng.standard_normal())
        for score in sample_scores(rng, severity, ("R", "L"), distribution):  # type: ignore[arg-type]
            group = "MCP" if score.name.startswith("MCP") else "PIP/IP"
            counts["jsn"][group][score.jsn] += 1
            counts["erosion"][group][score.erosion] += 1
    return {k: {g: c / c.sum() for g, c in v.items()} for k, v in counts.items()}


def test_default_class_frequencies_follow_table_2() -> None:
    freq = _frequencies("table2")
    for group in ("PIP/IP", "MCP"):
        want_jsn = np.array(TABLE2_JSN[group]) / sum(TABLE2_JSN[group])
        want_erosion = np.array(TABLE2_EROSION[group]) / sum(TABLE2_EROSION[group])
        assert np.abs(freq["jsn"][group] - want_jsn).max() < 0.04, (group, freq["jsn"][group])
        assert np.abs(freq["erosion"][group] - want_erosion).max() < 0.04


def test_uniform_switch_gives_equal_classes() -> None:
    freq = _frequencies("uniform")
    for group in ("PIP/IP", "MCP"):
        assert np.abs(freq["jsn"][group] - 0.2).max() < 0.03
        assert np.abs(freq["erosion"][group] - 1 / 6).max() < 0.03


def test_damage_is_symmetric_and_prefers_mcp2_3_and_pip() -> None:
    rng = np.random.default_rng(1)
    per_joint: dict[str, list[int]] = defaultdict(list)
    pairs: list[tuple[int, int]] = []
    for _ in range(2000):
        scores = sample_scores(rng, float(rng.standard_normal()), ("R", "L"))
        by_label = {(s.side, s.name): s.jsn + s.erosion for s in scores}
        for name in JOINT_NAMES:
            per_joint[name].append(by_label[("R", name)])
            pairs.append((by_label[("R", name)], by_label[("L", name)]))
    r = np.corrcoef(np.array(pairs).T)[0, 1]
    assert r > 0.5, r
    mean = {name: statistics.fmean(v) for name, v in per_joint.items()}
    assert min(mean["MCP2"], mean["MCP3"]) > max(mean["MCP1"], mean["MCP4"], mean["MCP5"])
    assert min(mean[f"PIP{i}"] for i in range(2, 6)) > max(mean["MCP4"], mean["MCP5"])
