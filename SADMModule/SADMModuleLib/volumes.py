"""Volumes: which nodes SADM accepts as frames, comparing voxel grids in world space, and
resampling a frame onto frame 0's grid."""

from __future__ import annotations

import numpy as np
import slicer
import vtk

from sadm.errors import SADMError


class SADMInputError(SADMError, ValueError):
    """The selected nodes cannot be read as one sequence of scalar volumes."""


def checkScalarVolume(node, position: int) -> bool:
    """Frames must be scalar volumes with voxels (not label maps, not tensors). A vector (RGB) volume whose
    channels are all equal is grey stored as colour, as ultrasound from DICOM often is: accepted, its first
    channel read (returns True); a truly coloured one is refused, naming the module that converts it."""
    if node is None:
        raise SADMInputError(f"frame {position} is empty (no node); remove it or select a scalar volume")
    name, kind = node.GetName(), node.GetClassName()
    if node.IsA("vtkMRMLLabelMapVolumeNode"):
        raise SADMInputError(
            f"frame {position} ({name}) is a label map ({kind}); SADM generates intensity images: give scalar "
            "volumes (Volumes module > Volume information > Convert to scalar volume)"
        )
    vector = node.IsA("vtkMRMLVectorVolumeNode")  # RGB; in MRML a subclass of the tensor volume node
    if not node.IsA("vtkMRMLScalarVolumeNode") or (node.IsA("vtkMRMLTensorVolumeNode") and not vector):
        raise SADMInputError(
            f"frame {position} ({name}) is a {kind}, not a scalar volume; give single-component scalar volumes"
        )
    image = node.GetImageData()
    if image is None or image.GetNumberOfPoints() == 0:
        raise SADMInputError(f"frame {position} ({name}) has no voxels; load its image first")
    components = image.GetNumberOfScalarComponents()
    if components == 1:
        return False
    voxels = slicer.util.arrayFromVolume(node)
    if voxels.ndim == 4 and np.array_equal(voxels, np.broadcast_to(voxels[..., :1], voxels.shape)):
        return True
    raise SADMInputError(
        f"frame {position} ({name}) is a colour image ({kind}, {components} components per voxel whose values "
        "differ); SADM needs one grey value per voxel. Convert the frames with Slicer's Vector to Scalar Volume "
        "module (Converters > Vector to Scalar Volume, luminance) and give the result"
    )


def frameVoxels(node) -> np.ndarray:
    """A frame's voxels as a (k, j, i) copy: the first channel of a grey image stored as RGB."""
    voxels = slicer.util.arrayFromVolume(node)
    if voxels.ndim == 4:
        voxels = voxels[..., 0]
    return np.array(voxels, copy=True)


def ijkToWorld(node) -> vtk.vtkMatrix4x4:
    """IJK -> world RAS of a volume, through its parent transform when it has a linear one."""
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    parent = node.GetParentTransformNode()
    if parent is not None:
        if not parent.IsTransformToWorldLinear():
            raise SADMInputError(
                f"{node.GetName()} is under the non-linear transform {parent.GetName()}; it cannot be resampled onto "
                "frame 0's grid here: harden the transform first (Transforms module > Apply transform)"
            )
        toWorld = vtk.vtkMatrix4x4()
        parent.GetMatrixTransformToWorld(toWorld)
        vtk.vtkMatrix4x4.Multiply4x4(toWorld, matrix, matrix)
    return matrix


def gridDifference(node, reference) -> str | None:
    """How the voxel grid of `node` differs from `reference` in world space, or None if it is the same."""
    dims, referenceDims = node.GetImageData().GetDimensions(), reference.GetImageData().GetDimensions()
    if tuple(dims) != tuple(referenceDims):
        return f"size {'×'.join(map(str, dims))} vs {'×'.join(map(str, referenceDims))} voxels (i×j×k)"
    spacing, referenceSpacing = np.array(node.GetSpacing()), np.array(reference.GetSpacing())
    if not np.allclose(spacing, referenceSpacing, rtol=1e-5, atol=1e-8):
        return f"spacing {_mm(spacing)} vs {_mm(referenceSpacing)} mm"
    matrix, referenceMatrix = (
        slicer.util.arrayFromVTKMatrix(ijkToWorld(node)),
        slicer.util.arrayFromVTKMatrix(ijkToWorld(reference)),
    )
    tolerance = 1e-4 * float(referenceSpacing.max())
    if not np.allclose(matrix[:3, :3], referenceMatrix[:3, :3], atol=tolerance):
        return "different axis directions"
    if not np.allclose(matrix[:3, 3], referenceMatrix[:3, 3], atol=tolerance):
        return f"origin {_mm(matrix[:3, 3])} vs {_mm(referenceMatrix[:3, 3])} mm (RAS)"
    return None


def _mm(values) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"


def resampleOntoGrid(node, reference, position: int = 0) -> np.ndarray:
    """`node`'s voxels sampled (linearly) on `reference`'s voxel grid, as a (k, j, i) float32 copy.
    Refuses when the two volumes do not overlap in space."""
    referenceToWorld = ijkToWorld(reference)
    worldToNode = vtk.vtkMatrix4x4()
    vtk.vtkMatrix4x4.Invert(ijkToWorld(node), worldToNode)
    referenceToNode = vtk.vtkMatrix4x4()
    vtk.vtkMatrix4x4.Multiply4x4(worldToNode, referenceToWorld, referenceToNode)
    dims = reference.GetImageData().GetDimensions()
    nodeDims = node.GetImageData().GetDimensions()
    corners = np.array([[i, j, k, 1.0] for i in (0, dims[0] - 1) for j in (0, dims[1] - 1) for k in (0, dims[2] - 1)])
    mapped = corners @ slicer.util.arrayFromVTKMatrix(referenceToNode).T
    low, high = mapped[:, :3].min(axis=0), mapped[:, :3].max(axis=0)
    if np.any(high < -0.5) or np.any(low > np.array(nodeDims) - 0.5):
        raise SADMInputError(
            f"frame {position} ({node.GetName()}) does not overlap frame 0 ({reference.GetName()}) in space, so it "
            "cannot be resampled onto frame 0's grid; check the volumes' origins and transforms"
        )
    image = vtk.vtkImageData()
    image.ShallowCopy(node.GetImageData())
    if image.GetNumberOfScalarComponents() > 1:  # grey stored as RGB: its first channel
        first = vtk.vtkImageExtractComponents()
        first.SetInputData(image)
        first.SetComponents(0)
        first.Update()
        image = vtk.vtkImageData()
        image.ShallowCopy(first.GetOutput())
    image.SetOrigin(0, 0, 0)
    image.SetSpacing(1, 1, 1)
    reslice = vtk.vtkImageReslice()
    reslice.SetInputData(image)
    reslice.SetResliceAxes(referenceToNode)
    reslice.SetInterpolationModeToLinear()
    reslice.SetOutputScalarType(vtk.VTK_FLOAT)
    reslice.SetOutputOrigin(0, 0, 0)
    reslice.SetOutputSpacing(1, 1, 1)
    reslice.SetOutputExtent(0, dims[0] - 1, 0, dims[1] - 1, 0, dims[2] - 1)
    reslice.SetBackgroundLevel(float(image.GetScalarRange()[0]))
    reslice.Update()
    from vtk.util.numpy_support import vtk_to_numpy

    voxels = vtk_to_numpy(reslice.GetOutput().GetPointData().GetScalars())
    return np.array(voxels.reshape(dims[2], dims[1], dims[0]), dtype=np.float32, copy=True)
