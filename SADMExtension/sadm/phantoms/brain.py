"""Brain-ageing sequences built from the MNI152 template that ships inside nilearn (no download).

A subject is the template under a random smooth deformation with its own contrast; each of five
timepoints (one age per age group of the paper) then enlarges the ventricles with a smooth
diffeomorphic push and thins the cortex from the pial side (grey matter → sulcal CSF), at
subject-specific rates. Images are skull-stripped T1-like int16 volumes on the template's grid.

Two varieties. `subject` (the default) gives each subject its own anatomy beyond the warped template
— ventricle size, cortical thickness, a coarser head-shape deformation, tissue contrast — and its own
ageing: an onset age, a left/right ventricular asymmetry, a regional thinning focus and a smooth
atrophy flow of its own, so held-out subjects differ from training ones in kind, not only in degree.
`template` is the phantom as it was before (one anatomy and one ageing pattern at per-subject rates):
the first stages of the bundled brain model were trained on it, and it renders those subjects bit for
bit.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from sadm.phantoms.fields import random_rotation, rician, smooth_noise, subject_rngs

AGE_GROUPS: tuple[tuple[int, int], ...] = ((18, 30), (31, 45), (46, 60), (61, 74), (75, 97))
VARIETIES = ("subject", "template")
FIELD_SPACING_MM = 4.0  # deformations are smooth: computed on this grid, whatever the voxel size
TEMPLATE_TISSUE_T1 = (0.0, 0.34, 0.65, 0.86, 1.0)  # template T1: background, CSF, GM, WM, brightest


@dataclass(frozen=True)
class BrainOptions:
    """Grid and age design of a brain-ageing data set."""

    voxel_mm: float = 2.0  # isotropic output spacing; 3–4 mm for fast tests and CPU training
    age_groups: tuple[tuple[int, int], ...] = AGE_GROUPS
    variety: str = "subject"  # "template": one anatomy and ageing pattern (the phantom before issue 27)

    def __post_init__(self) -> None:
        if self.variety not in VARIETIES:
            raise ValueError(f"variety must be one of {VARIETIES}; got {self.variety!r}")
        if not 1.0 <= float(self.voxel_mm) <= 8.0:
            raise ValueError(f"voxel_mm must lie in [1, 8] mm (the template is 1 mm); got {self.voxel_mm!r}")
        groups = tuple((int(low), int(high)) for low, high in self.age_groups)
        if (
            not groups
            or any(low > high for low, high in groups)
            or any(a[1] >= b[0] for a, b in zip(groups, groups[1:]))
        ):
            raise ValueError(
                f"age_groups must be increasing, non-overlapping (low, high) ranges; got {self.age_groups!r}"
            )
        object.__setattr__(self, "voxel_mm", float(self.voxel_mm))
        object.__setattr__(self, "age_groups", groups)


@dataclass(frozen=True)
class BrainTemplate:
    """MNI152 maps on one isotropic grid, (k, j, i) arrays, with the grid's geometry.

    The template's affine is diagonal RAS, so voxel (i, j, k) lies at origin_ras + spacing·(i, j, k).
    """

    t1: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    mask: np.ndarray
    ventricles: np.ndarray  # lateral + third ventricles, a soft mask
    spacing_mm: float
    origin_ras: tuple[float, float, float]

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.t1.shape

    @property
    def affine(self) -> np.ndarray:
        """The 4×4 RAS affine that nibabel / nilearn report for this grid."""
        affine = np.diag([self.spacing_mm] * 3 + [1.0])
        affine[:3, 3] = self.origin_ras
        return affine

    def lps_geometry(self) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
        """(spacing, origin, direction) in SimpleITK's LPS convention, axes (i, j, k)."""
        flip = np.array([-1.0, -1.0, 1.0])
        origin = tuple(float(v) for v in flip * np.asarray(self.origin_ras))
        return (self.spacing_mm,) * 3, origin, tuple(float(v) for v in np.diag(flip).ravel())


def _template_maps() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The 1 mm MNI152 maps from nilearn's package data, in (k, j, i) order, and their affine."""
    try:
        from nilearn import datasets
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the brain phantom needs nilearn (pip install nilearn): its wheel carries the MNI152 template"
        ) from error
    loaders = {
        "t1": datasets.load_mni152_template,
        "gm": datasets.load_mni152_gm_template,
        "wm": datasets.load_mni152_wm_template,
        "mask": datasets.load_mni152_brain_mask,
    }
    images = {name: load(resolution=1) for name, load in loaders.items()}
    affine = images["t1"].affine
    if not np.allclose(affine[:3, :3], np.eye(3)):
        raise ValueError(f"expected nilearn's 1 mm MNI152 template with a diagonal RAS affine; got\n{affine}")
    return {
        name: np.asarray(image.get_fdata(), np.float32).transpose(2, 1, 0) for name, image in images.items()
    }, affine


def _ventricle_mask(maps: dict[str, np.ndarray], affine: np.ndarray) -> np.ndarray:
    """Lateral and third ventricles: dark CSF in a central box, large connected components only."""
    csf = np.clip(maps["mask"] - maps["gm"] - maps["wm"], 0.0, 1.0)
    k, j, i = np.indices(csf.shape, sparse=True)
    x, y, z = i + affine[0, 3], j + affine[1, 3], k + affine[2, 3]
    central = (np.abs(x) < 30) & (y > -45) & (y < 35) & (z > -5) & (z < 35)
    candidates = (csf > 0.4) & (maps["mask"] > 0) & central & (maps["t1"] < 0.5)
    labels, count = ndimage.label(candidates)
    sizes = ndimage.sum(candidates, labels, np.arange(1, count + 1))
    return np.isin(labels, 1 + np.flatnonzero(sizes > 300)).astype(np.float32)


def _downsample(volume: np.ndarray, spacing_mm: float, shape: tuple[int, int, int]) -> np.ndarray:
    """1 mm → `spacing_mm` on a grid sharing voxel (0, 0, 0), Gaussian anti-aliased."""
    if spacing_mm != 1.0:
        volume = ndimage.gaussian_filter(volume, max(0.0, (spacing_mm - 1.0) / 2.0))
    coordinates = np.indices(shape, dtype=np.float32) * spacing_mm
    return ndimage.map_coordinates(volume, coordinates, order=1, mode="nearest").astype(np.float32)


@functools.lru_cache(maxsize=4)
def load_template(voxel_mm: float = 2.0) -> BrainTemplate:
    """MNI152 T1, GM, WM, brain mask and ventricles resampled to `voxel_mm` (cached per size)."""
    maps, affine = _template_maps()
    maps["ventricles"] = _ventricle_mask(maps, affine)
    shape = tuple(int((n - 1) // voxel_mm) + 1 for n in maps["t1"].shape)
    small = {name: _downsample(volume, voxel_mm, shape) for name, volume in maps.items()}
    for array in small.values():
        array.setflags(write=False)
    return BrainTemplate(spacing_mm=float(voxel_mm), origin_ras=tuple(float(v) for v in affine[:3, 3]), **small)


@dataclass(frozen=True)
class BrainSubject:
    """Sampled parameters of one subject (the random deformation fields come from its own stream)."""

    ages: tuple[int, ...]
    ventricle_rate: float  # maximal ventricular push in mm at full ageing
    thinning_rate: float  # cortical thinning in mm at full ageing
    ageing_power: float  # > 1: ageing accelerates late in life
    base_warp_mm: float
    affine: tuple[float, ...]  # 3×3 linear part of the subject's head shape, RAS
    tissue_t1: tuple[float, float, float, float, float]  # subject's values at TEMPLATE_TISSUE_T1
    scale: float  # int16 value of white matter
    noise: float  # relative to white matter
    bias: float  # amplitude of the smooth multiplicative field
    variety: str = "template"  # BrainOptions.variety it was drawn for: "subject" renders the fields below
    # per-subject anatomy and ageing pattern (variety "subject"; the neutral values give "template")
    ventricle_base_mm: float = 0.0  # the young ventricles pushed wider (> 0) or narrower (< 0)
    cortex_base_mm: float = 0.0  # cortex thinner than the template's from the start
    coarse_warp_mm: float = 0.0  # head-shape deformation at a 40 mm scale
    ventricle_asymmetry: float = 0.0  # −1..1: share of the ventricular push going right (> 0) or left
    atrophy_warp_mm: float = 0.0  # the subject's own smooth atrophy flow at full ageing
    ageing_onset: float = 18.0  # age at which ageing starts
    thinning_focus: float = 0.4  # how much faster the cortex thins where it thins most


def sample_brain_subject(rng: np.random.Generator, options: BrainOptions) -> BrainSubject:
    """Draw one subject's ages and rates; all scalar randomness of the subject lives here."""
    ages = tuple(int(rng.integers(low, high + 1)) for low, high in options.age_groups)
    scaling = np.diag(rng.uniform(0.94, 1.06, 3))
    wm = rng.uniform(0.82, 0.9)
    template_variety = {  # in the order the template variety always drew them
        "ventricle_rate": float(rng.uniform(5.0, 9.0)),
        "thinning_rate": float(rng.uniform(1.0, 2.0)),
        "ageing_power": float(rng.uniform(1.4, 2.2)),
        "base_warp_mm": float(rng.uniform(1.0, 2.5)),
        "affine": tuple(float(v) for v in (random_rotation(rng, 4.0) @ scaling).ravel()),
        "tissue_t1": (0.0, rng.uniform(0.22, 0.34), rng.uniform(0.55, 0.65), wm, min(1.0, wm + 0.12)),
        "scale": float(rng.uniform(700.0, 1100.0)),
        "noise": float(rng.uniform(0.01, 0.03)),
        "bias": float(rng.uniform(0.03, 0.1)),
    }
    if options.variety == "template":
        return BrainSubject(ages=ages, **template_variety)
    _, csf, grey, wm, brightest = template_variety["tissue_t1"]
    contrast = rng.uniform(-0.05, 0.05, 2)  # CSF and grey matter against white matter
    template_variety["tissue_t1"] = (0.0, csf + contrast[0], grey + contrast[1], wm, brightest)
    template_variety["ageing_power"] = float(rng.uniform(1.1, 2.6))  # a wider spread of ageing curves
    return BrainSubject(
        ages=ages,
        **template_variety,
        variety="subject",
        ventricle_base_mm=float(rng.uniform(-2.0, 3.0)),
        cortex_base_mm=float(rng.uniform(0.0, 1.2)),
        coarse_warp_mm=float(rng.uniform(1.5, 4.0)),
        ventricle_asymmetry=float(rng.uniform(-0.35, 0.35)),
        atrophy_warp_mm=float(rng.uniform(1.0, 3.0)),
        ageing_onset=float(rng.uniform(18.0, 40.0)),
        thinning_focus=float(rng.uniform(0.2, 0.8)),
    )


def ageing(age: float, power: float, onset: float = 18.0) -> float:
    """0 at `onset` years → 1 at 90 years, accelerating with `power`."""
    return float(np.clip((age - onset) / (90.0 - onset), 0.0, None) ** power)


@dataclass
class BrainPhantom:
    """A rendered subject: frames (T, k, j, i) int16 on the template grid, with ground-truth volumes."""

    subject: BrainSubject
    frames: np.ndarray
    ages: tuple[int, ...]
    ventricle_ml: np.ndarray  # (T,)
    gm_ml: np.ndarray  # (T,)
    csf_ml: np.ndarray  # (T,) ventricles + sulcal CSF inside the brain mask
    template: BrainTemplate


class _FieldGrid:
    """The coarse grid on which smooth displacement fields (mm, RAS axes, (3, k, j, i)) live."""

    def __init__(self, template: BrainTemplate):
        extent = (np.asarray(template.shape) - 1) * template.spacing_mm
        self.shape = tuple(int(n) for n in np.floor(extent / FIELD_SPACING_MM) + 1)
        self.points_mm = np.indices(self.shape, dtype=np.float32) * FIELD_SPACING_MM  # (3, k, j, i): z, y, x

    def sample(self, field: np.ndarray, points_mm: np.ndarray, order: int = 1) -> np.ndarray:
        """Interpolate each component of `field` at `points_mm` (3, ...) given in grid mm."""
        index = points_mm / FIELD_SPACING_MM
        return np.stack([ndimage.map_coordinates(c, index, order=order, mode="nearest") for c in field])

    def exponentiate(self, velocity: np.ndarray, steps: int = 4) -> np.ndarray:
        """Scaling and squaring: the displacement of a stationary velocity field's flow at time 1,
        a fold-free deformation however strong the push."""
        displacement = velocity / 2**steps
        for _ in range(steps):
            displacement = displacement + self.sample(displacement, self.points_mm + displacement)
        return displacement


def _base_displacement(
    grid: _FieldGrid, subject: BrainSubject, template: BrainTemplate, rng: np.random.Generator
) -> np.ndarray:
    """The subject's own anatomy: a head-shape affine about the brain centre plus smooth wiggles."""
    centre = np.array([(n - 1) * template.spacing_mm / 2 for n in template.shape], np.float32)[:, None, None, None]
    linear_xyz = np.asarray(subject.affine).reshape(3, 3)
    linear = linear_xyz[::-1, ::-1]  # (x, y, z) → our (z, y, x) component order
    offsets = grid.points_mm - centre
    affine_part = np.einsum("ab,bkji->akji", linear - np.eye(3), offsets)
    sigma = 20.0 / FIELD_SPACING_MM
    wiggle = np.stack([smooth_noise(rng, grid.shape, sigma) for _ in range(3)]) * subject.base_warp_mm
    return (affine_part + wiggle).astype(np.float32)


def _smooth_field(grid: _FieldGrid, rng: np.random.Generator, sigma_mm: float) -> np.ndarray:
    """Three unit-deviation smooth components on the field grid: a random displacement or flow."""
    return np.stack([smooth_noise(rng, grid.shape, sigma_mm / FIELD_SPACING_MM) for _ in range(3)])


def _asymmetry(grid: _FieldGrid, template: BrainTemplate, share: float) -> np.ndarray:
    """1 ± `share` on the right (RAS x > 0) and left hemispheres, a smooth step over the midline."""
    x_ras = template.origin_ras[0] + grid.points_mm[2]
    return (1.0 + share * np.tanh(x_ras / 10.0)).astype(np.float32)


def _ventricle_velocity(grid: _FieldGrid, ventricles: np.ndarray) -> np.ndarray:
    """Unit-peak push around the ventricles: the gradient of their blurred mask points inwards,
    and sampling the image from nearer the ventricle is what grows the ventricle."""
    blurred = ndimage.gaussian_filter(ventricles, 6.0 / FIELD_SPACING_MM)
    gradient = np.stack(np.gradient(blurred, FIELD_SPACING_MM))
    peak = float(np.sqrt((gradient**2).sum(axis=0)).max())
    return (gradient / max(peak, 1e-8)).astype(np.float32)


def _warp(volume: np.ndarray, positions_mm: np.ndarray, spacing_mm: float) -> np.ndarray:
    return ndimage.map_coordinates(volume, positions_mm / spacing_mm, order=1, mode="constant", cval=0.0).astype(
        np.float32
    )


def render_brain(
    subject: BrainSubject, template: BrainTemplate, field_rng: np.random.Generator, noise_rng: np.random.Generator
) -> BrainPhantom:
    """Render the subject at each of its ages."""
    grid = _FieldGrid(template)
    base = _base_displacement(grid, subject, template, field_rng)
    # the subject's own (young) ventricles, then the push that enlarges them
    subject_ventricles = _warp(template.ventricles, grid.points_mm + base, template.spacing_mm)
    velocity = _ventricle_velocity(grid, subject_ventricles)
    # drawn on the field grid, so a subject is the same subject at any voxel size
    output_mm = np.indices(template.shape, dtype=np.float32) * template.spacing_mm
    regional, bias = grid.sample(
        np.stack(
            [
                smooth_noise(field_rng, grid.shape, 15.0 / FIELD_SPACING_MM),
                smooth_noise(field_rng, grid.shape, 40.0 / FIELD_SPACING_MM),
            ]
        ),
        output_mm,
    )  # where the cortex thins faster; the coil's smooth shading
    bias = 1.0 + subject.bias * bias
    varied = subject.variety == "subject"  # the template variety draws no more fields
    if varied:
        base = base + subject.coarse_warp_mm * _smooth_field(grid, field_rng, 40.0)
        subject_ventricles = _warp(template.ventricles, grid.points_mm + base, template.spacing_mm)
        velocity = _ventricle_velocity(grid, subject_ventricles) * _asymmetry(
            grid, template, subject.ventricle_asymmetry
        )
        atrophy = subject.atrophy_warp_mm * _smooth_field(grid, field_rng, 12.0)
        (young_regional,) = grid.sample(smooth_noise(field_rng, grid.shape, 15.0 / FIELD_SPACING_MM)[None], output_mm)

    voxel_ml = template.spacing_mm**3 / 1000.0
    frames, ventricle_ml, gm_ml, csf_ml = [], [], [], []
    t1_intensity = np.interp(template.t1, TEMPLATE_TISSUE_T1, subject.tissue_t1).astype(np.float32)
    csf_t1, gm_t1 = subject.tissue_t1[1], subject.tissue_t1[2]
    for age in subject.ages:
        strength = ageing(age, subject.ageing_power, subject.ageing_onset)
        if varied:  # the young anatomy's own ventricle size, then the subject's own ageing flow
            push = grid.exponentiate(
                velocity * (subject.ventricle_base_mm + subject.ventricle_rate * strength) + atrophy * strength
            )
        else:
            push = grid.exponentiate(velocity * (subject.ventricle_rate * strength))
        # image(x) = template(x + push(x) + base(x + push(x))): age the subject's own anatomy
        total = push + grid.sample(base, grid.points_mm + push)
        positions = output_mm + grid.sample(total, output_mm)
        maps = {
            name: _warp(getattr(template, name), positions, template.spacing_mm)
            for name in ("gm", "wm", "mask", "ventricles")
        }
        t1 = _warp(t1_intensity, positions, template.spacing_mm)

        # cortical thinning from the pial side: grey matter within `loss` mm of sulcal CSF goes
        exterior = ((maps["gm"] + maps["wm"]) < 0.5) & (maps["ventricles"] < 0.3)
        depth = ndimage.distance_transform_edt(~exterior, sampling=template.spacing_mm).astype(np.float32)
        loss = subject.thinning_rate * strength * np.clip(1.0 + subject.thinning_focus * regional, 0.2, None)
        if varied:  # a cortex thinner than the template's from the start, in its own pattern
            loss = loss + subject.cortex_base_mm * np.clip(1.0 + subject.thinning_focus * young_regional, 0.2, None)
        # an interior voxel at depth d spans [d − s, d] from the pial surface; boundary voxels
        # hold their grey matter within about half a voxel of it
        step = template.spacing_mm
        removed = np.where(exterior, 2.0 * loss / step, (loss - depth + step) / step)
        gm = maps["gm"] * (1.0 - np.clip(removed, 0.0, 1.0))
        t1 = t1 - (maps["gm"] - gm) * (gm_t1 - csf_t1)

        brain = maps["mask"]
        image = rician(noise_rng, np.maximum(t1, 0.0) * bias, subject.noise * subject.tissue_t1[3])
        image *= brain > 0.05  # skull-stripped: zero outside the brain
        frames.append(np.clip(np.round(image / subject.tissue_t1[3] * subject.scale), 0, 32767).astype(np.int16))
        ventricle_ml.append(float(maps["ventricles"].sum() * voxel_ml))
        gm_ml.append(float(gm.sum() * voxel_ml))
        csf_ml.append(float(np.clip(brain - gm - maps["wm"], 0.0, 1.0).sum() * voxel_ml))
    return BrainPhantom(
        subject=subject,
        frames=np.stack(frames),
        ages=subject.ages,
        ventricle_ml=np.asarray(ventricle_ml),
        gm_ml=np.asarray(gm_ml),
        csf_ml=np.asarray(csf_ml),
        template=template,
    )


def brain_subject(seed: int, index: int, options: BrainOptions | None = None) -> BrainPhantom:
    """Subject `index` of the data set made with `seed`: depends on (seed, index, options) only."""
    options = options or BrainOptions()
    parameter_rng, field_rng, noise_rng = subject_rngs(seed, index, streams=3)
    subject = sample_brain_subject(parameter_rng, options)
    return render_brain(subject, load_template(options.voxel_mm), field_rng, noise_rng)
