"""Projection of bones and soft tissue into an X-ray attenuation map.

Each bone is drawn in its own frame — ``u`` along the axis from the base (u = 0) to the head
(u = length), ``v`` across it, both in mm — as the line integral of attenuation through a hollow
tube (or an ellipsoid for the carpals): a dense cortical shell, trabecular bone at the ends and
marrow in the shaft. The local picture is then warped into the image with one affine warp, so
the cost follows the bone's area and trabeculae keep running along the bone.

How bones and soft tissue look beyond their geometry — waisted shafts, a cortex that fades
into the marrow, coarse or fine trabeculae, bone density against soft tissue — is a
:class:`TissueStyle`, drawn per patient over a range that holds both the phantom's first, clean
look and the look of real radiographs (domain randomisation). None of it moves a joint
surface, so the joints' truth geometry stays exact.

Attenuation coefficients are per mm at the effective energy of a ~50 kVp hand exposure.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np

MU_CORTEX = 0.26
MU_TRABECULAR = 0.085
MU_MARROW = 0.045
MU_SOFT = 0.036
TEXTURE_MM = 0.1  #: size of one texel of the trabecular texture tile

EndKind = Literal["convex", "concave", "flat", "tuft", "radius"]


@dataclass(frozen=True)
class Defect:
    """An erosion: an elliptic loss of bone in the bone's (u, v) frame, mm."""

    u: float
    v: float
    ru: float
    rv: float
    depth: float  #: fraction of the bone's attenuation removed at the centre


@dataclass(frozen=True)
class End:
    """Shape of a bone end: how far its surface lies into the bone, as a function of ``v``."""

    kind: EndKind
    radius: float = 0.0  #: circle radius of a convex head or concave base, mm
    tilt: float = 0.0  #: slope of the surface across the bone (focal narrowing, inclination)
    shift: float = 0.0  #: constant displacement of the surface into the bone, mm
    #: focal narrowing: the surface comes this much (mm) closer to the joint at one margin,
    #: fading to nothing at mid-width; the sign says which margin (+v or -v)
    focal: float = 0.0
    collapse: float = 0.0  #: depth of a collapsed (erosion 5) surface, mm
    plate: bool = True  #: draw the subchondral plate
    fade: bool = True  #: rounded end: density falls towards the surface
    phases: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)  #: irregularity of a collapsed surface

    def depth_into_bone(self, v: np.ndarray, half_width: float) -> np.ndarray:
        """Distance (mm) from the end's nominal plane to its surface, into the bone."""
        if self.kind == "convex":
            r = max(self.radius, half_width * 1.01)
            d = r - np.sqrt(np.maximum(r * r - v * v, 0.0))
        elif self.kind == "concave":
            r = max(self.radius, half_width * 1.01)
            d = np.sqrt(np.maximum(r * r - v * v, 0.0)) - r
        elif self.kind == "tuft":
            r = half_width * 1.1
            d = r - np.sqrt(np.maximum(r * r - v * v, 0.0))
        elif self.kind == "radius":
            d = 0.6 * (v / half_width) ** 2 * half_width * 0.15
        else:
            d = 0.08 * half_width * np.cos(3.0 * v / half_width) - 0.08 * half_width
        d = d + self.tilt * v + self.shift
        if self.focal:
            reach = np.clip(np.sign(self.focal) * v / half_width, 0.0, 1.0)
            d = d - abs(self.focal) * reach**1.5
        if self.collapse > 0:
            x = v / max(half_width, 1e-3)
            rough = sum(
                np.sin((k + 2.0) * 2.1 * x + p) / (k + 1.5) for k, p in enumerate(self.phases)
            )
            d = np.maximum(d, self.collapse * (0.8 + 0.25 * rough))
        return np.asarray(d)


@dataclass(frozen=True)
class TubeBone:
    """A long bone (metacarpal, phalanx, radius, ulna) in the image frame, mm."""

    name: str
    origin: tuple[float, float]  #: centre of the base's nominal plane
    axis: tuple[float, float]  #: unit vector base → head
    length: float
    width_base: float
    width_shaft: float
    width_head: float
    cortex: float  #: cortical thickness at mid-shaft
    base: End
    head: End
    density: float = 1.0  #: patient bone-density factor
    osteopenia_base: float = 0.0  #: periarticular loss at the base, 0–1
    osteopenia_head: float = 0.0
    defects: tuple[Defect, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class EllipsoidBone:
    """A carpal bone: an ellipsoid with a cortical shell, in the image frame, mm."""

    name: str
    center: tuple[float, float]
    axis: tuple[float, float]  #: unit vector of the first semi-axis
    a: float
    b: float
    cortex: float = 0.5
    density: float = 1.0


def draw_realism(rng: np.random.Generator) -> float:
    """How real-looking one image (or patient) is to be: 0 the phantom's first, clean look, 1 a
    scanned film's. About 30 % stay near the clean look, the rest lean towards real."""
    if rng.random() < 0.3:
        return float(rng.uniform(0.0, 0.2))
    return float(rng.uniform(0.45, 1.0))


def mixer(
    rng: np.random.Generator, realism: float | None
) -> tuple[float, Callable[[float, float, float], float]]:
    """The realism of one draw (``realism``, or :func:`draw_realism`'s) and a function that
    places a parameter between its clean value and a real-looking one from a range:
    ``mix(clean, lo, hi)``. A drawn realism gives each parameter a little independent scatter
    around it, so that parameters do not move in lock step; a given one is followed exactly
    (0: every parameter at its clean value)."""
    t = draw_realism(rng) if realism is None else float(np.clip(realism, 0.0, 1.0))
    jitter = realism is None

    def mix(clean: float, lo: float, hi: float) -> float:
        real = float(rng.uniform(lo, hi))
        share = float(np.clip(t + rng.normal(0.0, 0.15), 0.0, 1.0)) if jitter else t
        return clean + (real - clean) * share

    return t, mix


@dataclass(frozen=True)
class TissueStyle:
    """How one patient's bones and soft tissue look, apart from their geometry.

    The defaults are the phantom's first look (generator 1.0): straight shafts with a crisp,
    even cortex, fine trabeculae, adult bone density and thin soft tissue.
    """

    realism: float = 0.0
    #: mid-shaft narrowing as a share of the shaft's width; the ends keep their widths
    waist: float = 0.0
    #: how far (share of the bone's length) the ends flare into the shaft
    flare: float = 0.2
    #: sideways bow of a shaft at its middle, mm (each bone its own direction and share)
    bow_mm: float = 0.0
    cortex_scale: float = 1.0  #: cortical thickness factor (thin in osteoporosis)
    #: palmar and dorsal cortex against the sides' (a shaft's cross section is no ring of even
    #: thickness: the sides are thicker, so the medulla shows darker between two bright lines)
    cortex_front: float = 1.0
    #: the endosteal surface spread over this many mm: a cortex that fades into the marrow
    endosteal_mm: float = 0.0
    #: softening (Gaussian sigma, mm) of a shaft's sides across the bone only: real cross
    #: sections are not circles, so their projected sides rise gently; the joint surfaces,
    #: which run across the bone, keep their sharpness
    side_soft_mm: float = 0.0
    plate_gain: float = 1.0  #: subchondral plates: how bright a line they draw
    texture_gain: float = 0.45  #: trabecular contrast
    texture_cycles_per_mm: float = 1.6  #: trabeculae: 1.6 fine … 0.8 coarse
    texture_stretch: float = 0.45  #: how much longer than wide the texture is along the bone
    mottle: float = 0.0  #: weight of a coarse (~3 mm) mottle in the texture
    #: 0 blotchy noise … 1 a network of thin bright trabeculae (ridges of the same noise)
    network: float = 0.0
    bone_density: float = 1.0  #: all bone against soft tissue
    soft_tissue: float = 1.0  #: soft-tissue density factor
    #: how far in from the skin soft tissue keeps thickening, mm: a deeper palm, and fingers
    #: that round off gradually rather than reaching a plateau
    tissue_depth_mm: float = 7.5
    outline_round_mm: float = 0.0  #: rounding of the skin outline's corners, mm

    @classmethod
    def sample(cls, rng: np.random.Generator, realism: float | None = None) -> TissueStyle:
        """A patient's style, from the clean look to a real one (see :func:`mixer`)."""
        t, lerp = mixer(rng, realism)
        return cls(
            realism=round(t, 3),
            waist=lerp(0.0, 0.12, 0.28),
            flare=lerp(0.2, 0.28, 0.4),
            bow_mm=lerp(0.0, 0.2, 0.6),
            cortex_scale=lerp(1.0, 0.75, 1.05),
            cortex_front=lerp(1.0, 0.35, 0.75),
            endosteal_mm=lerp(0.0, 0.15, 0.45),
            side_soft_mm=lerp(0.0, 0.2, 0.6),
            plate_gain=lerp(1.0, 1.0, 1.8),
            texture_gain=lerp(0.45, 0.7, 0.9),
            texture_cycles_per_mm=lerp(1.6, 0.8, 1.3),
            texture_stretch=lerp(0.45, 0.25, 0.5),
            mottle=lerp(0.0, 0.0, 0.3),
            network=lerp(0.0, 0.4, 0.9),
            bone_density=lerp(1.0, 0.75, 0.95),
            soft_tissue=lerp(1.0, 1.0, 1.15),
            tissue_depth_mm=lerp(7.5, 7.5, 9.0),
            outline_round_mm=lerp(0.0, 0.5, 1.5),
        )


class Canvas:
    """The attenuation map of one image and the trabecular texture its bones share."""

    def __init__(
        self,
        rows: int,
        columns: int,
        spacing_mm: float,
        texture: np.ndarray,
        style: TissueStyle | None = None,
    ) -> None:
        self.attenuation = np.zeros((rows, columns), np.float32)
        self.spacing = spacing_mm
        self.texture = texture
        self.style = style or TissueStyle()

    # -- drawing -------------------------------------------------------------------------

    def draw_tube(self, bone: TubeBone, erosions: bool = True) -> None:
        s, st, length = self.spacing, self.style, bone.length
        u, v, into_base, into_head = self._tube_grid(bone)
        radius, cortex, mu_inner, middle = self._tube_profile(bone, u)

        uu, vv = u[:, None], v[None, :]
        # the shaft bows sideways (zero at the ends, so the joints stay where they are)
        vs = vv - (st.bow_mm * _bone_share(bone.name) * middle)[:, None] if st.bow_mm else vv
        outer = radius[:, None]
        inner = np.maximum(outer - cortex[:, None], 0.05)
        t_out = 2.0 * np.sqrt(np.maximum(outer * outer - vs * vs, 0.0))
        # the medulla's depth: the palmar and dorsal cortex may be thinner than the sides'
        deep = np.maximum(outer - st.cortex_front * cortex[:, None], 0.05) / inner
        t_in = _chord(inner, vs) * deep
        # soft sides (real cross sections are no circles), and an endosteal surface spread
        # over a band: a cortex that fades into the medulla
        t_out = _soften(t_out, st.side_soft_mm, s)
        t_in = _soften(t_in, float(np.hypot(st.side_soft_mm, st.endosteal_mm)), s)
        texture = self._texture(u, v)
        att = MU_CORTEX * (t_out - t_in) + mu_inner[:, None] * t_in * (
            1.0 + st.texture_gain * texture
        )

        # The two ends: clip, fade the rounded ends, add the subchondral plates.
        to_base, to_head = uu - into_base[None, :], (length - into_head)[None, :] - uu
        inside = (to_base >= 0) & (to_head >= 0)
        for end, dist in ((bone.base, to_base), (bone.head, to_head)):
            if end.fade:
                att *= np.sqrt(np.clip(dist / (0.35 * outer + 1e-3), 0.0, 1.0))
            if end.plate:
                plate = np.clip(1.0 - np.abs(dist - 0.35) / 0.35, 0.0, 1.0)
                att += (
                    MU_CORTEX
                    * 1.1
                    * st.plate_gain
                    * plate
                    * (t_out > 0)
                    * np.sqrt(np.clip(1 - (vs / outer) ** 2, 0, 1))
                )
        att = np.where(inside, att, 0.0).astype(np.float32) * (bone.density * st.bone_density)
        if erosions and bone.defects:
            att = _eroded(att, bone.defects, uu, vv)
        self._warp_add(self.attenuation, att, bone.origin, bone.axis, u, v)

    def _tube_grid(self, bone: TubeBone) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The bone's sample grid — along it (u) and across it (v), mm — with how far each end
        reaches into the bone at each v."""
        s = self.spacing
        half_max = (
            0.5 * max(bone.width_base, bone.width_shaft, bone.width_head)
            + 0.5
            + 3.0 * self.style.side_soft_mm
        )
        v = np.arange(-half_max, half_max + s, s, dtype=np.float32)
        half_base, half_head = 0.5 * bone.width_base, 0.5 * bone.width_head
        into_base = bone.base.depth_into_bone(v, half_base)
        into_head = bone.head.depth_into_bone(v, half_head)
        u_lo = min(0.0, float(into_base.min())) - 0.5
        u_hi = bone.length - min(0.0, float(into_head.min())) + 0.5
        u = np.arange(u_lo, u_hi + s, s, dtype=np.float32)
        return u, v, into_base, into_head

    def _tube_profile(
        self, bone: TubeBone, u: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Along the bone: its outer radius, cortical thickness, the medulla's attenuation and
        how far each u is from the ends towards the middle (0–1–0)."""
        st, length = self.style, bone.length
        lb = lh = st.flare * length
        near_base = np.exp(-((u / lb) ** 2))
        near_head = np.exp(-(((length - u) / lh) ** 2))
        # a waisted shaft: narrowest at its middle, flaring into the ends, which keep their width
        middle = np.sin(np.pi * np.clip(u / length, 0.0, 1.0))
        shaft = bone.width_shaft * (1.0 - st.waist * middle**2) if st.waist else bone.width_shaft
        radius = 0.5 * (
            shaft + (bone.width_base - shaft) * near_base + (bone.width_head - shaft) * near_head
        )
        endness = np.maximum(near_base, near_head)
        loss = 1.0 - bone.osteopenia_base * np.exp(-((u / (0.12 * length)) ** 2))
        loss = loss - bone.osteopenia_head * np.exp(-(((length - u) / (0.12 * length)) ** 2))
        cortex = bone.cortex * st.cortex_scale * (1.0 - 0.75 * endness) * (1.0 - 0.4 * (1.0 - loss))
        mu_inner = (MU_MARROW + (MU_TRABECULAR - MU_MARROW) * endness) * loss
        return radius, cortex, mu_inner, middle

    def draw_ellipsoid(self, bone: EllipsoidBone) -> None:
        s = self.spacing
        u = np.arange(-bone.a - 0.5, bone.a + 0.5 + s, s, dtype=np.float32)
        v = np.arange(-bone.b - 0.5, bone.b + 0.5 + s, s, dtype=np.float32)
        depth = 0.6 * (bone.a + bone.b)  # carpals are flatter front to back
        q = (u[:, None] / bone.a) ** 2 + (v[None, :] / bone.b) ** 2
        k = max(1.0 - bone.cortex / min(bone.a, bone.b), 0.1)
        t_out = depth * np.sqrt(np.maximum(1.0 - q, 0.0))
        t_in = k * depth * np.sqrt(np.maximum(1.0 - q / (k * k), 0.0))
        texture = self._texture(u, v)
        st = self.style
        att = MU_CORTEX * 0.7 * st.cortex_scale * (t_out - t_in) + MU_TRABECULAR * t_in * (
            1.0 + st.texture_gain * texture
        )
        density = bone.density * st.bone_density
        self._warp_add(
            self.attenuation, att.astype(np.float32) * density, bone.center, bone.axis, u, v
        )

    def add_soft_tissue(self, thickness_mm: np.ndarray) -> None:
        self.attenuation += (MU_SOFT * self.style.soft_tissue) * thickness_mm

    # -- helpers -------------------------------------------------------------------------

    def _texture(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        tile = self.texture
        iu = np.floor(u / TEXTURE_MM).astype(np.int64) % tile.shape[0]
        iv = np.floor(v / TEXTURE_MM).astype(np.int64) % tile.shape[1]
        return np.asarray(tile[iu[:, None], iv[None, :]])

    def _warp_add(
        self,
        target: np.ndarray,
        local: np.ndarray,
        origin: tuple[float, float],
        axis: tuple[float, float],
        u: np.ndarray,
        v: np.ndarray,
    ) -> None:
        """Add ``local`` (rows = u, columns = v) into ``target`` at the bone's pose."""
        s = self.spacing
        ax, ay = axis
        nx, ny = -ay, ax  # v runs along the axis turned by +90°
        u0, v0 = float(u[0]), float(v[0])
        # local (column j, row i) → image pixel (x, y); pixel centres sit at integer x, y.
        m = np.array(
            [
                [nx, ax, (origin[0] + u0 * ax + v0 * nx) / s],
                [ny, ay, (origin[1] + u0 * ay + v0 * ny) / s],
            ],
            dtype=np.float64,
        )
        h, w = local.shape
        corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], dtype=np.float64)
        xy = corners @ m.T
        x0 = max(int(np.floor(xy[:, 0].min())) - 1, 0)
        y0 = max(int(np.floor(xy[:, 1].min())) - 1, 0)
        x1 = min(int(np.ceil(xy[:, 0].max())) + 2, target.shape[1])
        y1 = min(int(np.ceil(xy[:, 1].max())) + 2, target.shape[0])
        if x1 <= x0 or y1 <= y0:
            return
        m[:, 2] -= (x0, y0)
        patch = cv2.warpAffine(
            local,
            m,
            (x1 - x0, y1 - y0),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0.0,
        )
        target[y0:y1, x0:x1] += patch


def _chord(radius: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Path length (mm) through a circle of ``radius`` at distance ``v`` from its centre."""
    return np.asarray(2.0 * np.sqrt(np.maximum(radius * radius - v * v, 0.0)))


def _bone_share(name: str) -> float:
    """A fixed number in [-1, 1] per bone name: which way and how much its shaft bows."""
    return (zlib.crc32(name.encode()) % 2001) / 1000.0 - 1.0


def _soften(t: np.ndarray, sigma_mm: float, spacing: float) -> np.ndarray:
    """Smoothed across the bone (v, the columns) only: the trabeculae and the joint surfaces,
    which run across it, stay sharp."""
    if sigma_mm <= 0:
        return t
    sigma = sigma_mm / spacing
    size = (2 * int(3.0 * sigma) + 1, 1)
    return np.asarray(cv2.GaussianBlur(t.astype(np.float32), size, sigma))


def _eroded(
    att: np.ndarray, defects: tuple[Defect, ...], uu: np.ndarray, vv: np.ndarray
) -> np.ndarray:
    """The bone's attenuation with what each erosion takes away taken out."""
    keep = np.ones_like(att)
    for d in defects:
        r2 = ((uu - d.u) / d.ru) ** 2 + ((vv - d.v) / d.rv) ** 2
        keep *= 1.0 - d.depth * np.clip(1.5 - r2, 0.0, 1.0) ** 0.7
    return att * keep


def trabecular_texture(
    rng: np.random.Generator, size: int = 256, style: TissueStyle | None = None
) -> np.ndarray:
    """A tileable band-pass noise, stretched along the bone axis, zero mean, unit spread."""
    style = style or TissueStyle()
    noise = rng.standard_normal((size, size))
    fu = np.fft.fftfreq(size)[:, None] / TEXTURE_MM  # cycles per mm along the axis
    fv = np.fft.fftfreq(size)[None, :] / TEXTURE_MM
    # trabeculae ~0.2–0.4 mm thick (fine) to ~0.5–1 mm (coarse), a few mm long along the axis
    f = np.sqrt((fu * style.texture_stretch) ** 2 + fv**2)
    centre = style.texture_cycles_per_mm
    band = np.exp(-(((f - centre) / (0.5 * centre)) ** 2))
    if style.mottle > 0:  # coarse mottling of the trabecular bone, ~3 mm blotches
        g = np.sqrt(fu**2 + fv**2)
        band = band + style.mottle * np.exp(-(((g - 0.3) / 0.15) ** 2))
    field = np.real(np.fft.ifft2(np.fft.fft2(noise) * band))
    field = (field - field.mean()) / (field.std() + 1e-9)
    texture = np.tanh(field)
    if style.network > 0:
        # ridges where the noise crosses zero: thin connected struts, as trabeculae look
        ridges = np.exp(-4.0 * field**2)
        ridges = (ridges - ridges.mean()) / (ridges.std() + 1e-9)
        texture = (1.0 - style.network) * texture + style.network * np.tanh(ridges)
    return texture.astype(np.float32)
