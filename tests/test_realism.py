"""scoring.evaluation.realism's statistics on synthetic clips whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from scoring.cnn import to_tensor
from scoring.evaluation import realism


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _step(width: float, size: int = 48) -> np.ndarray:
    """A vertical bright bar (a bone, 20 px wide) on a dark ground, its edges blurred by a
    logistic ramp of the given width."""
    xs = np.arange(size) - (size - 1) / 2
    bar = 1 / (1 + np.exp(-(10 - np.abs(xs)) / max(width, 1e-3)))
    return np.tile(60 + 120 * bar, (size, 1))


def test_standardise_is_what_the_cnn_sees() -> None:
    rng = np.random.default_rng(0)
    clips = _u8(rng.normal(120, 30, (3, 48, 48)))
    z = realism.standardise(clips)
    assert np.allclose(z.mean(axis=(1, 2)), 0, atol=1e-9)
    assert np.allclose(z.std(axis=(1, 2), ddof=1), 1, atol=1e-9)
    assert np.allclose(z, to_tensor(clips).numpy()[:, 0], atol=1e-5)
    flat = realism.standardise(np.full((1, 48, 48), 7, np.uint8))
    assert np.abs(flat).max() < 1e-12


def test_noise_sigma_recovers_white_noise_on_a_ramp() -> None:
    rng = np.random.default_rng(1)
    ramp = np.add.outer(np.arange(48.0), np.arange(48.0))  # a plane: invisible to the mask
    clips = ramp + rng.normal(0, 3.0, (20, 48, 48))
    assert realism.noise_sigma(clips).mean() == pytest.approx(3.0, rel=0.05)


def test_flat_noise_and_its_grain() -> None:
    rng = np.random.default_rng(2)
    white = rng.normal(0, 1, (10, 48, 48))
    # grain: white noise smoothed along both axes is correlated a pixel away
    grain = white.copy()
    grain[:, 1:, :] += white[:, :-1, :]
    grain[:, :, 1:] += grain[:, :, :-1].copy()
    w = realism.flat_noise(white, share=1.0)
    g = realism.flat_noise(grain, share=1.0)
    assert np.all(g["flat_noise_autocorr"] > w["flat_noise_autocorr"] + 0.2)
    assert np.median(w["noise_bright_over_dark"]) == pytest.approx(1.0, abs=0.15)


def test_radial_power_white_noise_is_flat_smooth_clip_is_low() -> None:
    rng = np.random.default_rng(3)
    freqs, white = realism.radial_power(rng.normal(0, 1, (50, 48, 48)))
    assert freqs[0] == pytest.approx(1 / 48) and freqs[-1] == pytest.approx(0.5)
    assert np.allclose(white.sum(axis=1), 1)
    mean = white.mean(axis=0)
    assert mean[5:].max() / mean[5:].min() < 1.5  # flat away from the window's blur of DC
    high = realism.band_fraction(freqs, white, 0.25, 0.51)
    smooth = realism.band_fraction(*realism.radial_power(_step(4.0)[None]), 0.25, 0.51)
    assert high.mean() > 0.3 and smooth[0] < 0.01
    assert abs(realism.spectral_slope(freqs, mean, 0.1, 0.45)) < 0.3


def test_edges_sharper_step_has_higher_gradient() -> None:
    sharp = realism.standardise(_u8(_step(0.3))[None])
    soft = realism.standardise(_u8(_step(2.5))[None])
    g_sharp = realism.gradient_magnitude(realism.smooth(sharp)).max()
    g_soft = realism.gradient_magnitude(realism.smooth(soft)).max()
    assert g_sharp > 1.5 * g_soft


def test_structure_tensor_axis_of_vertical_bar_and_isotropic_noise() -> None:
    bar = realism.standardise(_u8(_step(1.0))[None])
    coherence, axis = realism.structure_tensor(bar)
    assert coherence[0] > 0.95
    assert abs(np.cos(axis[0])) < 0.05  # the axis runs vertically (y)
    rng = np.random.default_rng(4)
    noise_coherence, _ = realism.structure_tensor(rng.normal(0, 1, (5, 48, 48)))
    assert noise_coherence.max() < 0.2


def test_profiles_find_the_joint_space_and_the_bone_width() -> None:
    clip = _step(0.5)
    clip[22:26, :] = 70  # a dark joint space across the bar, at the middle
    clip[34:36, :] = 100  # a fainter second line (a growth plate)
    x = realism.standardise(_u8(clip)[None])
    profiles = realism.axis_profiles(x)
    depth, offset, dips = realism.profile_dips(profiles, prominence=0.5)
    assert depth[0] > 1.0 and offset[0] <= 2
    assert dips[0] == 2
    width = realism.bright_width(realism.across_profiles(x))
    assert width[0] == pytest.approx(20 / 47, abs=0.06)


def test_bright_statistics_of_a_two_level_clip() -> None:
    clip = np.zeros((48, 48))
    clip[:, :12] = 200
    fraction, separation = realism.bright_statistics(realism.standardise(_u8(clip)[None]))
    assert fraction[0] == pytest.approx(0.25)
    # two levels at shares 1/4 and 3/4, in units of their spread: 1 / sqrt(p (1 − p))
    assert separation[0] == pytest.approx(1 / np.sqrt(0.25 * 0.75), rel=0.02)


def test_histogram_and_js_divergence() -> None:
    edges = np.linspace(0, 4, 5)
    p = realism.histogram(np.array([0.5, 1.5, 9.0]), edges)  # 9 lands in the last bin
    assert p.tolist() == pytest.approx([1 / 3, 1 / 3, 0, 1 / 3])
    assert realism.js_divergence(p, p) == pytest.approx(0)
    assert realism.js_divergence(np.array([1, 0]), np.array([0, 1])) == pytest.approx(1)


def test_auc_and_bootstrap() -> None:
    y = np.array([0, 0, 1, 1])
    assert realism.auc(np.array([0.1, 0.2, 0.3, 0.4]), y) == 1
    assert realism.auc(np.array([0.4, 0.3, 0.2, 0.1]), y) == 0
    assert realism.auc(np.array([1, 1, 1, 1]), y) == 0.5
    assert realism.auc(np.array([0.1, 0.3, 0.2, 0.4]), y) == 0.75
    assert np.isnan(realism.auc(np.array([1.0, 2.0]), np.array([1, 1])))
    rng = np.random.default_rng(5)
    labels = np.repeat([0, 1], 200)
    scores = rng.normal(labels * 1.0, 1.0)
    groups = np.arange(400) // 10  # 20 images of 10 clips per class
    lo, hi = realism.bootstrap_auc(scores, labels, groups, rng, 300)
    a = realism.auc(scores, labels)
    assert lo < a < hi
    assert lo > 0.6 and hi < 0.9


def test_fit_logistic_separates_and_weights_the_telling_feature() -> None:
    rng = np.random.default_rng(6)
    y = np.r_[np.zeros(300), np.ones(100)]
    x = np.column_stack([rng.normal(y * 2.0, 1.0), rng.normal(0, 1, 400)])
    w, b = realism.fit_logistic(x, y)
    assert w[0] > 1.0 and abs(w[1]) < 0.3
    assert realism.auc(x @ w + b, y) > 0.85


def test_clip_features_cover_every_clip() -> None:
    rng = np.random.default_rng(7)
    clips = _u8(_step(1.0)[None] + rng.normal(0, 4, (6, 48, 48)))
    features = realism.clip_features(clips)
    assert all(v.shape == (6,) and np.isfinite(v).all() for v in features.values())
