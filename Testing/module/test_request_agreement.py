"""`sadm generate` and the Slicer Logic build one GenerationRequest from the same input, with the
same rules and the same messages: both call `sadm.generation.request.build_request`."""

from __future__ import annotations

import numpy as np
import pytest
from slicer_scenes import blob_frames, node_ids, sequence_node

from sadm.cli import main
from sadm.generation.engine import Engine
from sadm.io.sequence import Geometry
from sadm.io.writers import write_sequence
from SADMModule import FUTURE, MISSING, OBSERVED

AGES = ["61", "64.5", "70"]  # uneven: the future age continues the last interval, 75.5


class Captured(Exception):
    """Raised by the stand-in Engine.generate once it has seen the request."""


@pytest.fixture
def captured(monkeypatch):
    seen = []

    def capture(self, frames, request, **_):
        seen.append(request)
        raise Captured

    monkeypatch.setattr(Engine, "generate", capture)
    return seen


@pytest.fixture
def same_input(scene, tmp_path):
    """The same three frames and ages as a file for the CLI and as a Sequence node for the Logic."""
    frames = blob_frames(3)
    path = tmp_path / "brain.seq.nrrd"
    geometry = Geometry((1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    write_sequence(path, [f.astype(np.float32) for f in frames], geometry, [float(a) for a in AGES], "year", "age")
    return path, sequence_node(frames, "brain", index_values=AGES, index_name="age", index_unit="year")


def cli(model: str, path, tmp_path, *options: str) -> int:
    return main(
        ["generate", "--model", model, "--input", str(path), "--out", str(tmp_path / "out"), "--no-progress", *options]
    )


def test_the_cli_and_the_logic_build_the_same_request_times_included(
    same_input, continuous_time_model, logic, captured, tmp_path
):
    path, node = same_input
    with pytest.raises(Captured):
        cli(
            continuous_time_model,
            path,
            tmp_path,
            "--roles",
            "o,m,o",
            "--future",
            "1",
            "--steps",
            "3",
            "--seed",
            "4",
            "--samples",
            "2",
            "--guidance",
            "0.2",
            "--sampler",
            "dpm++2m",
            "--sampler-option",
            "eta=0.5",
        )
    with pytest.raises(Captured):
        logic.generate(
            node,
            [OBSERVED, MISSING, OBSERVED, FUTURE],
            model=continuous_time_model,
            steps=3,
            seed=4,
            samples=2,
            guidance=0.2,
            sampler="dpm++2m",
            sampler_options={"eta": 0.5},
            showResult=False,
        )
    from_cli, from_logic = captured
    assert from_cli == from_logic
    assert from_cli.times == (61.0, 64.5, 70.0, 75.5)
    assert from_cli.roles == (OBSERVED, MISSING, OBSERVED, FUTURE)


@pytest.mark.parametrize(
    "options, call",
    [
        (["--roles", "o,m"], dict(roles=["observed", "missing"])),
        (["--roles", "o,x,o"], dict(roles=["observed", "x", "observed"])),
        (["--roles", "o,f,o"], dict(roles=["observed", "future", "observed"])),
        ([], dict(roles=["observed"] * 3)),
        (["--future", "1", "--times", "1,2"], dict(times=[1, 2])),
        (["--future", "1", "--times", "1,3,2,4"], dict(times=[1, 3, 2, 4])),
        (["--future", "1", "--sampler", "euler"], dict(sampler="euler")),
        (["--future", "1", "--steps", "0"], dict(steps=0)),
        (["--future", "1", "--sampler-option", "eta=0.5"], dict(sampler_options=["eta=0.5"])),
        (
            ["--future", "1", "--sampler", "dpm++2m", "--sampler-option", "eta=-1"],
            dict(sampler="dpm++2m", sampler_options={"eta": -1}),
        ),
        (["--future", "1", "--sampler-option", "eta"], dict(sampler_options="eta")),
        (["--future", "1", "--guidance", "-1"], dict(guidance=-1)),
        (["--future", "1", "--samples", "0"], dict(samples=0)),
        (["--future", "1", "--seed", "-3"], dict(seed=-3)),
    ],
)
def test_bad_requests_get_the_same_message_from_the_cli_and_the_logic(
    same_input, continuous_time_model, logic, captured, tmp_path, capsys, options, call
):
    path, node = same_input
    assert cli(continuous_time_model, path, tmp_path, *options) == 2
    message = capsys.readouterr().err.removeprefix("sadm generate: error: ").strip()
    roles = call.pop("roles", [OBSERVED] * 3 + [FUTURE])  # the Logic's roles carry the future timepoints
    before = node_ids()
    with pytest.raises(ValueError) as raised:
        logic.generate(node, roles, model=continuous_time_model, showResult=False, **call)
    assert str(raised.value) == message
    assert node_ids() == before and not captured and not (tmp_path / "out").exists()
