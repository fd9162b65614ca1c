"""The Logic on the real MRML scene of the slicer-core wheel: what a user gets from a Sequence or a
list of volumes, on exactly the input's grid, with the input untouched."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
import SADMModuleLib.outputs
import slicer
import torch
import vtk
from slicer_scenes import (
    SHAPE,
    SequenceSnapshot,
    VolumeSnapshot,
    background_of,
    blob_frames,
    ijk_to_ras,
    node_ids,
    oblique_geometry,
    sequence_node,
    volume_node,
)

import SADMModule
from SADMModule import FUTURE, MISSING, OBSERVED, GenerationCancelled

STEPS = 2


def test_sequence_input_generates_missing_and_future_frames_on_the_oblique_input_grid(scene, logic, tiny_model):
    frames = blob_frames(4)
    sequence = sequence_node(frames, "heart", **oblique_geometry())
    before = SequenceSnapshot.of(sequence)
    reference = ijk_to_ras(sequence.GetNthDataNode(0))

    outputs = logic.generate(
        sequence, [OBSERVED, MISSING, OBSERVED, OBSERVED, FUTURE], model=tiny_model, steps=STEPS, seed=3
    )

    assert [node.GetName() for node in outputs.volumes] == ["heart_SADM_t1", "heart_SADM_t4"]
    low, high = (
        min(f.min() for f in (frames[0], frames[2], frames[3])),
        max(f.max() for f in (frames[0], frames[2], frames[3])),
    )
    for volume, index in zip(outputs.volumes, (1, 4)):
        voxels = slicer.util.arrayFromVolume(volume)
        assert voxels.shape == SHAPE and voxels.dtype == np.float32
        assert np.all(np.isfinite(voxels)) and low - 1e-3 <= voxels.min() and voxels.max() <= high + 1e-3
        assert np.array_equal(ijk_to_ras(volume), reference)  # exactly, not approximately
        assert volume.GetSpacing() == sequence.GetNthDataNode(0).GetSpacing()
        assert volume.GetAttribute("SADM.Timepoint") == str(index)
        assert volume.GetAttribute("SADM.Sampler") == "ddim"
        assert volume.GetAttribute("SADM.Steps") == str(STEPS)
        assert volume.GetAttribute("SADM.Seed") == "3"
        assert volume.GetAttribute("SADM.Model") == "tiny"
        assert volume.GetDisplayNode() is not None
    before.assert_unchanged(sequence)
    assert sequence.GetNumberOfDataNodes() == 4


def test_output_sequence_holds_observed_and_generated_frames_in_order_with_an_active_browser(scene, logic, tiny_model):
    frames = blob_frames(3)
    sequence = sequence_node(frames, "heart", index_values=["0", "40", "80"], **oblique_geometry())

    outputs = logic.generate(sequence, [OBSERVED, OBSERVED, OBSERVED, FUTURE, FUTURE], model=tiny_model, steps=STEPS)

    output = outputs.sequence
    assert output.GetName() == "heart_SADM"
    assert [output.GetNthIndexValue(i) for i in range(output.GetNumberOfDataNodes())] == ["0", "40", "80", "120", "160"]
    assert (output.GetIndexName(), output.GetIndexUnit()) == ("time", "ms")
    for t in range(3):
        assert np.array_equal(slicer.util.arrayFromVolume(output.GetNthDataNode(t)), frames[t])
    for t, generated in zip((3, 4), outputs.volumes):
        assert np.array_equal(
            slicer.util.arrayFromVolume(output.GetNthDataNode(t)), slicer.util.arrayFromVolume(generated)
        )
        assert np.array_equal(ijk_to_ras(output.GetNthDataNode(t)), ijk_to_ras(sequence.GetNthDataNode(0)))

    browser = outputs.browser
    assert browser.GetMasterSequenceNode() is output
    assert browser.IsSynchronizedSequenceNodeID(sequence.GetID())
    assert not browser.GetSaveChanges(sequence)  # scrubbing never writes into the input
    assert slicer.modules.sequences.toolBar().activeBrowserNode() is browser
    assert browser.GetSelectedItemNumber() == 3  # opens on the first generated frame
    assert slicer.app.layoutManager().layout() == slicer.vtkMRMLLayoutNode.SlicerLayoutSideBySideView
    assert background_of("Red") is outputs.inputProxy
    assert background_of("Yellow") is outputs.outputProxy

    browser.SetSelectedItemNumber(4)  # a future frame: the input view keeps its last frame
    assert np.array_equal(
        slicer.util.arrayFromVolume(outputs.outputProxy), slicer.util.arrayFromVolume(outputs.volumes[1])
    )
    assert np.array_equal(slicer.util.arrayFromVolume(outputs.inputProxy), frames[2])
    assert sequence.GetNumberOfDataNodes() == 3


def test_volume_list_input_keeps_its_order_and_gets_an_input_sequence_to_compare_with(scene, logic, tiny_model):
    frames = blob_frames(3)
    volumes = [volume_node(frame, f"knee_t{t}", **oblique_geometry()) for t, frame in enumerate(frames)]
    snapshots = [VolumeSnapshot.of(v) for v in volumes]

    outputs = logic.generate(volumes, [OBSERVED, OBSERVED, MISSING, FUTURE], model=tiny_model, steps=STEPS)

    assert [v.GetName() for v in outputs.volumes] == ["knee_SADM_t2", "knee_SADM_t3"]
    assert outputs.sequence.GetNumberOfDataNodes() == 4
    assert np.array_equal(slicer.util.arrayFromVolume(outputs.sequence.GetNthDataNode(1)), frames[1])
    assert outputs.inputSequence.GetName() == "knee_SADM_input"
    assert outputs.inputSequence.GetNumberOfDataNodes() == 3
    assert outputs.browser.IsSynchronizedSequenceNodeID(outputs.inputSequence.GetID())
    for volume, snapshot in zip(volumes, snapshots):
        snapshot.assert_unchanged(volume)
    for volume in outputs.volumes:
        assert np.array_equal(ijk_to_ras(volume), ijk_to_ras(volumes[0]))


def test_frames_on_another_grid_are_resampled_onto_frame_0_and_the_user_is_told(scene, logic, tiny_model):
    """A world-linear intensity ramp survives linear resampling exactly, so the check is sharp."""
    geometry = oblique_geometry()
    reference = volume_node(np.zeros(SHAPE, np.float32), "brain_t0", **geometry)
    ijk = np.stack(np.meshgrid(*(np.arange(n) for n in SHAPE[::-1]), indexing="ij"), -1)  # (i, j, k, 3)

    def ramp_on(node, shape_kji):
        grid = np.stack(np.meshgrid(*(np.arange(n) for n in shape_kji[::-1]), indexing="ij"), -1).reshape(-1, 3)
        ras = np.c_[grid, np.ones(len(grid))] @ ijk_to_ras(node).T
        values = 2.0 * ras[:, 0] - 0.5 * ras[:, 1] + 3.0 * ras[:, 2]
        return values.reshape(shape_kji[::-1]).transpose(2, 1, 0).astype(np.float32)

    slicer.util.updateVolumeFromArray(reference, ramp_on(reference, SHAPE))
    # Frame 1: twice as fine in-plane, shifted origin, same directions; covers frame 0 entirely.
    fine_shape = (SHAPE[0] + 2, SHAPE[1] * 2 + 2, SHAPE[2] * 2 + 2)
    origin = np.array(geometry["origin"]) - geometry["directions"] @ (np.array([0.35, 0.55, 3.0]))
    finer = volume_node(
        np.zeros(fine_shape, np.float32),
        "brain_t1",
        spacing=(0.35, 0.55, 3.0),
        origin=origin,
        directions=geometry["directions"],
    )
    slicer.util.updateVolumeFromArray(finer, ramp_on(finer, fine_shape))

    request = logic.prepareRequest([reference, finer], [OBSERVED, OBSERVED, FUTURE], model=tiny_model, steps=STEPS)

    assert request.resampled == {1}
    assert request.notes[0].startswith(
        "Frame 1 (brain_t1) is on another voxel grid than frame 0 (brain_t0): size 26×22×8 vs 12×10×6"
    )
    assert "resampled onto frame 0's grid" in request.notes[0]
    expected = slicer.util.arrayFromVolume(reference)
    np.testing.assert_allclose(request.frames[1], expected, rtol=0, atol=1e-3 * np.abs(expected).max())
    assert ijk.shape[:3] == SHAPE[::-1]

    outputs = logic.createOutputNodes(request, logic.runRequest(request))
    stored = slicer.util.arrayFromVolume(outputs.sequence.GetNthDataNode(1))
    assert stored.shape == SHAPE and np.array_equal(
        ijk_to_ras(outputs.sequence.GetNthDataNode(1)), ijk_to_ras(reference)
    )


def test_several_samples_give_the_mean_and_a_standard_deviation_map(scene, logic, tiny_model):
    sequence = sequence_node(blob_frames(2), "heart", **oblique_geometry())

    outputs = logic.generate(
        sequence, [OBSERVED, OBSERVED, FUTURE], model=tiny_model, sampler="ancestral", steps=STEPS, samples=3, seed=1
    )

    (mean,), (std,) = outputs.volumes, outputs.stdMaps
    assert (mean.GetName(), std.GetName()) == ("heart_SADM_t2", "heart_SADM_t2_std")
    assert mean.GetAttribute("SADM.Statistic") == "mean" and std.GetAttribute("SADM.Statistic") == "std"
    assert std.GetAttribute("SADM.Samples") == "3"
    spread = slicer.util.arrayFromVolume(std)
    assert spread.shape == SHAPE and spread.min() >= 0 and spread.max() > 0  # ancestral draws differ
    assert np.array_equal(ijk_to_ras(std), ijk_to_ras(mean))


def test_the_sigma_maps_follow_the_timepoint_over_the_generated_frames(scene, logic, tiny_model):
    """Issue 28: the σ map is shown where users look — over the generated frame in the side-by-side
    view, a colour table Slicer has, half transparent, nothing over the observed frames (σ 0)."""
    sequence = sequence_node(blob_frames(2), "heart", **oblique_geometry())
    outputs = logic.generate(
        sequence, [OBSERVED, OBSERVED, FUTURE], model=tiny_model, sampler="ancestral", steps=STEPS, samples=2, seed=1
    )
    spread = outputs.spreadSequence
    assert spread.GetName() == "heart_SADM_sigma" and spread.GetNumberOfDataNodes() == 3
    assert not slicer.util.arrayFromVolume(spread.GetNthDataNode(0)).any()  # observed: known
    assert np.array_equal(
        slicer.util.arrayFromVolume(spread.GetNthDataNode(2)), slicer.util.arrayFromVolume(outputs.stdMaps[0])
    )
    yellow = next(c for c in slicer.util.getNodesByClass("vtkMRMLSliceCompositeNode") if c.GetLayoutName() == "Yellow")
    assert yellow.GetForegroundVolumeID() == outputs.spreadProxy.GetID() and yellow.GetForegroundOpacity() == 0.5
    display = outputs.spreadProxy.GetDisplayNode()
    assert display.GetColorNodeID() == "vtkMRMLColorTableNodeRainbow"  # Inferno where Slicer loaded its files
    assert display.GetApplyThreshold() and 0 < display.GetLowerThreshold() < display.GetWindowLevelMax()
    assert np.array_equal(ijk_to_ras(outputs.spreadProxy), ijk_to_ras(outputs.stdMaps[0]))

    hidden = logic.generate(
        sequence, [OBSERVED, OBSERVED, FUTURE], model=tiny_model, steps=STEPS, samples=2, seed=1, showSpread=False
    )
    assert hidden.spreadSequence is not None and yellow.GetForegroundVolumeID() is None


def test_same_seed_same_result_and_the_model_stays_loaded(scene, logic, tiny_model):
    sequence = sequence_node(blob_frames(2), "heart")
    first = logic.generate(
        sequence, [OBSERVED, OBSERVED, FUTURE], model=tiny_model, steps=STEPS, seed=7, showResult=False
    )
    engine = logic.engineFor(tiny_model, "cpu")
    second = logic.generate(
        sequence, [OBSERVED, OBSERVED, FUTURE], model=tiny_model, steps=STEPS, seed=7, showResult=False
    )

    assert logic.engineFor(tiny_model, "cpu") is engine
    assert np.array_equal(slicer.util.arrayFromVolume(first.volumes[0]), slicer.util.arrayFromVolume(second.volumes[0]))


def test_cancel_stops_within_a_step_and_adds_no_node(scene, logic, tiny_model):
    sequence = sequence_node(blob_frames(3), "heart", **oblique_geometry())
    before = node_ids()
    cancel = threading.Event()
    steps_seen = []

    def progress(done, total, frame):
        steps_seen.append(done)
        if done == 2:
            cancel.set()

    with pytest.raises(GenerationCancelled):
        logic.generate(
            sequence,
            [OBSERVED, MISSING, OBSERVED, FUTURE],
            model=tiny_model,
            steps=50,
            progress=progress,
            cancel=cancel,
        )

    assert steps_seen == [1, 2]
    assert node_ids() == before


@pytest.mark.parametrize("process", [True, False], ids=["worker process", "worker thread"])
def test_a_background_run_reports_progress_and_nodes_are_created_on_the_main_thread(scene, logic, tiny_model, process):
    logic.useWorkerProcess = process
    sequence = sequence_node(blob_frames(2), "heart")
    request = logic.prepareRequest(sequence, [OBSERVED, MISSING, FUTURE], model=tiny_model, steps=3)
    before = node_ids()

    run = logic.startGeneration(request)
    run.wait(timeout=120)
    events = run.poll()

    assert node_ids() == before  # the worker added nothing
    progress = [payload for kind, payload in events if kind == "progress"]
    assert [done for done, _, _ in progress] == list(range(1, 7))
    assert {frame for _, _, frame in progress} == {1, 2} and progress[-1][1] == 6
    assert run.outcome == "done" and set(run.result) == {1, 2}
    outputs = logic.createOutputNodes(request, run.result)
    assert len(outputs.volumes) == 2 and node_ids() > before
    assert isinstance(run, SADMModule.WorkerRun if process else SADMModule.GenerationRun)
    if process:
        worker = logic._worker
        assert worker.running and worker.loads == 1
        logic.startGeneration(request).wait(timeout=120)
        assert logic._worker is worker and worker.loads == 1  # warm: the model stayed loaded
        logic.shutdownWorker()
        assert not worker.running and logic._worker is None


def test_cuda_out_of_memory_is_explained_and_leaves_the_scene_unchanged(scene, logic, tiny_model, monkeypatch):
    import torch

    from sadm.generation.engine import Engine

    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(Engine, "generate", out_of_memory)
    sequence = sequence_node(blob_frames(2), "heart")
    before = node_ids()

    with pytest.raises(SADMModule.SADMResourceError, match=r"ran out of memory.*Lower Samples \(now 4\).*'cpu'"):
        logic.generate(sequence, [OBSERVED, OBSERVED, FUTURE], model=tiny_model, steps=STEPS, samples=4)
    assert node_ids() == before


def test_failure_while_adding_outputs_removes_what_was_added(scene, logic, tiny_model, monkeypatch):
    sequence = sequence_node(blob_frames(2), "heart")
    request = logic.prepareRequest(sequence, [OBSERVED, OBSERVED, FUTURE], model=tiny_model, steps=STEPS)
    result = logic.runRequest(request)
    before = node_ids()

    def broken_browser(*args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(SADMModuleLib.outputs, "addBrowser", broken_browser)
    with pytest.raises(RuntimeError, match="disk full"):
        logic.createOutputNodes(request, result)
    assert node_ids() == before


def test_cpu_device_line_estimates_time_from_the_last_run(scene, logic, tiny_model):
    line = logic.describeDevice("cpu", tiny_model, targets=2, steps=10, samples=1)
    assert line.startswith("CPU") and "slow, expect ~" in line
    sequence = sequence_node(blob_frames(2), "heart")
    logic.generate(sequence, [OBSERVED, OBSERVED, FUTURE], model=tiny_model, steps=4, showResult=False)
    measured = logic.estimateSeconds(tiny_model, "cpu", targets=1, steps=4, samples=1)
    modelled = SADMModule._cpuSecondsPerStep(logic.resolveModel(tiny_model)[1], torch.get_num_threads()) * 4
    assert math.isfinite(measured) and measured > 0 and measured != modelled  # the run's speed, not the cost model
    assert logic.estimateSeconds(tiny_model, "cpu", targets=2, steps=8, samples=3) == pytest.approx(12 * measured)


def test_linear_parent_transform_is_followed_when_comparing_grids(scene, logic, tiny_model):
    """Two copies of one volume, one moved by a transform: different in world space, so resampled."""
    frames = blob_frames(2)
    first = volume_node(frames[0], "a_t0")
    second = volume_node(frames[1], "a_t1")
    transform = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    shift = vtk.vtkMatrix4x4()
    shift.SetElement(0, 3, 2.0)
    transform.SetMatrixTransformToParent(shift)
    second.SetAndObserveTransformNodeID(transform.GetID())

    request = logic.prepareRequest([first, second], [OBSERVED, OBSERVED, FUTURE], model=tiny_model, steps=STEPS)

    assert request.resampled == {1} and "origin (" in request.notes[0]
    # voxel i of frame 0 sits where voxel i-2 of the moved frame is
    np.testing.assert_allclose(request.frames[1][:, :, 4:], frames[1][:, :, 2:-2].astype(np.float32))


def test_console_times_place_frames_at_ages_and_label_the_output(scene, logic, continuous_time_model):
    frames = blob_frames(3)
    volumes = [volume_node(frame, f"brain_t{t}") for t, frame in enumerate(frames)]
    roles = [OBSERVED, OBSERVED, OBSERVED, FUTURE]
    at_78 = logic.generate(volumes, roles, model=continuous_time_model, steps=STEPS, times=[61, 64.5, 70, 78])
    values = [at_78.sequence.GetNthIndexValue(i) for i in range(4)]
    assert values == ["61", "64.5", "70", "78"]
    request = logic.prepareRequest(volumes, roles, model=continuous_time_model, steps=STEPS, times=[61, 64.5, 70, 90])
    assert request.times == (61.0, 64.5, 70.0, 90.0)  # what the engine embeds


def test_a_continuous_time_model_without_times_says_how_to_give_them(scene, logic, continuous_time_model):
    volumes = [volume_node(frame, f"brain_t{t}") for t, frame in enumerate(blob_frames(2))]
    before = node_ids(scene)
    with pytest.raises(Exception, match="times"):
        logic.generate(volumes, [OBSERVED, OBSERVED, FUTURE], model=continuous_time_model, steps=STEPS)
    with pytest.raises(ValueError, match="increase strictly"):
        logic.generate(
            volumes, [OBSERVED, OBSERVED, FUTURE], model=continuous_time_model, steps=STEPS, times=[70, 65, 80]
        )
    with pytest.raises(ValueError, match="2 value\\(s\\) but there are 3 timepoint\\(s\\)"):
        logic.generate(volumes, [OBSERVED, OBSERVED, FUTURE], model=continuous_time_model, steps=STEPS, times=[70, 75])
    assert node_ids(scene) == before
