"""A beating-heart phantom that looks like a short-axis bSSFP cine MRI stack (ACDC-like).

Each subject is a set of sampled parameters (`CardiacSubject`); `render_cardiac` turns them into
an int16 4D sequence plus ACDC-style labels (1 RV cavity, 2 LV myocardium, 3 LV cavity). Shapes
are analytic signed distances in a heart frame (long axis = apex → base), so partial volume comes
from soft edges in-plane and sub-slice sampling through the thick slices.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sadm.phantoms.fields import (
    ellipse_distance,
    random_rotation,
    rician,
    smooth_noise,
    soft_inside,
    subject_rngs,
)

RV_LABEL, MYO_LABEL, LV_LABEL = 1, 2, 3  # ACDC ground-truth values


def _range(value, name: str, integer: bool = False) -> tuple:
    """Options accept a number or a (low, high) range; return the range, checked."""
    low, high = (value, value) if np.isscalar(value) else tuple(value)
    if low > high:
        raise ValueError(f"{name} must be a number or (low, high) with low <= high; got {value!r}")
    return (int(low), int(high)) if integer else (float(low), float(high))


@dataclass(frozen=True)
class CardiacOptions:
    """What varies between data sets (grid, cycle sampling, physiology ranges)."""

    shape: tuple[int, int, int] = (12, 128, 128)  # (slices k, rows j, columns i) of the native grid
    frames: tuple[int, int] = (20, 30)  # NbFrame per cycle, sampled per subject (inclusive)
    pixel_mm: tuple[float, float] = (1.4, 1.7)  # in-plane spacing; slice thickness follows the heart length
    ejection_fraction: tuple[float, float] = (0.5, 0.7)  # LV (normal group)
    es_fraction: tuple[float, float] = (0.35, 0.45)  # ES position in the cycle
    sub_slices: int = 7  # samples through each slice thickness (through-plane partial volume)

    def __post_init__(self) -> None:
        shape = tuple(int(n) for n in self.shape)
        if len(shape) != 3 or shape[0] < 4 or min(shape[1:]) < 32:
            raise ValueError(f"shape must be (slices >= 4, rows >= 32, columns >= 32); got {self.shape!r}")
        object.__setattr__(self, "shape", shape)
        frames = _range(self.frames, "frames", integer=True)
        if frames[0] < 4:
            raise ValueError(f"frames must be >= 4 (a cycle needs ED, systole, ES and diastole); got {self.frames!r}")
        object.__setattr__(self, "frames", frames)
        object.__setattr__(self, "pixel_mm", _range(self.pixel_mm, "pixel_mm"))
        ef = _range(self.ejection_fraction, "ejection_fraction")
        if not (ef[0] >= 0.05 and ef[1] <= 0.85):
            raise ValueError(f"ejection_fraction must lie in [0.05, 0.85]; got {self.ejection_fraction!r}")
        object.__setattr__(self, "ejection_fraction", ef)
        es = _range(self.es_fraction, "es_fraction")
        if not (es[0] >= 0.15 and es[1] <= 0.6):
            raise ValueError(f"es_fraction must lie in [0.15, 0.6] of the cycle; got {self.es_fraction!r}")
        object.__setattr__(self, "es_fraction", es)
        if int(self.sub_slices) < 1:
            raise ValueError(f"sub_slices must be >= 1; got {self.sub_slices!r}")


@dataclass(frozen=True)
class CardiacSubject:
    """Sampled anatomy, physiology and acquisition of one subject (lengths in mm, angles in rad)."""

    n_frames: int
    es_index: int  # 0-based; ED is frame 0
    pixel_mm: float
    slice_mm: float
    cycle_ms: float
    lv_radius: float  # endocardial radius at the base, ED
    wall: float  # LV wall thickness at ED
    length: float  # epicardial apex → base plane, ED
    apex_wall: float
    ellipticity: float
    harmonics: tuple[tuple[float, float], ...]  # (amplitude, phase) of in-plane shape modes 2, 3, ...
    ejection_fraction: float
    rv_ejection_fraction: float
    long_shortening: float  # base descent as a fraction of the length at ES
    twist: float  # apex-vs-base rotation at ES
    motion_mm: tuple[float, float, float]  # translation of the heart at ES
    centre: tuple[float, float]  # LV axis position in the image plane, mm from the grid centre
    axis_tilt: float
    axis_azimuth: float
    roll: float  # in-plane orientation of the heart (RV direction)
    rv_offset: float  # RV ellipse centre, fraction of the local LV epicardial radius
    rv_radial: float
    rv_tangential: float
    rv_apex: float  # RV apex level, fraction of the LV length
    rv_wall: float
    papillary: tuple[tuple[float, float], ...]  # (angle from RV direction, radius mm)
    fat: tuple[float, float, float]  # pericardial fat: base thickness, extra thickness, direction
    body: tuple[float, float, float, float]  # centre x, y offset; semi-axes
    fat_layer: float
    muscle_layer: float
    lungs: tuple[tuple[float, float, float, float], ...]  # (x, y, semi-x, semi-y) relative to heart
    liver: tuple[float, float, float, float, float, float]  # centre x, y, z; semi-axes
    intensities: dict = field(default_factory=dict)  # tissue → relative bSSFP signal
    peak: float = 600.0  # int16 value of blood
    noise: float = 0.03  # noise sigma relative to blood
    bias: tuple[float, float, float] = (0.0, 0.0, 0.0)  # linear x, y and quadratic coefficients
    height_cm: float = 170.0
    weight_kg: float = 70.0
    scanner_direction: tuple[float, ...] = (1, 0, 0, 0, 1, 0, 0, 0, 1)
    scanner_centre: tuple[float, float, float] = (0.0, 0.0, 0.0)


@dataclass
class CardiacPhantom:
    """A rendered subject: frames (T, k, j, i) int16, ACDC labels (T, k, j, i) uint8 and facts
    the tests and the Info.cfg need."""

    subject: CardiacSubject
    frames: np.ndarray
    labels: np.ndarray
    lv_cavity_ml: np.ndarray  # (T,) LV cavity incl. papillary muscles (ACDC's LV), from partial-volume fractions
    myocardium_ml: np.ndarray  # (T,)
    rv_cavity_ml: np.ndarray  # (T,)
    spacing: tuple[float, float, float]  # mm along i, j, k
    origin: tuple[float, float, float]  # LPS mm of voxel (0, 0, 0)
    direction: tuple[float, ...]  # 3×3 row-major
    frame_interval_s: float

    @property
    def ed_index(self) -> int:
        return 0

    @property
    def es_index(self) -> int:
        return self.subject.es_index

    def info(self) -> dict:
        """The ACDC Info.cfg fields (ED/ES 1-based)."""
        return {
            "ED": 1,
            "ES": self.subject.es_index + 1,
            "Group": "NOR",
            "Height": round(self.subject.height_cm, 1),
            "NbFrame": self.subject.n_frames,
            "Weight": round(self.subject.weight_kg, 1),
        }


def contraction_curve(n_frames: int, es_index: int) -> np.ndarray:
    """Fraction of the ED→ES volume change at each frame: 0 at ED (frame 0), 1 at ES.

    Systole is a half-cosine; diastole has rapid filling, a slow diastasis and the atrial kick
    that returns to ED at the end of the cycle, as in a normal LV volume curve.
    """
    if not 0 < es_index < n_frames - 1:
        raise ValueError(f"es_index must lie strictly inside 1..{n_frames - 2}; got {es_index}")
    phase = np.arange(n_frames) / n_frames
    es = es_index / n_frames
    systole = 0.5 - 0.5 * np.cos(np.pi * phase / es)
    tail = (phase - es) / (1.0 - es)  # 0 at ES → 1 at the next ED
    rapid = 0.22 + 0.78 * np.exp(-((tail / 0.18) ** 2))  # early filling down to a diastasis plateau
    kick = np.clip((tail - 0.72) / 0.28, 0.0, 1.0)
    diastole = rapid * (1.0 - 0.5 * (1.0 - np.cos(np.pi * kick)))
    return np.where(phase <= es, systole, diastole).astype(np.float64)


def sample_cardiac_subject(rng: np.random.Generator, options: CardiacOptions) -> CardiacSubject:
    """Draw one subject's parameters; all randomness of the anatomy lives here."""
    n_frames = int(rng.integers(options.frames[0], options.frames[1] + 1))
    es_index = int(np.clip(round(rng.uniform(*options.es_fraction) * n_frames), 1, n_frames - 2))
    length = rng.uniform(78.0, 96.0)
    slices = options.shape[0]
    slice_mm = float(np.round(length / (slices - 1.3) * 2) / 2)  # base-to-apex coverage, ACDC style
    lv_radius = rng.uniform(22.0, 28.0)
    ef = rng.uniform(*options.ejection_fraction)
    harmonics = tuple((float(rng.uniform(0.0, 0.035)), float(rng.uniform(0, 2 * np.pi))) for _ in range(3))
    papillary_base = rng.uniform(-0.2, 0.2)
    intensities = {
        "blood": 1.0,
        "atrium": rng.uniform(0.85, 1.0),
        "aorta": rng.uniform(0.75, 0.95),
        "myocardium": rng.uniform(0.24, 0.34),
        "fat": rng.uniform(0.75, 0.95),
        "muscle": rng.uniform(0.2, 0.3),
        "tissue": rng.uniform(0.3, 0.4),
        "liver": rng.uniform(0.2, 0.28),
        "lung": rng.uniform(0.02, 0.06),
        "bone": rng.uniform(0.4, 0.55),
    }
    height = rng.normal(172.0, 9.0)
    direction = random_rotation(rng, 40.0)  # a double-oblique short-axis plane in the scanner
    return CardiacSubject(
        n_frames=n_frames,
        es_index=es_index,
        pixel_mm=float(np.round(rng.uniform(*options.pixel_mm), 4)),
        slice_mm=float(np.clip(slice_mm, 5.0, 12.0)),
        cycle_ms=float(rng.uniform(750.0, 1100.0)),
        lv_radius=lv_radius,
        wall=rng.uniform(7.5, 10.0),
        length=length,
        apex_wall=rng.uniform(5.0, 7.0),
        ellipticity=rng.uniform(-0.08, 0.08),
        harmonics=harmonics,
        ejection_fraction=ef,
        rv_ejection_fraction=float(np.clip(ef + rng.normal(-0.05, 0.04), 0.35, 0.75)),
        long_shortening=rng.uniform(0.05, 0.1),
        twist=np.deg2rad(rng.uniform(6.0, 14.0)),
        motion_mm=tuple(rng.normal(0.0, 1.5, 3)),
        centre=(rng.uniform(-8.0, 8.0) + 6.0, rng.uniform(-8.0, 8.0) - 4.0),
        axis_tilt=np.deg2rad(rng.uniform(0.0, 12.0)),
        axis_azimuth=rng.uniform(0, 2 * np.pi),
        roll=np.deg2rad(rng.uniform(-35.0, -5.0)),  # RV anterior-right of the LV (image upper left)
        rv_offset=rng.uniform(0.45, 0.55),
        rv_radial=rng.uniform(1.15, 1.35),
        rv_tangential=rng.uniform(0.95, 1.1),
        rv_apex=rng.uniform(0.12, 0.22),
        rv_wall=rng.uniform(2.5, 3.5),
        papillary=(
            (np.deg2rad(45.0) + papillary_base, rng.uniform(3.0, 4.5)),  # anterolateral
            (np.deg2rad(-60.0) + papillary_base, rng.uniform(3.0, 4.5)),  # posteromedial
        ),
        fat=(rng.uniform(0.0, 0.5), rng.uniform(1.5, 4.0), rng.uniform(0, 2 * np.pi)),
        body=(rng.uniform(-10, 10), rng.uniform(35, 50), rng.uniform(150, 175), rng.uniform(105, 125)),
        fat_layer=rng.uniform(6.0, 16.0),
        muscle_layer=rng.uniform(8.0, 14.0),
        lungs=(  # left lung beside the LV, right lung beside the RV (image right / left)
            (rng.uniform(55, 65), rng.uniform(20, 35), rng.uniform(38, 46), rng.uniform(72, 85)),
            (rng.uniform(-82, -72), rng.uniform(15, 30), rng.uniform(38, 46), rng.uniform(72, 88)),
        ),
        liver=(rng.uniform(-70, -50), rng.uniform(35, 55), rng.uniform(25, 40), 75.0, 60.0, rng.uniform(55, 70)),
        intensities=intensities,
        peak=float(rng.uniform(250.0, 500.0)),
        noise=float(rng.uniform(0.015, 0.035)),
        bias=(rng.uniform(-0.15, 0.15), rng.uniform(-0.25, 0.05), rng.uniform(-0.15, 0.05)),
        height_cm=float(height),
        weight_kg=float(np.clip(rng.normal(22.5, 3.0) * (height / 100.0) ** 2, 45.0, 130.0)),
        scanner_direction=tuple(float(x) for x in direction.ravel()),
        scanner_centre=(rng.uniform(-20, 20), rng.uniform(-60, -20), rng.uniform(-30, 30)),
    )


def _profile(x: np.ndarray, blunt: bool = False) -> np.ndarray:
    """Radius along the long axis, 0 at the apex (x = 0) → 1 at the base (x = 1).

    An ellipse quadrant, or with `blunt` a superellipse of power 3 (the RV stays wide longer);
    integer powers keep this cheap on millions of points.
    """
    x = np.clip(x, 0.0, 1.0)
    if blunt:
        return np.cbrt(1.0 - (1.0 - x) ** 3)
    return np.sqrt(x * (2.0 - x))


class _Canvas:
    """Front-to-back compositing of soft shapes: an intensity image plus label fractions."""

    def __init__(self, shape: tuple[int, ...]):
        self.intensity = np.zeros(shape, np.float32)
        self.fractions = {name: np.zeros(shape, np.float32) for name in ("rv", "myo", "lv", "papillary")}

    def paint(self, inside: np.ndarray, value: np.ndarray | float, label: str | None = None) -> None:
        keep = 1.0 - inside
        self.intensity *= keep
        self.intensity += inside * value
        for name, fraction in self.fractions.items():
            fraction *= keep
            if name == label:
                fraction += inside


def _grid(subject: CardiacSubject, options: CardiacOptions):
    """Sample-point coordinates (mm, image frame, origin at the grid centre) broadcastable to
    (slices × sub_slices, rows, columns)."""
    slices, rows, columns = options.shape
    sub = options.sub_slices
    x = ((np.arange(columns) - (columns - 1) / 2) * subject.pixel_mm).astype(np.float32)[None, None, :]
    y = ((np.arange(rows) - (rows - 1) / 2) * subject.pixel_mm).astype(np.float32)[None, :, None]
    offsets = ((np.arange(sub) + 0.5) / sub - 0.5) * subject.slice_mm
    centres = (np.arange(slices) - (slices - 1) / 2) * subject.slice_mm
    z = (centres[:, None] + offsets[None, :]).ravel().astype(np.float32)[:, None, None]
    return x, y, z


def _heart_frame(
    subject: CardiacSubject, options: CardiacOptions
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Apex position and orthonormal (e1, e2, n) of the heart: n points apex → base; slice 0 is basal."""
    stack = options.shape[0] * subject.slice_mm
    n = np.array(
        [
            np.sin(subject.axis_tilt) * np.cos(subject.axis_azimuth),
            np.sin(subject.axis_tilt) * np.sin(subject.axis_azimuth),
            -np.cos(subject.axis_tilt),
        ]
    )
    # the apex just inside the last slice; the axis crosses the chosen in-plane centre mid-ventricle
    apex_z = stack / 2 - 0.55 * subject.slice_mm
    apex = np.array(
        [subject.centre[0] - n[0] * subject.length / 2, subject.centre[1] - n[1] * subject.length / 2, apex_z]
    )
    e1 = np.cross(n, [0.0, 1.0, 0.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(n, e1)
    cos_r, sin_r = np.cos(subject.roll), np.sin(subject.roll)
    e1, e2 = cos_r * e1 + sin_r * e2, -sin_r * e1 + cos_r * e2
    return apex, e1, e2, n


def _paint_background(
    canvas: _Canvas, subject: CardiacSubject, x, y, z, fields: dict[str, np.ndarray], edge: float
) -> None:
    """Chest wall, mediastinum, lungs, liver, spine and aorta: static during the breath-hold."""
    tone = subject.intensities
    hx, hy = subject.centre
    bx, by, ba, bb = subject.body
    texture, vessels = fields["texture"], fields["vessels"]
    wobble = 5.0 * fields["wobble"]  # no organ boundary is a perfect ellipse
    body = ellipse_distance(x - (hx + bx), y - (hy + by), ba, bb) + 6.0 * fields["swell"]
    canvas.paint(soft_inside(body, edge), tone["fat"] * (1 + 0.04 * texture))
    canvas.paint(soft_inside(body + subject.fat_layer, edge), tone["muscle"] * (1 + 0.08 * texture))
    canvas.paint(
        soft_inside(body + subject.fat_layer + subject.muscle_layer, edge), tone["tissue"] * (1 + 0.2 * texture)
    )
    patches = np.clip(1.5 * (fields["wobble"] - 1.0), 0.0, 1.0)  # mediastinal fat
    canvas.paint(patches * soft_inside(body + subject.fat_layer + subject.muscle_layer + 3.0, edge), tone["fat"])
    for lx, ly, la, lb in subject.lungs:
        lung = ellipse_distance(x - (hx + lx), y - (hy + ly), la, lb) + wobble
        canvas.paint(soft_inside(lung, edge), tone["lung"] * (1 + 0.3 * texture) + 0.25 * vessels)
    lx, ly, lz, la, lb, lc = subject.liver
    # an ellipsoid low in the chest: present in the apical slices only
    liver_xy = np.sqrt(((x - (hx + lx)) / la) ** 2 + ((y - (hy + ly)) / lb) ** 2 + ((z - lz) / lc) ** 2)
    canvas.paint(soft_inside((liver_xy - 1.0) * min(la, lb, lc) + wobble, edge), tone["liver"] * (1 + 0.06 * texture))
    spine = np.hypot(x - (hx - 12.0), y - (hy + 88.0)) + 0.0 * z
    canvas.paint(soft_inside(spine - 17.0, edge), tone["muscle"])
    canvas.paint(soft_inside(spine - 14.5, edge), tone["bone"] * (1 + 0.1 * texture))
    aorta = np.hypot(x - (hx + 18.0), y - (hy + 62.0)) + 0.0 * z
    canvas.paint(soft_inside(aorta - 12.0, edge), tone["muscle"])
    canvas.paint(soft_inside(aorta - 10.5, edge), tone["aorta"])


def _paint_heart(
    canvas: _Canvas,
    subject: CardiacSubject,
    options: CardiacOptions,
    x,
    y,
    z,
    texture: np.ndarray,
    contraction: float,
    edge: float,
) -> None:
    """LV, RV, papillary muscles, pericardial fat and the atria above the base at one phase."""
    tone = subject.intensities
    apex, e1, e2, n = (tuple(float(c) for c in vector) for vector in _heart_frame(subject, options))
    shift = [float(c) * contraction for c in subject.motion_mm]
    qx, qy, qz = x - (apex[0] + shift[0]), y - (apex[1] + shift[1]), z - (apex[2] + shift[2])
    w = qx * n[0] + qy * n[1] + qz * n[2]
    u0 = qx * e1[0] + qy * e1[1] + qz * e1[2]
    v0 = qx * e2[0] + qy * e2[1] + qz * e2[2]
    # small-angle rotation: the base and apex wring in opposite directions during systole
    twist = (subject.twist * contraction) * (0.5 - w / subject.length)
    u = u0 - v0 * twist
    v = v0 + u0 * twist

    k_long = 1.0 - subject.long_shortening * contraction  # apex fixed, base descends
    k_lv = float(np.sqrt((1.0 - subject.ejection_fraction * contraction) / k_long))  # V ∝ r² · length
    k_rv = float(np.sqrt((1.0 - subject.rv_ejection_fraction * contraction) / k_long))
    w_ed = w * (1.0 / k_long)  # the ED level that this point's material came from
    length, apex_wall = subject.length, subject.apex_wall
    epi_shape = _profile(w_ed * (1.0 / length))
    epi_ed = (subject.lv_radius + subject.wall) * epi_shape
    endo_ed = subject.lv_radius * _profile((w_ed - apex_wall) * (1.0 / (length - apex_wall)))
    endo = k_lv * endo_ed
    # myocardium is incompressible: the ED wall area at this level, stretched by the shortening
    epi = np.sqrt(endo * endo + (epi_ed * epi_ed - endo_ed * endo_ed) * (1.0 / k_long))

    # in-plane shape: ellipticity, then low-order harmonics of the angle (via cos/sin recurrences)
    us, vs = u * (1.0 / (1 + subject.ellipticity)), v * (1 + subject.ellipticity)
    plain = np.sqrt(us * us + vs * vs) + 1e-6
    cos1, sin1 = us / plain, vs / plain
    shape = np.ones_like(plain)
    cos_m, sin_m = cos1, sin1
    for amplitude, phase in subject.harmonics:  # modes 2, 3, 4
        cos_m, sin_m = cos_m * cos1 - sin_m * sin1, sin_m * cos1 + cos_m * sin1
        shape += amplitude * (cos_m * float(np.cos(phase)) + sin_m * float(np.sin(phase)))
    radius = plain / shape
    below_base = soft_inside((w_ed - length) * k_long, edge)
    above_base = 1.0 - below_base

    # RV: an ellipse beside the LV, its size tied to the local LV radius so it tapers to its apex
    rv_taper = _profile((w_ed * (1.0 / length) - subject.rv_apex) * (1.0 / (1.0 - subject.rv_apex)), blunt=True)
    local = (subject.lv_radius + subject.wall) * epi_shape
    radial = subject.rv_radial * k_rv**1.4 * local * rv_taper  # the free wall moves most
    tangential = subject.rv_tangential * k_rv**0.6 * local * rv_taper
    rv = ellipse_distance(-u - subject.rv_offset * local, v, radial, tangential)
    rv_wall = subject.rv_wall * (1.0 + 0.3 * contraction)

    fat_base, fat_extra, fat_angle = subject.fat
    towards_fat = np.maximum(0.0, cos1 * float(np.cos(fat_angle)) + sin1 * float(np.sin(fat_angle)))
    fat = fat_base + fat_extra * towards_fat**6  # a local pad (e.g. along a groove), not a halo
    heart = np.minimum(radius - epi, rv - rv_wall)
    canvas.paint(soft_inside(heart - fat, edge) * below_base, tone["fat"])
    blood = tone["blood"] * (1.0 + 0.04 * texture)  # inflow and coil shading: never perfectly flat
    myocardium = tone["myocardium"] * (1.0 + 0.08 * texture)
    canvas.paint(soft_inside(rv - rv_wall, edge) * below_base, myocardium)
    canvas.paint(soft_inside(rv, edge) * below_base, blood, "rv")

    # atria above the descending base: blood pools whose thin walls MRI barely resolves
    atrium = np.sqrt((u + 0.15 * subject.lv_radius) ** 2 + v * v) - 0.95 * subject.lv_radius
    atria = above_base * soft_inside(w_ed - length - 45.0, edge)
    canvas.paint(soft_inside(atrium, edge) * atria, tone["atrium"])

    canvas.paint(soft_inside(radius - epi, edge) * below_base, myocardium, "myo")
    canvas.paint(soft_inside(radius - endo, edge) * below_base, blood, "lv")
    zeta = (w_ed - apex_wall) * (1.0 / (length - apex_wall))
    along = soft_inside(np.abs(zeta - 0.42) * length - 0.25 * length, edge) * below_base
    for angle, size in subject.papillary:
        size = size * (1.0 + 0.3 * contraction)
        centre = np.maximum(endo - 0.8 * size, 0.0)
        px, py = centre * float(np.cos(angle)), centre * float(np.sin(angle))
        muscle = np.sqrt((radius * cos1 - px) ** 2 + (radius * sin1 - py) ** 2) - size
        canvas.paint(soft_inside(muscle, edge) * along, myocardium, "papillary")


def _geometry(subject: CardiacSubject, options: CardiacOptions):
    """Spacing (i, j, k), origin and direction of the native grid in LPS scanner space."""
    spacing = (subject.pixel_mm, subject.pixel_mm, subject.slice_mm)
    direction = np.asarray(subject.scanner_direction).reshape(3, 3)
    half = (np.array(options.shape[::-1]) - 1) / 2 * np.array(spacing)
    origin = np.asarray(subject.scanner_centre) - direction @ half
    return spacing, tuple(float(v) for v in origin), tuple(float(v) for v in direction.ravel())


def _heart_region(subject: CardiacSubject, options: CardiacOptions, x, y, z) -> np.ndarray:
    """Boolean mask of sample points close enough to the long axis to be touched by the heart
    in any phase: the heart is repainted there only (about half the field of view)."""
    apex, _, _, n = _heart_frame(subject, options)
    qx, qy, qz = x - apex[0], y - apex[1], z - apex[2]
    along = qx * n[0] + qy * n[1] + qz * n[2]
    off_axis = np.sqrt(np.maximum(qx * qx + qy * qy + qz * qz - along * along, 0.0))
    epicardium = subject.lv_radius + subject.wall
    reach = (
        (subject.rv_offset + subject.rv_radial) * epicardium * (1 + abs(subject.ellipticity)) * 1.15
        + 1.3 * subject.rv_wall
        + sum(subject.fat[:2])
        + float(np.linalg.norm(subject.motion_mm))
        + 3.0 * subject.pixel_mm
    )
    return off_axis < reach


def _thick_slices(samples: np.ndarray, sub_slices: int) -> np.ndarray:
    """Average the sub-slice samples of each thick slice: (k · sub, j, i) → (k, j, i)."""
    return samples.reshape(-1, sub_slices, *samples.shape[1:]).mean(axis=1)


def systole_contractions(frames: int) -> np.ndarray:
    """The contraction (0 at ED, 1 at ES) at `frames` phases evenly spaced in time from ED to ES: the
    systolic half-cosine of `contraction_curve`, at any number of phases."""
    if frames < 2:
        raise ValueError(f"ED→ES needs at least 2 phases; got {frames}")
    return 0.5 - 0.5 * np.cos(np.pi * np.arange(frames) / (frames - 1))


def render_cardiac(
    subject: CardiacSubject,
    options: CardiacOptions,
    noise_rng: np.random.Generator,
    contractions: np.ndarray | None = None,
    noisy: bool = True,
) -> CardiacPhantom:
    """Render every frame of the cycle: anatomy, partial volume, bias field, Rician noise. With
    `contractions` (see `systole_contractions`), render exactly those phases instead — each frame
    drawn from the anatomy at its phase, never a blend of two rendered frames. `noisy=False` renders
    the noise-free twin: every draw before the noise is the same, so everything else is the noisy
    render's."""
    x, y, z = _grid(subject, options)
    slices, rows, columns = options.shape
    sub = options.sub_slices
    full = (slices * sub, rows, columns)
    # edges as wide as the sample spacing in 3D, so that sloped surfaces average into a smooth
    # partial-volume band instead of one sharp contour per sub-slice
    edge = float(np.hypot(subject.pixel_mm, subject.slice_mm / sub))
    texture = smooth_noise(noise_rng, full, (6.0 * sub / subject.slice_mm, 6.0 / edge, 6.0 / edge))
    fine = smooth_noise(noise_rng, full, (1.5 * sub / subject.slice_mm, 1.5 / edge, 1.5 / edge))
    fields = {
        "texture": texture,
        "vessels": np.clip(fine - 1.8, 0.0, 1.0),  # sparse bright dots: pulmonary vessels in plane
        "wobble": smooth_noise(noise_rng, full, (15.0 * sub / subject.slice_mm, 15.0 / edge, 15.0 / edge)),
        "swell": smooth_noise(noise_rng, full, (40.0 * sub / subject.slice_mm, 40.0 / edge, 40.0 / edge)),
    }
    background = _Canvas(full)
    _paint_background(background, subject, x, y, z, fields, edge)

    bx, by, quad = subject.bias
    x2, y2 = x[0] / 100.0, y[0] / 100.0
    bias = np.exp(bx * x2 + by * y2 + quad * (x2 * x2 + y2 * y2)).astype(np.float32)
    voxel_ml = subject.pixel_mm**2 * subject.slice_mm / 1000.0
    if contractions is None:
        curve = contraction_curve(subject.n_frames, subject.es_index)
        interval_s = subject.cycle_ms / subject.n_frames / 1000.0
    else:
        curve = np.asarray(contractions, dtype=np.float64)
        interval_s = subject.es_index * subject.cycle_ms / subject.n_frames / 1000.0 / max(1, len(curve) - 1)

    frames = np.empty((len(curve), *options.shape), np.int16)
    labels = np.empty((len(curve), *options.shape), np.uint8)
    lv_ml = np.empty(len(curve))
    myo_ml = np.empty(len(curve))
    rv_ml = np.empty(len(curve))
    region = _heart_region(subject, options, x, y, z)  # only these points ever change
    hx, hy, hz = (np.broadcast_to(c, full)[region] for c in (x, y, z))
    heart_texture = texture[region]
    for t, contraction in enumerate(curve):
        heart = _Canvas(hx.shape)
        heart.intensity[...] = background.intensity[region]
        _paint_heart(heart, subject, options, hx, hy, hz, heart_texture, float(contraction), edge)
        canvas = _Canvas(full)
        canvas.intensity[...] = background.intensity
        canvas.intensity[region] = heart.intensity
        for name, fraction in canvas.fractions.items():
            fraction[region] = heart.fractions[name]
        image = _thick_slices(canvas.intensity, sub) * bias
        if noisy:  # the last draws from noise_rng: the noise-free twin skips them and keeps the rest
            image = rician(noise_rng, image, subject.noise)
        image = image * subject.peak
        frames[t] = np.clip(np.round(image), 0, np.iinfo(np.int16).max).astype(np.int16)
        parts = {name: _thick_slices(f, sub) for name, f in canvas.fractions.items()}
        lv_ml[t] = (parts["lv"] + parts["papillary"]).sum() * voxel_ml
        myo_ml[t] = parts["myo"].sum() * voxel_ml
        rv_ml[t] = parts["rv"].sum() * voxel_ml
        cavity = parts["lv"] + parts["papillary"]
        stack = np.stack([1.0 - parts["rv"] - parts["myo"] - cavity, parts["rv"], parts["myo"], cavity])
        labels[t] = np.argmax(stack, axis=0).astype(np.uint8)  # 0 bg, 1 RV, 2 MYO, 3 LV
    spacing, origin, direction = _geometry(subject, options)
    return CardiacPhantom(
        subject=subject,
        frames=frames,
        labels=labels,
        lv_cavity_ml=lv_ml,
        myocardium_ml=myo_ml,
        rv_cavity_ml=rv_ml,
        spacing=spacing,
        origin=origin,
        direction=direction,
        frame_interval_s=interval_s,
    )


def cardiac_subject(
    seed: int,
    index: int,
    options: CardiacOptions | None = None,
    contractions: np.ndarray | None = None,
    noisy: bool = True,
) -> CardiacPhantom:
    """Subject `index` of the data set made with `seed`: depends on (seed, index, options) only (the
    anatomy does not depend on `contractions`, the phases rendered; see `render_cardiac`, also for
    `noisy`)."""
    options = options or CardiacOptions()
    anatomy_rng, noise_rng = subject_rngs(seed, index)
    return render_cardiac(sample_cardiac_subject(anatomy_rng, options), options, noise_rng, contractions, noisy)
