"""The worker's wire format carries the whole request, the sampler's settings included, and the worker
rebuilds it with the engine's own rules and messages."""

from __future__ import annotations

import json

import pytest

from sadm.errors import InvalidRequestError
from sadm.generation.request import build_request
from sadm.serving import protocol


def over_the_wire(fields: dict) -> dict:
    return protocol.decode(protocol.encode({"command": "generate", "request": fields}))["request"]


@pytest.mark.parametrize(
    "sampling",
    [
        {},
        {"sampler": "dpm++2m", "sampler_options": {"eta": 0.5}, "steps": 4},
        {"sampler": "ancestral", "sampler_options": "v=0.7", "samples": 2, "native": "warp"},
    ],
)
def test_a_request_arrives_as_it_left(sampling):
    request = build_request("o,m,o", 3, future=1, times=[1, 2, 3, 4], seed=9, **sampling)
    rebuilt = protocol.request_from_json(over_the_wire(protocol.request_to_json(request)))
    assert rebuilt == request
    assert rebuilt.sampling.sampler_settings == request.sampling.sampler_settings


def test_a_line_without_sampler_options_gets_the_samplers_defaults():
    """A client that predates sampler settings sends none: the sampler runs with its defaults."""
    fields = {"roles": ["observed", "future"], "times": None, "sampling": {"sampler": "ancestral", "steps": 3}}
    rebuilt = protocol.request_from_json(json.loads(json.dumps(fields)))
    assert rebuilt.sampling.sampler_options == {} and rebuilt.sampling.sampler_settings == {"v": 0.3}


def test_a_setting_the_sampler_lacks_is_refused_with_the_engines_message():
    fields = {"roles": ["observed", "future"], "sampling": {"sampler": "ddim", "sampler_options": {"eta": 1}}}
    with pytest.raises(InvalidRequestError, match="sampler 'ddim' has no setting 'eta'; its settings: none"):
        protocol.request_from_json(fields)
