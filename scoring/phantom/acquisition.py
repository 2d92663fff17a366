"""From attenuation to stored pixel values, as a CR plate or DX detector would record them.

Exposure with a heel-effect gradient and collimation, quantum (Poisson) noise, detector blur,
then the logarithmic response of a "for presentation" radiograph, scaled into the stored bit
depth. A lead L/R marker is part of the exposure, like the one the radiographer puts on the
cassette.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

LEAD_ATTENUATION = 6.0  #: a 1 mm lead letter stops nearly everything


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


def expose(
    attenuation: np.ndarray,
    spacing_mm: float,
    exposure: Exposure,
    rng: np.random.Generator,
    noise: bool = True,
) -> np.ndarray:
    """Log signal ``-ln(I / I0)`` of the detector, float32: about the attenuation, plus noise."""
    rows, _ = attenuation.shape
    intensity = np.exp(-attenuation)
    heel = 1.0 + exposure.heel * (np.arange(rows, dtype=np.float32) / rows - 0.5)
    intensity *= heel[:, None]
    if exposure.collimation_mm is not None:
        left, top, right, bottom = (round(c / spacing_mm) for c in exposure.collimation_mm)
        open_beam = np.zeros(attenuation.shape, bool)
        open_beam[max(top, 0) : max(bottom, 0), max(left, 0) : max(right, 0)] = True
        intensity[~open_beam] = exposure.scatter
    quanta = exposure.dose * (spacing_mm / 0.1) ** 2
    counts = intensity * np.float32(quanta)
    if noise:
        counts += np.sqrt(counts) * rng.standard_normal(counts.shape, dtype=np.float32)
    sigma = exposure.blur_mm / spacing_mm
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
