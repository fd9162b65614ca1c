"""Write the sample sequences the SADM module registers in Slicer's Sample Data module.

    .venv/bin/python Testing/module/make_sample_data.py

Subjects come from the engine's synthetic generators (the same distribution the bundled demo models
are trained on), written with Slicer's own volume-sequence storage node so Slicer reads them exactly
as it reads any 4D NRRD. Prints the SHA256 of each file: paste them into SAMPLE_DATA in
SADMModule/SADMModule.py (a test checks that they match).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np

REPOSITORY = Path(__file__).resolve().parents[2]
OUTPUT = REPOSITORY / "SADMModule" / "Resources" / "SampleData"
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])
SEED = 20230618  # fixed: the files must not change when regenerated


def cardiac_frames():
    """End-diastole to end-systole of one synthetic cine subject (the paper's cardiac setting), every
    other frame: few enough that future timepoints still fit a 12-frame model."""
    from sadm.phantoms.cardiac import cardiac_subject

    phantom = cardiac_subject(SEED, 0)
    kept = list(range(0, phantom.es_index + 1, 2))
    frames = phantom.frames[kept]
    direction = LPS_TO_RAS @ np.array(phantom.direction, dtype=float).reshape(3, 3)
    origin = LPS_TO_RAS @ np.array(phantom.origin, dtype=float)
    times = [f"{i * phantom.frame_interval_s:.4g}" for i in kept]
    return frames, phantom.spacing, origin, direction, ("time", "s", times)


def brain_frames():
    """Five ages of one synthetic ageing subject (the paper's brain setting)."""
    from sadm.phantoms.brain import brain_subject

    phantom = brain_subject(SEED, 0)
    spacing = (float(phantom.template.spacing_mm),) * 3
    origin = np.array(phantom.template.origin_ras, dtype=float)
    return phantom.frames, spacing, origin, np.eye(3), ("age", "year", [str(age) for age in phantom.ages])


def write_sequence(path: Path, frames, spacing, origin, direction, indexing) -> str:
    import slicer
    import vtk

    scene = slicer.vtkMRMLScene()
    sequence = scene.AddNewNodeByClass("vtkMRMLSequenceNode", path.name.split(".")[0])
    index_name, index_unit, values = indexing
    sequence.SetIndexName(index_name)
    sequence.SetIndexUnit(index_unit)
    directions = vtk.vtkMatrix4x4()
    for row in range(3):
        for column in range(3):
            directions.SetElement(row, column, float(direction[row, column]))
    for frame, value in zip(frames, values):
        volume = slicer.vtkMRMLScalarVolumeNode()
        slicer.util.updateVolumeFromArray(volume, np.ascontiguousarray(frame))
        volume.SetSpacing(*spacing)
        volume.SetOrigin(*origin)
        volume.SetIJKToRASDirectionMatrix(directions)
        sequence.SetDataNodeAtValue(volume, value)
    storage = slicer.vtkMRMLVolumeSequenceStorageNode()
    storage.SetScene(scene)
    storage.SetFileName(str(path))
    storage.SetUseCompression(True)
    if not storage.WriteData(sequence):
        raise RuntimeError(f"could not write {path}")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> int:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    for name, make in (("SADMCardiacSynthetic", cardiac_frames), ("SADMBrainSynthetic", brain_frames)):
        path = OUTPUT / f"{name}.seq.nrrd"
        digest = write_sequence(path, *make())
        print(f'("{name}", "{path.name}", "{digest}"),  # {path.stat().st_size / 2**20:.2f} MiB')
    return 0


if __name__ == "__main__":
    sys.exit(main())
