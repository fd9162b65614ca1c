"""Resampling of voxel arrays between a native grid and the model grid (SimpleITK).

The engine's contract is numpy in / numpy out: geometry belongs to the caller, so these functions
map one array shape onto another covering the same field of view (voxel centres aligned as in
ITK's convention: the edges of the first and last voxels coincide).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk


def resample_to_shape(volume: np.ndarray, shape: Sequence[int], antialias: bool = True) -> np.ndarray:
    """Linear resampling of a (k, j, i) array to `shape` over the same field of view.

    Downsampled axes are Gaussian-smoothed first (σ = (factor − 1) / 2 voxels, as scikit-image does)
    so that thin structures do not alias. Returns float32; the input is never modified.
    """
    shape = tuple(int(n) for n in shape)
    if volume.shape == shape:
        return np.array(volume, dtype=np.float32, copy=True)
    image = sitk.GetImageFromArray(np.asarray(volume, dtype=np.float32))  # spacing 1, origin 0
    factors = [old / new for old, new in zip(volume.shape, shape)]  # (k, j, i)
    if antialias and any(f > 1 for f in factors):
        sigmas = [max(0.0, (f - 1) / 2) for f in reversed(factors)]  # ITK order (i, j, k)
        image = sitk.DiscreteGaussian(
            image, variance=[s * s for s in sigmas], maximumKernelWidth=64, useImageSpacing=True
        )
    spacing = list(reversed(factors))
    origin = [(s - 1.0) / 2.0 for s in spacing]  # -0.5 + s/2: first output voxel's centre
    resampler = sitk.ResampleImageFilter()
    resampler.SetSize([int(n) for n in reversed(shape)])
    resampler.SetOutputSpacing(spacing)
    resampler.SetOutputOrigin(origin)
    resampler.SetOutputDirection(image.GetDirection())
    resampler.SetInterpolator(sitk.sitkLinear)
    resampler.SetUseNearestNeighborExtrapolator(True)
    return sitk.GetArrayFromImage(resampler.Execute(image)).astype(np.float32, copy=False)
