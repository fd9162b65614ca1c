"""The one generation request (sadm.generation.request): torch-free, validated once, immutable."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from sadm.errors import InvalidRequestError, InvalidRolesError
from sadm.generation.request import (
    GenerationRequest,
    SamplingOptions,
    build_request,
    extend_times,
    parse_roles,
    parse_times,
)


def test_the_request_layer_imports_without_torch():
    """The Slicer panel checks requests before PyTorch is installed."""
    code = "import sys, sadm.generation.request, sadm; assert 'torch' not in sys.modules, 'torch was imported'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_roles_come_as_words_letters_or_a_string_and_future_timepoints_are_appended():
    assert parse_roles("o, m,O", 3, future=1) == ["observed", "missing", "observed", "future"]
    assert parse_roles(["observed", "MISSING ", "observed", "future"], 3) == [
        "observed",
        "missing",
        "observed",
        "future",
    ]
    assert parse_roles(None, 2, future=2) == ["observed", "observed", "future", "future"]
    with pytest.raises(InvalidRolesError, match=r"timepoint\(s\) \[3\] come after the 3 input frame\(s\)"):
        parse_roles(["o", "o", "o", "m"], 3)
    with pytest.raises(InvalidRolesError, match="nothing to generate"):
        parse_roles("o,o", 2)


def test_future_times_continue_the_last_interval_in_every_front_end():
    assert extend_times([61, 64.5, 70], 5) == (61.0, 64.5, 70.0, 75.5, 81.0)
    assert extend_times([3.0], 2) is None and extend_times(None, 3) is None
    request = build_request("o,m,o", 3, future=1, input_times=[61, 64.5, 70])
    assert request.times == (61.0, 64.5, 70.0, 75.5)
    assert build_request("o,o", 2, future_times=[80], input_times=[61, 70]).times == (61.0, 70.0, 80.0)
    assert build_request("o,o", 2, future=1, times=[1, 2, 4]).times == (1.0, 2.0, 4.0)
    assert parse_times(" 61; 64.5 70,78 ") == [61.0, 64.5, 70.0, 78.0] and parse_times("  ") is None
    with pytest.raises(InvalidRequestError, match="future times need the input frames' own times"):
        build_request("o,o", 2, future_times=[80])


def test_sampling_options_resolve_defaults_refuse_bad_values_and_stay_frozen():
    options = SamplingOptions("ancestral", guidance=0)
    assert options.steps == 1000 and options.guidance == 0.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.steps = 3
    for bad, message in [
        (dict(sampler="euler"), "sampler 'euler' is unknown"),
        (dict(steps=0), "steps must be at least 1"),
        (dict(steps=2.5), "steps must be a whole number"),
        (dict(guidance=-0.1), "guidance w must be a finite number >= 0"),
        (dict(guidance=float("nan")), "guidance w must be a finite number >= 0"),
        (dict(samples=0), "samples must be at least 1"),
        (dict(seed=-1), "seed must be 0 or more"),
    ]:
        with pytest.raises(InvalidRequestError, match=message):
            SamplingOptions(**bad)
    request = build_request("o,f", 2, steps=4)
    assert request.with_sampling(seed=9).sampling == SamplingOptions(steps=4, seed=9)
    with pytest.raises(InvalidRequestError, match="samples must be at least 1"):
        request.with_sampling(samples=0)


def test_positions_are_indices_for_index_models_and_times_for_continuous_ones():
    even = GenerationRequest(("observed", "observed", "future"), (0.0, 0.066, 0.1319))  # rounded, still even
    assert even.positions_for(6, "index") == (0.0, 1.0, 2.0)
    assert even.positions_for(6, "continuous") == (0.0, 0.066, 0.1319)
    uneven = GenerationRequest(("observed", "observed", "future"), (61.0, 64.5, 78.0))
    with pytest.raises(InvalidRequestError, match="places frames by their index, i.e. evenly spaced"):
        uneven.positions_for(6, "index")
    with pytest.raises(InvalidRequestError, match="places frames by their time"):
        GenerationRequest(("observed", "future")).positions_for(6, "continuous")
    with pytest.raises(InvalidRolesError, match="supports at most 2"):
        even.positions_for(2, "index")
