"""How phantom joint clips differ from real ones: per-clip image statistics in plain numpy.

benchmarks/realism_gap.py compares phantom and real clips with these, so that whoever improves
the phantom sees which property (intensity histogram, noise, texture spectrum, edge sharpness,
joint-space profile) sets them apart most. Most statistics are taken on the clip as the CNN sees
it (scoring.cnn.to_tensor: each clip at zero mean and unit spread), so a site's windowing does
not enter them; those that are not say so (``raw_`` in their name).
"""

from __future__ import annotations

import numpy as np

MIN_STD = 0.02  #: as scoring.cnn: a flat clip is not stretched into noise
#: Immerkær's noise mask: a second difference in both directions that cancels planes and ramps
_NOISE_MASK = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float64)


def standardise(clips: np.ndarray) -> np.ndarray:
    """uint8 N×H×W → float N×H×W at zero mean and unit spread per clip, as the CNN sees them."""
    x = np.asarray(clips, np.float64) / 255.0
    mean = x.mean(axis=(1, 2), keepdims=True)
    std = np.maximum(x.std(axis=(1, 2), ddof=1, keepdims=True), MIN_STD)
    return (x - mean) / std


def _filter3(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Valid 3×3 correlation of every clip of N×H×W with ``kernel`` (N×(H−2)×(W−2))."""
    rows, cols = x.shape[1] - 2, x.shape[2] - 2
    out = np.zeros((x.shape[0], rows, cols))
    for i in range(3):
        for j in range(3):
            if kernel[i, j]:
                out += kernel[i, j] * x[:, i : i + rows, j : j + cols]
    return out


def smooth(x: np.ndarray) -> np.ndarray:
    """3×3 binomial smoothing (valid part): takes the pixel noise off before edges are
    measured, so that noise does not pass for sharpness."""
    k = np.outer([1.0, 2.0, 1.0], [1.0, 2.0, 1.0]) / 16.0
    return _filter3(x, k)


def gradient_magnitude(x: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude per pixel (valid part), in the clip's units per pixel."""
    sobel = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8.0
    gx, gy = _filter3(x, sobel), _filter3(x, sobel.T)
    return np.asarray(np.hypot(gx, gy))


def noise_sigma(x: np.ndarray) -> np.ndarray:
    """Per-clip standard deviation of white pixel noise (Immerkær 1996): the mean absolute
    response to a mask blind to planes, scaled; edges add a little, so it reads high on busy
    clips, alike for both kinds."""
    response = np.abs(_filter3(np.asarray(x, np.float64), _NOISE_MASK))
    return np.asarray(np.sqrt(np.pi / 2.0) * response.mean(axis=(1, 2)) / 6.0)


def radial_power(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectrum of every clip (Hann-windowed, mean removed).

    Returns the frequencies (cycles per pixel, one per integer radius 1…side/2) and an
    N × len(frequencies) array of mean power, each row summing to 1: spectra then compare shape,
    not contrast."""
    n, rows, cols = x.shape
    if rows != cols:
        raise ValueError("square clips expected")
    window = np.outer(np.hanning(rows), np.hanning(cols))
    centred = x - x.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.fftshift(np.fft.fft2(centred * window), axes=(1, 2))) ** 2
    yy, xx = np.indices((rows, cols))
    radius = np.rint(np.hypot(yy - rows // 2, xx - cols // 2)).astype(int)
    radii = np.arange(1, rows // 2 + 1)
    out = np.empty((n, len(radii)))
    flat = power.reshape(n, -1)
    for k, r in enumerate(radii):
        out[:, k] = flat[:, (radius == r).ravel()].mean(axis=1)
    total = np.maximum(out.sum(axis=1, keepdims=True), 1e-30)
    return radii / rows, out / total


def band_fraction(freqs: np.ndarray, power: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Share of each row of ``power`` (from radial_power) at lo ≤ frequency < hi."""
    band = (freqs >= lo) & (freqs < hi)
    return np.asarray(power[..., band].sum(axis=-1) / np.maximum(power.sum(axis=-1), 1e-30))


def spectral_slope(freqs: np.ndarray, power: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Least-squares slope of log power on log frequency over lo ≤ f ≤ hi, per row: natural
    images fall at about −2 to −3; white noise gives 0; a phantom too smooth falls steeper."""
    band = (freqs >= lo) & (freqs <= hi)
    lf = np.log(freqs[band])
    lp = np.log(np.maximum(power[..., band], 1e-30))
    lf_c = lf - lf.mean()
    return np.asarray(
        ((lp - lp.mean(axis=-1, keepdims=True)) * lf_c).sum(axis=-1) / (lf_c**2).sum()
    )


def residual_autocorrelation(x: np.ndarray, lag: int = 1) -> np.ndarray:
    """Correlation of the fine residual (clip minus its 3×3 smoothing) with itself ``lag``
    pixels away, averaged over the two axes: about −0.1 for white noise, higher for grain or
    texture a few pixels wide (trabeculae, film grain)."""
    residual = x[:, 1:-1, 1:-1] - smooth(x)
    residual = residual - residual.mean(axis=(1, 2), keepdims=True)
    var = np.maximum((residual**2).mean(axis=(1, 2)), 1e-30)
    across = (residual[:, :, lag:] * residual[:, :, :-lag]).mean(axis=(1, 2))
    down = (residual[:, lag:, :] * residual[:, :-lag, :]).mean(axis=(1, 2))
    return np.asarray((across + down) / (2.0 * var))


def flat_noise(x: np.ndarray, share: float = 0.4) -> dict[str, np.ndarray]:
    """Pixel noise where the clip is flat (the ``share`` of pixels with the weakest smoothed
    gradient), per clip: its spread in clip units (noise against the clip's contrast), its
    lag-1 correlation (about −0.1 for white noise, higher for grain a few pixels wide) and the
    ratio of its spread on the bright half of those pixels to the dark half (how noise follows
    exposure: quantum noise in a log image is worst where the bone stops most photons)."""
    residual = (x[:, 1:-1, 1:-1] - smooth(x))[:, 1:-1, 1:-1]
    grad = gradient_magnitude(smooth(x))
    level = x[:, 2:-2, 2:-2]
    n = len(x)
    spread, corr, ratio = np.empty(n), np.empty(n), np.empty(n)
    for i in range(n):
        mask = grad[i] <= np.quantile(grad[i], share)
        r = residual[i] - residual[i][mask].mean()
        var = max(float((r[mask] ** 2).mean()), 1e-30)
        pairs_x = mask[:, 1:] & mask[:, :-1]
        pairs_y = mask[1:, :] & mask[:-1, :]
        across = (r[:, 1:] * r[:, :-1])[pairs_x].mean() if pairs_x.any() else 0.0
        down = (r[1:, :] * r[:-1, :])[pairs_y].mean() if pairs_y.any() else 0.0
        spread[i] = np.sqrt(var)
        corr[i] = (across + down) / (2.0 * var)
        cut = np.median(level[i][mask])
        bright = r[mask & (level[i] > cut)]
        dark = r[mask & (level[i] <= cut)]
        ratio[i] = (bright.std() if len(bright) > 1 else 0.0) / max(
            dark.std() if len(dark) > 1 else 0.0, 1e-9
        )
    return {"flat_noise": spread, "flat_noise_autocorr": corr, "noise_bright_over_dark": ratio}


def structure_tensor(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per clip, the coherence (0 isotropic … 1 all edges one way) and the angle of the dominant
    structure (radians, of the edges' common direction, i.e. the bone's axis) from the summed
    structure tensor of the smoothed clip."""
    s = smooth(x)
    k = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8.0
    gx, gy = _filter3(s, k), _filter3(s, k.T)
    jxx, jyy, jxy = (gx * gx).sum((1, 2)), (gy * gy).sum((1, 2)), (gx * gy).sum((1, 2))
    trace = np.maximum(jxx + jyy, 1e-30)
    coherence = np.sqrt((jxx - jyy) ** 2 + 4.0 * jxy**2) / trace
    gradient_angle = 0.5 * np.arctan2(2.0 * jxy, jxx - jyy)
    return np.asarray(coherence), np.asarray(gradient_angle + np.pi / 2.0)


def sample_bilinear(image: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Values of one 2-D image at fractional (x, y), edges clamped."""
    rows, cols = image.shape
    xs = np.clip(xs, 0.0, cols - 1.0)
    ys = np.clip(ys, 0.0, rows - 1.0)
    x0 = np.minimum(np.floor(xs).astype(int), cols - 2)
    y0 = np.minimum(np.floor(ys).astype(int), rows - 2)
    fx, fy = xs - x0, ys - y0
    top = image[y0, x0] * (1 - fx) + image[y0, x0 + 1] * fx
    bottom = image[y0 + 1, x0] * (1 - fx) + image[y0 + 1, x0 + 1] * fx
    return np.asarray(top * (1 - fy) + bottom * fy)


def axis_profiles(x: np.ndarray, half_length: int = 20, half_width: int = 4) -> np.ndarray:
    """Per clip, the mean of a band 2·half_width+1 pixels wide through the clip's centre along
    its dominant axis (structure_tensor), sampled at −half_length…half_length pixels: across a
    joint it shows the joint space (and, in children, the growth plate) as dips."""
    _, axis = structure_tensor(x)
    t = np.arange(-half_length, half_length + 1, dtype=np.float64)
    s = np.arange(-half_width, half_width + 1, dtype=np.float64)
    cy, cx = (x.shape[1] - 1) / 2.0, (x.shape[2] - 1) / 2.0
    out = np.empty((len(x), len(t)))
    for i, angle in enumerate(axis):
        ux, uy = np.cos(angle), np.sin(angle)
        xs = cx + t[:, None] * ux - s[None, :] * uy
        ys = cy + t[:, None] * uy + s[None, :] * ux
        out[i] = sample_bilinear(x[i], xs, ys).mean(axis=1)
    return out


def across_profiles(
    x: np.ndarray, along: float = 10.0, half_length: int = 23, half_width: int = 3
) -> np.ndarray:
    """Per clip, the mean profile across the bone (perpendicular to its axis), sampled at
    −half_length…half_length pixels through the points ``along`` pixels either side of the
    centre on the axis (the two shafts, off the joint space), each a band 2·half_width+1 thick."""
    _, axis = structure_tensor(x)
    t = np.arange(-half_length, half_length + 1, dtype=np.float64)
    s = np.r_[
        np.arange(-along - half_width, -along + half_width + 1),
        np.arange(along - half_width, along + half_width + 1),
    ].astype(np.float64)
    cy, cx = (x.shape[1] - 1) / 2.0, (x.shape[2] - 1) / 2.0
    out = np.empty((len(x), len(t)))
    for i, angle in enumerate(axis):
        ux, uy = np.cos(angle), np.sin(angle)
        xs = cx - t[:, None] * uy + s[None, :] * ux
        ys = cy + t[:, None] * ux + s[None, :] * uy
        out[i] = sample_bilinear(x[i], xs, ys).mean(axis=1)
    return out


def bright_width(profiles: np.ndarray) -> np.ndarray:
    """Per profile, the share of its samples above half way between its 5th and 95th
    percentile: across a finger, the bone (and dense soft tissue) width against the clip's."""
    lo = np.percentile(profiles, 5, axis=1, keepdims=True)
    hi = np.percentile(profiles, 95, axis=1, keepdims=True)
    return np.asarray((profiles > (lo + hi) / 2.0).mean(axis=1))


def profile_dips(
    profiles: np.ndarray, prominence: float = 0.5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per profile: the depth of its deepest dip in the middle half (the joint space: median of
    the profile minus its minimum there), how far that dip lies from the middle (samples) and
    how many local minima stand ``prominence`` below
    the lower of the highest values on each side of them (one per joint space, growth plate)."""
    n, length = profiles.shape
    quarter = length // 4
    middle = profiles[:, quarter : length - quarter]
    depth = np.median(profiles, axis=1) - middle.min(axis=1)
    offset = np.abs(np.argmin(middle, axis=1) + quarter - (length - 1) / 2.0)
    counts = np.zeros(n, np.int64)
    for i, p in enumerate(profiles):
        for k in range(1, length - 1):
            minimum = p[k] <= p[k - 1] and p[k] < p[k + 1]
            if minimum and min(p[:k].max(), p[k + 1 :].max()) - p[k] >= prominence:
                counts[i] += 1
    return np.asarray(depth), np.asarray(offset), counts


def otsu_threshold(values: np.ndarray, bins: int = 64) -> float:
    """Otsu's threshold of a 1-D sample: the cut that best splits it into two classes."""
    hist, edges = np.histogram(values, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2.0
    weight = np.cumsum(hist)
    total = weight[-1]
    cum_mean = np.cumsum(hist * centres)
    w0, w1 = weight[:-1], total - weight[:-1]
    m0 = cum_mean[:-1] / np.maximum(w0, 1)
    m1 = (cum_mean[-1] - cum_mean[:-1]) / np.maximum(w1, 1)
    between = w0 * w1 * (m0 - m1) ** 2
    return float(edges[1:][:-1][int(np.argmax(between))])


def bright_statistics(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per standardised clip: the share of pixels above its Otsu threshold (bone, roughly) and
    the gap between the two Otsu classes' means in units of the clip's spread (how bimodal,
    i.e. how cleanly bone stands off the background)."""
    fraction = np.empty(len(x))
    separation = np.empty(len(x))
    for i, clip in enumerate(x):
        v = clip.ravel()
        cut = otsu_threshold(v)
        hi, lo = v[v > cut], v[v <= cut]
        fraction[i] = len(hi) / len(v)
        separation[i] = (hi.mean() if len(hi) else 0.0) - (lo.mean() if len(lo) else 0.0)
    return fraction, separation


def skewness_kurtosis(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per standardised clip, the third and fourth moments (excess kurtosis): the shape of its
    histogram once level and contrast are taken out."""
    flat = x.reshape(len(x), -1)
    z = (flat - flat.mean(1, keepdims=True)) / np.maximum(flat.std(1, keepdims=True), 1e-12)
    return np.asarray((z**3).mean(1)), np.asarray((z**4).mean(1) - 3.0)


def histogram(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of all ``values`` in each bin (outside values go to the end bins)."""
    clipped = np.clip(np.ravel(values), edges[0], edges[-1])
    counts, _ = np.histogram(clipped, bins=edges)
    return np.asarray(counts / max(counts.sum(), 1))


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen–Shannon divergence of two histograms in bits (0 same … 1 disjoint)."""
    p = np.asarray(p, np.float64) / max(float(np.sum(p)), 1e-30)
    q = np.asarray(q, np.float64) / max(float(np.sum(q)), 1e-30)
    m = (p + q) / 2.0

    def kl(a: np.ndarray) -> float:
        keep = a > 0
        return float((a[keep] * np.log2(a[keep] / m[keep])).sum())

    return (kl(p) + kl(q)) / 2.0


def clip_features(clips: np.ndarray) -> dict[str, np.ndarray]:
    """Every per-clip statistic of uint8 N×H×W clips (the 48×48 joint box), by name: the
    figures compared between phantom and real clips and the logistic regression's inputs."""
    raw = np.asarray(clips, np.float64)
    x = standardise(clips)
    freqs, power = radial_power(x)
    grad = gradient_magnitude(smooth(x)).reshape(len(x), -1)
    spread = np.percentile(x.reshape(len(x), -1), 95, axis=1) - np.percentile(
        x.reshape(len(x), -1), 5, axis=1
    )
    edge = np.percentile(grad, 99, axis=1)
    coherence, _ = structure_tensor(x)
    depth, dip_offset, dips = profile_dips(axis_profiles(x))
    fraction, separation = bright_statistics(x)
    skew, kurt = skewness_kurtosis(x)
    raw_flat = raw.reshape(len(raw), -1)
    return {
        "raw_mean": raw_flat.mean(1),
        "raw_std": raw_flat.std(1),
        "raw_p1": np.percentile(raw_flat, 1, axis=1),
        "raw_p99": np.percentile(raw_flat, 99, axis=1),
        "raw_noise_sigma": noise_sigma(raw),
        "skewness": skew,
        "excess_kurtosis": kurt,
        "bright_fraction": fraction,
        "bright_separation": separation,
        "noise_to_contrast": noise_sigma(x),
        **flat_noise(x),
        "power_low_0_0.06": band_fraction(freqs, power, 0.0, 0.0625),
        "power_mid_0.06_0.25": band_fraction(freqs, power, 0.0625, 0.25),
        "power_high_0.25_0.5": band_fraction(freqs, power, 0.25, 0.51),
        "spectral_slope": spectral_slope(freqs, power, 0.04, 0.25),
        "residual_autocorr_lag1": residual_autocorrelation(x, 1),
        "edge_p99_gradient": edge,
        "edge_width_px": spread / np.maximum(edge, 1e-9),
        "orientation_coherence": coherence,
        "joint_dip_depth": depth,
        "joint_dip_offset_px": dip_offset,
        "profile_dips": dips.astype(np.float64),
        "bone_width_fraction": bright_width(across_profiles(x)),
    }


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC (Mann–Whitney, ties counted half): how often a positive (label 1) scores above
    a negative. NaN without both classes."""
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels).astype(bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # average ranks over ties
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_scores)) + 1]
    ends = np.r_[starts[1:], len(scores)]
    for a, b in zip(starts, ends, strict=True):
        ranks[order[a:b]] = (a + b + 1) / 2.0
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def bootstrap_auc(
    scores: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray,
    rng: np.random.Generator,
    resamples: int = 1000,
) -> tuple[float, float]:
    """95 % percentile interval of the AUC when whole groups (images) are resampled with
    replacement, each class's groups separately: clips of one image are not independent."""
    scores, labels, groups = np.asarray(scores), np.asarray(labels), np.asarray(groups)
    members: dict[int, list[np.ndarray]] = {}
    for cls in (0, 1):
        ids = np.unique(groups[labels == cls])
        members[cls] = [np.flatnonzero((groups == g) & (labels == cls)) for g in ids]
    values = []
    for _ in range(resamples):
        picked = [
            members[cls][k]
            for cls in (0, 1)
            for k in rng.integers(0, len(members[cls]), len(members[cls]))
        ]
        idx = np.concatenate(picked)
        values.append(auc(scores[idx], labels[idx]))
    lo, hi = np.nanpercentile(values, [2.5, 97.5])
    return float(lo), float(hi)


def fit_logistic(
    features: np.ndarray, labels: np.ndarray, l2: float = 1.0, steps: int = 50
) -> tuple[np.ndarray, float]:
    """L2-penalised logistic regression by Newton's method, classes weighted equally: weights
    and intercept for features the caller has standardised (so weights compare)."""
    x = np.asarray(features, np.float64)
    y = np.asarray(labels, np.float64)
    n, d = x.shape
    share = y.mean()
    sample_weight = np.where(y > 0.5, 0.5 / max(share, 1e-12), 0.5 / max(1.0 - share, 1e-12))
    xb = np.hstack([x, np.ones((n, 1))])
    beta = np.zeros(d + 1)
    penalty = np.full(d + 1, l2)
    penalty[-1] = 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(xb @ beta, -30, 30)))
        grad = xb.T @ (sample_weight * (p - y)) + penalty * beta
        hess = (xb * (sample_weight * p * (1 - p))[:, None]).T @ xb + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return beta[:-1], float(beta[-1])
