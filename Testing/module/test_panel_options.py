"""The panel's request options are one object, the engine's SamplingOptions (ARCHITECTURE.md, "Where to
add"): the sampler list, its tooltip and each sampler's steps come from the sampler catalogue; a new
sampler shows in the CLI and the panel once registered; a new panel option is a widget and a parameter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
import pytest
import qt
import slicer
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer_scenes import blob_frames, sequence_node

import SADMModule
from sadm.cli.main import main
from sadm.diffusion import samplers
from sadm.diffusion.catalogue import CATALOGUE, SamplerSetting, SamplerSpec, catalogue_text, sampler_names
from sadm.errors import SADMError
from sadm.generation.engine import Engine
from sadm.generation.request import build_request
from sadm.io.sequence import Geometry
from sadm.io.writers import write_volume
from slicerharness import eventloop


def toy_sampler(eps_fn, z, log_snrs, *, clip_denoised=True, generator=None, callback=None, gain):
    """DDIM with a gain on its result (in [0, 1], so frames stay in range)."""
    return samplers.sample_ddim(eps_fn, z, log_snrs, clip_denoised=clip_denoised, callback=callback) * gain


TOY = SamplerSpec(
    name="toy",
    function=toy_sampler,
    default_steps=3,
    grid="cosine",
    stochastic=False,
    summary="a toy for the tests",
    settings=(SamplerSetting("gain", 1.0, 0.0, 1.0, "what the frame is scaled by"),),
)


@pytest.fixture
def toy(monkeypatch):
    """The toy sampler registered, as `register(TOY)` beside it would (undone after the test)."""
    monkeypatch.setitem(CATALOGUE, TOY.name, TOY)
    return TOY


@pytest.fixture
def widget(scene, qapp, tiny_model, monkeypatch):
    monkeypatch.setenv("SADM_MODEL_PATH", str(Path(tiny_model).parent))
    panel = SADMModule.SADMModuleWidget()
    eventloop.process_events()
    yield panel
    panel.cleanup()
    panel.parent.deleteLater()
    eventloop.process_events()


def combo_items(combo) -> list[str]:
    return [combo.itemText(i) for i in range(combo.count())]


def choose(combo, text: str) -> None:
    index = combo.findText(text)
    combo.setCurrentIndex(index)
    combo.activated.emit(index)


def spy_on_prepare(panel, monkeypatch) -> list[dict]:
    """Generate's request keywords, stopped before any work."""
    seen = []

    def prepare(*args, **kwargs):
        seen.append(kwargs)
        raise SADMError("stop here")

    monkeypatch.setattr(panel.logic, "prepareRequest", prepare)
    panel._parameterNode.inputSequence = sequence_node(blob_frames(2), "heart")
    panel._parameterNode.model = "tiny"
    return seen


def test_the_sampler_list_tooltip_and_steps_read_the_catalogue(widget):
    assert combo_items(widget.ui.samplerSelector) == sampler_names()
    assert widget.ui.samplerSelector.toolTip() == catalogue_text()
    for name in sampler_names():
        choose(widget.ui.samplerSelector, name)
        assert widget._parameterNode.steps == CATALOGUE[name].default_steps


def test_the_samplers_settings_reach_the_request_from_the_panel(widget, monkeypatch):
    seen = spy_on_prepare(widget, monkeypatch)
    choose(widget.ui.samplerSelector, "dpm++2m")
    widget.ui.samplerOptionsLineEdit.setText("eta=0.5")
    widget.ui.generateButton.click()
    assert seen[-1]["sampler"] == "dpm++2m" and seen[-1]["sampler_options"] == "eta=0.5"
    widget._parameterNode.samplerOptions = "v=0.2"  # from elsewhere (a loaded scene): the field follows
    assert widget.ui.samplerOptionsLineEdit.text() == "v=0.2"


def test_a_toy_sampler_registered_in_the_catalogue_reaches_the_cli_and_the_panel(
    toy, scene, qapp, tiny_model, tmp_path, capsys
):
    """One `register` call: `sadm generate --sampler toy --sampler-option gain=...` lists and runs it,
    and the panel lists it with its steps and settings in the tooltip."""
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    listed = " ".join(capsys.readouterr().out.split())
    assert "--sampler {ancestral,ddim,dpm++2m,toy}" in listed and "toy (3 steps): a toy for the tests" in listed

    identity = Geometry((1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    write_volume(tmp_path / "frame.nrrd", blob_frames(1)[0], identity)
    out = tmp_path / "out"
    options = ["--sampler", "toy", "--sampler-option", "gain=0.5", "--future", "1", "--no-progress"]
    assert (
        main(["generate", "--model", tiny_model, "--input", str(tmp_path / "frame.nrrd"), "--out", str(out), *options])
        == 0
    )
    record = json.loads((out / "generation.json").read_text(encoding="utf-8"))
    assert (record["sampler"], record["steps"], record["sampler_settings"]) == ("toy", 3, {"gain": 0.5})

    panel = SADMModule.SADMModuleWidget()
    try:
        assert "toy" in combo_items(panel.ui.samplerSelector)
        assert "toy (3 steps): a toy for the tests; gain in [0, 1]" in panel.ui.samplerSelector.toolTip()
        choose(panel.ui.samplerSelector, "toy")
        assert (panel._parameterNode.sampler, panel._parameterNode.steps) == ("toy", 3)
    finally:
        panel.cleanup()


def test_a_toy_panel_option_is_a_widget_and_a_parameter(scene, qapp, tiny_model, monkeypatch):
    """The toy option: SamplingOptions.batch_guidance, not on the panel. Adding it takes a widget whose
    SlicerParameterName names it (here added to the loaded .ui) and a parameter-node field of that name
    (here the module's parameter node plus that one field); no code of the panel or the Logic changes."""
    base = SADMModule.SADMModuleParameterNode
    namespace = {name: field[3] for name, field in base.allParameters.items()}
    namespace.update(__module__="SADMModule", batchGuidance=True)
    namespace["__annotations__"] = {**base.__annotations__, "batchGuidance": Annotated[bool, "toy"]}
    monkeypatch.setattr(SADMModule, "SADMModuleParameterNode", parameterNodeWrapper(type("Toy", (), namespace)))

    loadUI = slicer.util.loadUI

    def withToyWidget(path):
        ui = loadUI(path)
        box = qt.QCheckBox("Batch guidance", ui)
        box.setObjectName("batchGuidanceCheckBox")
        box.setProperty("SlicerParameterName", "batchGuidance")
        return ui

    monkeypatch.setattr(slicer.util, "loadUI", withToyWidget)
    monkeypatch.setenv("SADM_MODEL_PATH", str(Path(tiny_model).parent))
    panel = SADMModule.SADMModuleWidget()
    try:
        seen = spy_on_prepare(panel, monkeypatch)
        panel.ui.generateButton.click()
        panel.ui.batchGuidanceCheckBox.setChecked(False)
        panel.ui.generateButton.click()
        assert [kwargs["batch_guidance"] for kwargs in seen] == [True, False]
        assert panel._parameterNode.batchGuidance is False
    finally:
        panel.cleanup()


def test_the_toy_sampler_runs_in_the_engine(toy, tiny_model):
    frames = [np.random.default_rng(0).random((8, 16, 16)).astype(np.float32), None]
    result = Engine.load(tiny_model, "cpu").generate(
        frames, build_request("o,m", 2, sampler="toy", sampler_options={"gain": 0.0})
    )
    assert result.request.sampling.steps == 3 and result.mean[1].shape == (8, 16, 16)
