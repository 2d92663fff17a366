"""From attenuation to stored pixel values, as a CR plate, DX detector or scanned film would
record them.

Exposure with a heel-effect gradient and collimation, scatter, quantum (Poisson) noise,
detector blur, then the logarithmic response of a "for presentation" radiograph, scaled into
the stored bit depth. A lead L/R marker is part of the exposure, like the one the
radiographer puts on the cassette.

How the picture is rendered — the grey-level curve, where the open beam sits on the grey scale,
unsharpness, grain — is a :class:`Look`, drawn per image over a range from the phantom's first
clean digital look (linear log response, air black, sharp, quantum noise only) to that of a
scanned film (a characteristic curve that bends over through the bone, the film's base and fog
keeping air grey in the image's window, scatter, a little more unsharpness, grain of the same
spread at every grey level, slow shading): domain randomisation towards real radiographs. The
look is drawn from its own random stream and reads nothing from the bones' pixels, so that it
never moves a label and an erosion still changes pixels only inside its joint.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .render import mixer

LEAD_ATTENUATION = 6.0  #: a 1 mm lead letter stops nearly everything
#: log signal of a finger's bone under its soft tissue: the scale of grain and shading
NOMINAL_BONE = 1.6


@dataclass(frozen=True)
class Exposure:
    dose: float  #: quanta per 0.1 mm pixel in the open beam
    heel: float  #: relative intensity change from top to bottom of the image
    blur_mm: float  #: detector point-spread (Gaussian sigma)
    collimation_mm: tuple[float, float, float, float] | None  #: left, top, right, bottom
    scatter: float  #: relative intensity behind the collimator blades
    kvp: float
    mas: float

    @classmethod
    def sample(cls, rng: np.random.Generator, width_mm: float, height_mm: float) -> Exposure:
        mas = float(rng.uniform(2.0, 8.0))
        collimation = None
        if rng.random() < 0.7:
            collimation = (
                float(rng.uniform(2.0, 10.0)),
                float(rng.uniform(2.0, 8.0)),
                width_mm - float(rng.uniform(2.0, 10.0)),
                height_mm - float(rng.uniform(0.0, 6.0)),
            )
        return cls(
            dose=mas * float(rng.uniform(350.0, 650.0)),
            heel=float(rng.uniform(-0.2, 0.2)),
            blur_mm=float(rng.uniform(0.07, 0.13)),
            collimation_mm=collimation,
            scatter=float(rng.uniform(0.02, 0.05)),
            kvp=float(np.round(rng.uniform(46.0, 60.0))),
            mas=round(mas, 1),
        )


@dataclass(frozen=True)
class Look:
    """How one image is rendered beyond its exposure (domain randomisation).

    The defaults are the phantom's first look (generator 1.0): linear log response, the window
    from soft tissue to bone so that air is black, detector blur only, quantum noise only.
    Each real-looking value is drawn from the range given in :meth:`sample`.
    """

    realism: float = 0.0  #: 0 the clean look … 1 a scanned film's
    #: unsharpness (Gaussian sigma, mm) added to the detector's: screen, film, scanner
    extra_blur_mm: float = 0.0
    scatter: float = 0.0  #: scatter-to-primary ratio over the open field (no grid)
    scatter_mm: float = 15.0  #: its spread (Gaussian sigma)
    #: 0 the linear log response … 1 a film's characteristic curve, which runs into its
    #: shoulder (the film's least density) where the bone stops most of the beam
    tone: float = 0.0
    tone_scale: float = 2.0  #: log signal over which the curve bends (small: bone squeezed)
    #: display grey of the open beam (film base and fog, or a window that includes the air);
    #: 0 leaves the anatomy window, air black
    fog: float = 0.0
    #: window above (or, negative, below) the densest anatomy, as a share of its range
    headroom: float = 0.0
    #: film grain: its spread, the same at every grey level, as a share of a finger's
    #: air-to-bone signal; clumps of about three pixels (0.3–0.6 mm)
    grain: float = 0.0
    #: slow non-uniformity of film or scanner (a share of the same range), across the rows and
    #: across the columns, with the phases of its two waves each way
    shading: float = 0.0
    shading_phases: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)

    @classmethod
    def sample(cls, rng: np.random.Generator, realism: float | None = None) -> Look:
        """One image's look: about 30 % near the clean look, the rest towards a scanned film
        (see :func:`~.render.mixer`); ``realism`` pins it."""
        t, lerp = mixer(rng, realism)
        a, b, c, d = (float(p) for p in rng.uniform(0.0, 2.0 * np.pi, 4))
        return cls(
            realism=round(t, 3),
            extra_blur_mm=lerp(0.0, 0.03, 0.12),
            scatter=lerp(0.0, 0.04, 0.2),
            scatter_mm=lerp(15.0, 8.0, 25.0),
            tone=lerp(0.0, 0.4, 0.9),
            tone_scale=lerp(2.0, 2.5, 4.5),
            fog=lerp(0.0, 0.2, 0.36),
            headroom=lerp(0.0, -0.25, 0.0),
            grain=lerp(0.0, 0.01, 0.025),
            shading=lerp(0.0, 0.0, 0.06),
            shading_phases=(a, b, c, d),
        )


def draw_marker(
    attenuation: np.ndarray, spacing_mm: float, letter: str, corner_mm: tuple[float, float]
) -> None:
    """Burn a lead letter (about 12 mm high) with its top-left corner at ``corner_mm``."""
    height_px = 12.0 / spacing_mm
    scale = height_px / 22.0  # FONT_HERSHEY_SIMPLEX capitals are ~22 px high at scale 1
    thickness = max(round(1.6 / spacing_mm), 1)
    x, y = int(corner_mm[0] / spacing_mm), int(corner_mm[1] / spacing_mm + height_px)
    mask = np.zeros(attenuation.shape, np.uint8)
    cv2.putText(mask, letter, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, 255, thickness, cv2.LINE_AA)
    attenuation += mask.astype(np.float32) * (LEAD_ATTENUATION / 255.0)


def scatter_field(
    tissue: np.ndarray, shape: tuple[int, int], spacing_mm: float, look: Look, step: int
) -> np.ndarray | None:
    """Relative scattered intensity (a share of the open beam) over an image of ``shape``, or
    None without scatter. ``tissue`` is the soft-tissue attenuation sampled every ``step``
    pixels: scatter comes from the bulk of the hand, and leaving the bones out keeps what an
    erosion changes inside its joint.
    """
    if look.scatter <= 0:
        return None
    rows, columns = shape
    # scatter arises where the beam meets tissue, more of it in thicker tissue
    source = (1.0 - np.exp(-tissue)).astype(np.float32)
    spread = cv2.GaussianBlur(source, (0, 0), look.scatter_mm / (spacing_mm * step))
    return np.asarray(
        cv2.resize(
            spread * np.float32(look.scatter), (columns, rows), interpolation=cv2.INTER_LINEAR
        )
    )


def expose(
    attenuation: np.ndarray,
    spacing_mm: float,
    exposure: Exposure,
    rng: np.random.Generator,
    noise: bool = True,
    look: Look | None = None,
    scatter: np.ndarray | None = None,
) -> np.ndarray:
    """Log signal ``-ln(I / I0)`` of the detector, float32: about the attenuation, plus noise.

    ``scatter`` (from :func:`scatter_field`) adds to the intensity in the open beam; ``look``
    adds its unsharpness to the detector's and its shading (grain comes later, with
    :func:`add_grain`).
    """
    look = look or Look()
    rows, columns = attenuation.shape
    intensity = np.exp(-attenuation)
    if scatter is not None:
        intensity += scatter
    heel = 1.0 + exposure.heel * (np.arange(rows, dtype=np.float32) / rows - 0.5)
    if look.shading > 0:
        down, across = _shading(look, rows, columns)
        intensity *= (heel * down)[:, None]
        intensity *= across[None, :]
    else:
        intensity *= heel[:, None]
    if exposure.collimation_mm is not None:
        left, top, right, bottom = (round(c / spacing_mm) for c in exposure.collimation_mm)
        open_beam = np.zeros(attenuation.shape, bool)
        open_beam[max(top, 0) : max(bottom, 0), max(left, 0) : max(right, 0)] = True
        intensity[~open_beam] = exposure.scatter
    quanta = exposure.dose * (spacing_mm / 0.1) ** 2
    counts = intensity * np.float32(quanta)
    sigma = float(np.hypot(exposure.blur_mm, look.extra_blur_mm)) / spacing_mm
    if noise:
        counts += np.sqrt(counts) * rng.standard_normal(counts.shape, dtype=np.float32)
    counts = cv2.GaussianBlur(counts, (0, 0), sigma)
    np.maximum(counts, 0.5, out=counts)
    signal = -np.log(counts / np.float32(quanta))
    return np.asarray(signal, dtype=np.float32)


@dataclass(frozen=True)
class Quantisation:
    bits_stored: int
    offset: float
    gain: float

    @property
    def maximum(self) -> int:
        return (1 << self.bits_stored) - 1

    def stored(self, signal: np.ndarray, inverted: bool) -> np.ndarray:
        """Stored values; ``inverted`` for MONOCHROME1 (high values dark)."""
        values = np.clip(self.offset + self.gain * signal, 0, self.maximum)
        if inverted:
            values = self.maximum - values
        return np.rint(values).astype(np.uint16)

    def value_of(self, signal: float, inverted: bool) -> float:
        v = self.offset + self.gain * signal
        return self.maximum - v if inverted else v

    @classmethod
    def sample(cls, rng: np.random.Generator, bits_stored: int) -> Quantisation:
        top = (1 << bits_stored) - 1
        return cls(
            bits_stored=bits_stored,
            offset=float(rng.uniform(0.02, 0.08)) * top,
            gain=float(rng.uniform(0.8, 0.9)) * top / 4.2,
        )


def anatomy_window(
    signal: np.ndarray, attenuation: np.ndarray, step: int = 4
) -> tuple[float, float]:
    """A window (low, high) in signal units from soft tissue to dense bone, as a CR reader's
    exposure recognition would choose it."""
    s = signal[::step, ::step]
    a = attenuation[::step, ::step]
    tissue = s[(a > 0.15) & (a < 3.5)]
    if tissue.size < 100:
        tissue = s.ravel()
    lo = float(np.percentile(tissue, 1.0))
    hi = float(np.percentile(tissue, 99.8))
    return lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo)


def _shading(look: Look, rows: int, columns: int) -> tuple[np.ndarray, np.ndarray]:
    """Intensity factors down the rows and across the columns for ``look.shading``: two slow
    waves each way, in the log signal a share ``shading`` of a finger's air-to-bone range."""
    amplitude = look.shading * NOMINAL_BONE / 1.5
    p = look.shading_phases

    def wave(n: int, a: float, b: float) -> np.ndarray:
        x = np.linspace(0.0, np.pi, n, dtype=np.float32)
        return np.asarray(np.exp(-amplitude * (np.cos(x + a) + 0.5 * np.cos(2.0 * x + b))))

    return wave(rows, p[0], p[1]), wave(columns, p[2], p[3])


def tone_curve(signal: np.ndarray, look: Look) -> np.ndarray:
    """Presentation value of a log signal: the linear log response blended with a film's
    characteristic curve, ``S (1 - exp(-signal / S))``: as steep as the linear response from
    air to soft tissue, bending over through the bone, so that soft tissue shows bright and bone
    only moderately brighter. Monotonic, so bone stays bright."""
    if look.tone <= 0:
        return signal
    scale = np.float32(look.tone_scale)
    tone = np.float32(look.tone)
    out = np.multiply(signal, np.float32(-1.0) / scale, dtype=np.float32)
    np.exp(out, out=out)  # then (1 - tone) s + tone S (1 - exp(-s / S)), in place
    out *= -tone * scale
    out += tone * scale
    out += np.float32(1.0 - look.tone) * signal
    return out


def open_beam_level(
    tissue: np.ndarray,
    spacing_mm: float,
    exposure: Exposure,
    look: Look,
    scatter: np.ndarray | None,
    step: int = 4,
) -> float | None:
    """Presentation value of the open beam (air inside the collimation): the median of its
    noise-free signal, or None where there is too little air.

    Taken from the exposure alone (heel effect, scatter) and ``tissue`` (the soft-tissue
    attenuation sampled every ``step`` pixels), never from the image's pixels, so that it does
    not move when a bone or an erosion changes.
    """
    rows, columns = tissue.shape
    air = tissue < 0.02
    if exposure.collimation_mm is not None:
        left, top, right, bottom = (round(c / (spacing_mm * step)) for c in exposure.collimation_mm)
        inside = np.zeros(air.shape, bool)
        inside[max(top, 0) : max(bottom, 0), max(left, 0) : max(right, 0)] = True
        air &= inside
    if air.sum() < 100:
        return None
    full_rows = rows * step
    heel = 1.0 + exposure.heel * (np.arange(0, full_rows, step, dtype=np.float32) / full_rows - 0.5)
    intensity = np.broadcast_to(heel[:rows, None], air.shape).astype(np.float32)
    if scatter is not None:
        intensity = np.asarray(
            intensity * (1.0 + scatter[::step, ::step][:rows, :columns]), dtype=np.float32
        )
    signal = -np.log(intensity[air])
    return float(tone_curve(np.array([np.median(signal)], np.float32), look)[0])


def presentation_window(
    presented: np.ndarray,
    attenuation: np.ndarray,
    look: Look,
    air: float | None,
    step: int = 4,
) -> tuple[float, float]:
    """The window (low, high) in presentation units: the anatomy window of
    :func:`anatomy_window`, or, with ``look.fog``, one that reaches down past the open beam
    (at ``air``) so that air shows grey at ``fog``, and up past the bone by ``headroom``."""
    lo, hi = anatomy_window(presented, attenuation, step)
    if look.fog <= 0 or air is None:
        return lo, hi
    hi = hi + look.headroom * max(hi - air, 1e-3)
    return air - look.fog / (1.0 - look.fog) * (hi - air), hi


def add_grain(presented: np.ndarray, look: Look, rng: np.random.Generator) -> None:
    """Film grain in place: noise of the same spread at every grey level (unlike quantum
    noise, which grows where bone stops the beam), in clumps of about three pixels — drawn at
    a third of the resolution and brought up, which also costs a ninth of a full draw."""
    if look.grain <= 0:
        return
    rows, columns = presented.shape
    coarse = rng.standard_normal(((rows + 2) // 3, (columns + 2) // 3), dtype=np.float32)
    grain = cv2.resize(coarse, (columns, rows), interpolation=cv2.INTER_LINEAR)
    spread = float(grain[::7, ::7].std())
    span = float(tone_curve(np.array([NOMINAL_BONE], np.float32), look)[0])
    presented += grain * np.float32(look.grain * span / max(spread, 1e-6))
