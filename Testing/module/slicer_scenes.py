"""Scene builders for the module tests: small moving-blob sequences with real geometry, and
snapshots that prove a node was not touched."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import slicer
import vtk

SHAPE = (6, 10, 12)  # (k, j, i): small so the untrained tiny model runs in a fraction of a second
OBLIQUE_SPACING = (0.7, 1.1, 3.0)  # mm along i, j, k: anisotropic like a cine MRI stack
OBLIQUE_ORIGIN = (-12.25, 40.5, 7.75)


def oblique_directions() -> np.ndarray:
    """IJK->RAS directions rotated about two axes, so every voxel axis is oblique."""
    a, b = np.deg2rad(25.0), np.deg2rad(-12.0)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return rz @ rx


def blob_frames(count: int, shape=SHAPE, seed: int = 0) -> list[np.ndarray]:
    """A bright blob moving along i over time on a noisy background, int16 like scanner data."""
    rng = np.random.default_rng(seed)
    k, j, i = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    frames = []
    for t in range(count):
        centre = (shape[0] / 2, shape[1] / 2, 3 + t * (shape[2] - 6) / max(1, count - 1))
        blob = np.exp(-(((k - centre[0]) / 2) ** 2 + ((j - centre[1]) / 3) ** 2 + ((i - centre[2]) / 3) ** 2))
        frames.append((100 + 800 * blob + rng.normal(0, 5, shape)).astype(np.int16))
    return frames


def volume_node(
    array: np.ndarray,
    name: str,
    spacing=(1.0, 1.0, 1.0),
    origin=(0.0, 0.0, 0.0),
    directions: np.ndarray | None = None,
    add: bool = True,
):
    """A scalar volume with the given voxels and geometry; added to the scene unless add=False."""
    node = (
        slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name) if add else slicer.vtkMRMLScalarVolumeNode()
    )
    if not add:
        node.SetName(name)
    slicer.util.updateVolumeFromArray(node, array)
    node.SetSpacing(*spacing)
    node.SetOrigin(*origin)
    node.SetIJKToRASDirectionMatrix(_matrix(directions if directions is not None else np.eye(3)))
    return node


def sequence_node(
    frames, name: str = "heart", index_values=None, index_name: str = "time", index_unit: str = "ms", **geometry
):
    """A Sequence node of scalar volumes as a 4D NRRD loads: data nodes live only in the sequence."""
    sequence = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSequenceNode", name)
    sequence.SetIndexName(index_name)
    sequence.SetIndexUnit(index_unit)
    values = index_values or [str(40 * t) for t in range(len(frames))]
    for t, (frame, value) in enumerate(zip(frames, values)):
        sequence.SetDataNodeAtValue(volume_node(frame, f"{name}_{t}", add=False, **geometry), value)
    return sequence


def oblique_geometry() -> dict:
    return {"spacing": OBLIQUE_SPACING, "origin": OBLIQUE_ORIGIN, "directions": oblique_directions()}


def ijk_to_ras(node) -> np.ndarray:
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return slicer.util.arrayFromVTKMatrix(matrix)


@dataclass
class VolumeSnapshot:
    """Everything about a volume that generation must leave alone."""

    voxels: np.ndarray
    dtype: np.dtype
    ijk_to_ras: np.ndarray
    name: str
    attributes: dict

    @classmethod
    def of(cls, node) -> VolumeSnapshot:
        voxels = slicer.util.arrayFromVolume(node)
        names = node.GetAttributeNames() or ()
        return cls(
            voxels.copy(),
            voxels.dtype,
            ijk_to_ras(node),
            node.GetName(),
            {key: node.GetAttribute(key) for key in names},
        )

    def assert_unchanged(self, node) -> None:
        voxels = slicer.util.arrayFromVolume(node)
        assert voxels.dtype == self.dtype
        assert np.array_equal(voxels, self.voxels), f"voxels of {self.name} changed"
        assert np.array_equal(ijk_to_ras(node), self.ijk_to_ras), f"geometry of {self.name} changed"
        assert node.GetName() == self.name
        names = node.GetAttributeNames() or ()
        assert {key: node.GetAttribute(key) for key in names} == self.attributes


@dataclass
class SequenceSnapshot:
    values: list[str]
    frames: list[VolumeSnapshot]
    index: tuple[str, str, int]

    @classmethod
    def of(cls, sequence) -> SequenceSnapshot:
        count = sequence.GetNumberOfDataNodes()
        return cls(
            [sequence.GetNthIndexValue(i) for i in range(count)],
            [VolumeSnapshot.of(sequence.GetNthDataNode(i)) for i in range(count)],
            (sequence.GetIndexName(), sequence.GetIndexUnit(), sequence.GetIndexType()),
        )

    def assert_unchanged(self, sequence) -> None:
        assert [sequence.GetNthIndexValue(i) for i in range(sequence.GetNumberOfDataNodes())] == self.values
        assert (sequence.GetIndexName(), sequence.GetIndexUnit(), sequence.GetIndexType()) == self.index
        for i, frame in enumerate(self.frames):
            frame.assert_unchanged(sequence.GetNthDataNode(i))


def node_ids(scene=None) -> set[str]:
    scene = scene or slicer.mrmlScene
    return {scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())}


def background_of(view: str):
    for composite in slicer.util.getNodesByClass("vtkMRMLSliceCompositeNode"):
        if composite.GetLayoutName() == view:
            return slicer.mrmlScene.GetNodeByID(composite.GetBackgroundVolumeID())
    raise LookupError(view)


def _matrix(directions: np.ndarray) -> vtk.vtkMatrix4x4:
    matrix = vtk.vtkMatrix4x4()
    for row in range(3):
        for column in range(3):
            matrix.SetElement(row, column, float(directions[row, column]))
    return matrix
