"""Every bad input raises from the console API with a message naming the bad value and the fix, and
leaves the scene exactly as it was."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest
import slicer
import vtk
from slicer_scenes import blob_frames, node_ids, oblique_geometry, sequence_node, volume_node

from sadm.devices import estimate_gpu_memory_bytes
from SADMModule import (
    FUTURE,
    MISSING,
    OBSERVED,
    CheckpointError,
    InvalidRolesError,
    SADMDependencyError,
    SADMInputError,
    SADMResourceError,
)


@pytest.fixture
def heart(scene):
    return sequence_node(blob_frames(3), "heart", **oblique_geometry())


def rejects(logic, inputs, roles, error, match, **options):
    """generate() raises `error` matching `match`, and the scene keeps exactly its nodes."""
    before = node_ids()
    with pytest.raises(error, match=match):
        logic.generate(inputs, roles, **{"steps": 2, **options})
    assert node_ids() == before


@pytest.mark.parametrize("nothing", [None, []])
def test_no_input_selected(scene, logic, tiny_model, nothing):
    rejects(logic, nothing, [OBSERVED, FUTURE], SADMInputError, "no input selected", model=tiny_model)


def test_label_map_is_not_an_image(scene, logic, tiny_model):
    labels = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "segmentation")
    slicer.util.updateVolumeFromArray(labels, np.zeros((4, 5, 6), np.uint8))
    image = volume_node(blob_frames(1)[0], "image")
    rejects(
        logic,
        [image, labels],
        [OBSERVED, OBSERVED, FUTURE],
        SADMInputError,
        r"frame 1 \(segmentation\) is a label map",
        model=tiny_model,
    )


def test_rgb_sequence_is_not_scalar(scene, logic, tiny_model):
    """Issue 29 defect 12: a truly coloured sequence is refused, naming the module that converts it."""
    sequence = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSequenceNode", "colour video")
    for t in range(2):
        rgb = slicer.vtkMRMLVectorVolumeNode()
        colour = np.zeros((1, 8, 8, 3), np.uint8)
        colour[..., 0] = 200  # red
        slicer.util.updateVolumeFromArray(rgb, colour)
        sequence.SetDataNodeAtValue(rgb, str(t))
    rejects(
        logic,
        sequence,
        [OBSERVED, OBSERVED, FUTURE],
        SADMInputError,
        r"frame 0 .* is a colour image \(vtkMRMLVectorVolumeNode, 3 components.*Vector to Scalar Volume module",
        model=tiny_model,
    )


def test_grey_stored_as_rgb_is_read_as_scalar_with_a_note(scene, logic, tiny_model):
    """Issue 29 defect 12: an echocardiography cine from DICOM is an RGB sequence whose channels are equal."""
    frames = blob_frames(2)
    grey = sequence_node(frames, "echo grey")
    sequence = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSequenceNode", "echo")
    for t, frame in enumerate(frames):
        rgb = slicer.vtkMRMLVectorVolumeNode()
        rgb.SetName(f"echo_{t}")
        slicer.util.updateVolumeFromArray(rgb, np.repeat(frame[..., None], 3, axis=-1))
        sequence.SetDataNodeAtValue(rgb, str(40 * t))
    request = logic.prepareRequest(sequence, [OBSERVED, OBSERVED, FUTURE], model=tiny_model, steps=2)
    expected = logic.prepareRequest(grey, [OBSERVED, OBSERVED, FUTURE], model=tiny_model, steps=2)
    assert [f.shape for f in request.frames[:2]] == [frames[0].shape] * 2
    assert all(np.array_equal(a, b) for a, b in zip(request.frames[:2], expected.frames[:2]))
    assert any("RGB (vector) image whose channels are equal" in note for note in request.notes), request.notes
    outputs = logic.generate(sequence, [OBSERVED, OBSERVED, FUTURE], model=tiny_model, steps=2, showResult=False)
    assert slicer.util.arrayFromVolume(outputs.volumes[0]).shape == frames[0].shape


def test_empty_sequence(scene, logic, tiny_model):
    empty = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSequenceNode", "empty")
    rejects(logic, empty, [OBSERVED, FUTURE], SADMInputError, "'empty' has no items", model=tiny_model)


def test_frame_that_does_not_overlap_frame_0_cannot_be_resampled(scene, logic, tiny_model):
    frames = blob_frames(2)
    here = volume_node(frames[0], "here")
    far = volume_node(frames[1], "far away", origin=(500.0, 0.0, 0.0))
    rejects(
        logic,
        [here, far],
        [OBSERVED, OBSERVED, FUTURE],
        SADMInputError,
        r"frame 1 \(far away\) does not overlap frame 0",
        model=tiny_model,
    )


def test_frame_under_a_non_linear_transform_cannot_be_resampled(scene, logic, tiny_model):
    frames = blob_frames(2)
    first, second = volume_node(frames[0], "a"), volume_node(frames[1], "b")
    warp = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLTransformNode", "warp")
    spline = vtk.vtkThinPlateSplineTransform()
    source, target = vtk.vtkPoints(), vtk.vtkPoints()
    for point, moved in (
        ((0, 0, 0), (0, 0, 0)),
        ((10, 0, 0), (11, 1, 0)),
        ((0, 10, 0), (0, 10, 2)),
        ((0, 0, 10), (1, 0, 10)),
    ):
        source.InsertNextPoint(*point)
        target.InsertNextPoint(*moved)
    spline.SetSourceLandmarks(source)
    spline.SetTargetLandmarks(target)
    warp.SetAndObserveTransformToParent(spline)
    second.SetAndObserveTransformNodeID(warp.GetID())
    rejects(
        logic,
        [first, second],
        [OBSERVED, OBSERVED, FUTURE],
        SADMInputError,
        "non-linear transform warp.*harden the transform",
        model=tiny_model,
    )


def test_first_timepoint_not_observed(heart, logic, tiny_model):
    rejects(
        logic,
        heart,
        [MISSING, OBSERVED, OBSERVED, FUTURE],
        InvalidRolesError,
        r"roles\[0\] must be 'observed'",
        model=tiny_model,
    )


def test_nothing_to_generate(heart, logic, tiny_model):
    rejects(logic, heart, [OBSERVED] * 3, InvalidRolesError, "nothing to generate", model=tiny_model)


def test_future_timepoint_before_an_observed_one(heart, logic, tiny_model):
    rejects(
        logic,
        heart,
        [OBSERVED, FUTURE, OBSERVED],
        InvalidRolesError,
        r"future frame\(s\) \[1\] come before frame 2",
        model=tiny_model,
    )


def test_more_timepoints_than_the_model_supports(heart, logic, tiny_model):
    rejects(
        logic,
        heart,
        [OBSERVED] * 3 + [FUTURE] * 4,
        InvalidRolesError,
        "7 frames but this model supports at most 6",
        model=tiny_model,
    )


def test_roles_must_cover_every_input_frame(heart, logic, tiny_model):
    rejects(
        logic,
        heart,
        [OBSERVED, FUTURE],
        InvalidRolesError,
        r"roles gives 2 role\(s\) but the input has 3 frame\(s\)",
        model=tiny_model,
    )


def test_timepoints_after_the_input_can_only_be_future(heart, logic, tiny_model):
    rejects(
        logic,
        heart,
        [OBSERVED, OBSERVED, OBSERVED, MISSING],
        InvalidRolesError,
        r"timepoint\(s\) \[3\] come after the 3 input frame\(s\), so they can only be .future.",
        model=tiny_model,
    )


def test_unknown_role_word(heart, logic, tiny_model):
    rejects(
        logic, heart, [OBSERVED, "predicted", FUTURE], InvalidRolesError, r"roles\[1\] is 'predicted'", model=tiny_model
    )


def test_folder_that_is_not_a_model(heart, logic, tmp_path):
    rejects(logic, heart, [OBSERVED, OBSERVED, FUTURE], CheckpointError, "has no config.json", model=str(tmp_path))


def test_unknown_bundled_model_name(heart, logic):
    rejects(
        logic,
        heart,
        [OBSERVED, OBSERVED, FUTURE],
        CheckpointError,
        "no model folder or bundled model named 'nope'",
        model="nope",
    )


def test_model_folder_whose_weights_fail_to_load(heart, logic, tiny_model, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated download
    rejects(logic, heart, [OBSERVED, OBSERVED, FUTURE], CheckpointError, "truncated", model=str(broken))


def test_model_folder_from_a_newer_format(heart, logic, tiny_model, tmp_path):
    future = tmp_path / "future"
    shutil.copytree(tiny_model, future)
    config = json.loads((future / "config.json").read_text(encoding="utf-8"))
    config["format_version"] = 99
    (future / "config.json").write_text(json.dumps(config), encoding="utf-8")
    rejects(logic, heart, [OBSERVED, OBSERVED, FUTURE], CheckpointError, "format_version 99", model=str(future))


def test_torch_missing_names_the_exact_fix(heart, logic, tiny_model, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now fails as on a fresh Slicer
    rejects(
        logic,
        heart,
        [OBSERVED, OBSERVED, FUTURE],
        SADMDependencyError,
        r"PyTorch is not installed.*PyTorchUtilsLogic\(\)\.installTorch\(askConfirmation=True, "
        r"torchVersionRequirement='>=2.1'\)",
        model=tiny_model,
    )


def test_other_missing_package_names_the_pip_command(heart, logic, tiny_model, monkeypatch):
    monkeypatch.setitem(sys.modules, "einops", None)
    rejects(
        logic,
        heart,
        [OBSERVED, OBSERVED, FUTURE],
        SADMDependencyError,
        r"slicer\.util\.pip_install\('einops>=0\.7'\)",
        model=tiny_model,
    )


def test_cuda_requested_without_a_usable_gpu(heart, logic, tiny_model):
    rejects(
        logic,
        heart,
        [OBSERVED, OBSERVED, FUTURE],
        SADMResourceError,
        r"torch\.cuda\.is_available\(\) is False.*PyTorch Util module.*'cpu'",
        model=tiny_model,
        device="cuda",
    )


def test_unknown_device_name(heart, logic, tiny_model):
    rejects(
        logic,
        heart,
        [OBSERVED, OBSERVED, FUTURE],
        SADMResourceError,
        "device 'gpu' is unknown",
        model=tiny_model,
        device="gpu",
    )


@pytest.mark.parametrize(
    "option, match",
    [
        ({"sampler": "euler"}, "sampler 'euler' is unknown"),
        ({"steps": 0}, "steps must be at least 1"),
        ({"samples": 0}, "samples must be at least 1"),
        ({"guidance": float("nan")}, "guidance w must be a finite number"),
    ],
)
def test_bad_sampling_settings(heart, logic, tiny_model, option, match):
    rejects(logic, heart, [OBSERVED, OBSERVED, FUTURE], ValueError, match, model=tiny_model, **option)


def test_gpu_memory_estimate_refuses_what_cannot_fit(heart, logic, tiny_model, monkeypatch):
    """Without a GPU here, the CUDA queries are replaced by a small card; the refusal logic is real."""
    import torch

    from sadm.storage.checkpoint import read_config

    config = read_config(tiny_model)
    free = estimate_gpu_memory_bytes(tiny_model, config, 5)  # room for exactly five samples
    monkeypatch.setattr(logic, "resolveDevice", lambda device: "cuda")
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda index=0: (free, 8 * 2**30))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Small GPU")
    rejects(
        logic,
        heart,
        [OBSERVED, OBSERVED, OBSERVED, FUTURE],
        SADMResourceError,
        r"needs about .* GB of GPU memory but Small GPU has .* GB free of 8\.0 GB\. Lower Samples to 5 or less",
        model=tiny_model,
        samples=6,
        device="cuda",
    )
