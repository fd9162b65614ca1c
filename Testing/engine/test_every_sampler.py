"""One suite over every registered sampler (sadm.diffusion.catalogue), as diffusers' SchedulerCommonTest
runs over every scheduler: a sampler added to the catalogue is checked here without a line of its own.

Shapes, determinism under a seed, one callback per step, the data recovered from an exact ε-predictor,
fresh noise exactly where the catalogue says so, and its settings checked by the request's rules."""

from __future__ import annotations

import inspect
import math
import re

import numpy as np
import pytest
import torch

from sadm.defaults import DEFAULT_SAMPLER
from sadm.diffusion.catalogue import CATALOGUE, SamplerSpec, sampler_spec
from sadm.diffusion.gaussian import GRID_SPACINGS, alpha_sigma, sampling_grid
from sadm.errors import InvalidRequestError
from sadm.generation.engine import Engine
from sadm.generation.request import SamplingOptions, build_request

SAMPLERS = list(CATALOGUE)
STEPS = 6


def exact_eps_fn(x: torch.Tensor):
    """An ε-predictor that knows the data, exact in one step: ε̂ = (z − α x) / σ."""

    def eps_fn(z, log_snr):
        alpha, sigma = alpha_sigma(log_snr)
        return (z - alpha.view(-1, 1, 1, 1, 1) * x) / sigma.view(-1, 1, 1, 1, 1)

    return eps_fn


def toy_eps_fn(z, log_snr):
    """Not exact: the result depends on the path, so fresh noise shows in it."""
    return torch.tanh(0.7 * z) + 0.01 * log_snr.view(-1, 1, 1, 1, 1)


def run(name: str, eps_fn, z, seed: int = 0, steps: int = STEPS, callback=None, **options):
    spec = sampler_spec(name)
    settings = SamplingOptions(sampler=name, sampler_options=options).sampler_settings
    grid = sampling_grid(steps, spec.grid)
    return spec.load()(eps_fn, z, grid, generator=torch.Generator().manual_seed(seed), callback=callback, **settings)


def noise(shape=(2, 1, 3, 4, 4), seed: int = 1) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def test_the_default_sampler_is_registered():
    assert DEFAULT_SAMPLER in CATALOGUE


@pytest.mark.parametrize("name", SAMPLERS)
def test_the_entry_describes_its_function(name):
    """The function takes exactly the catalogue's settings, as keywords without defaults of their own
    (the catalogue's are the only ones); its grid, steps and settings are well formed."""
    spec = sampler_spec(name)
    parameters = inspect.signature(spec.load()).parameters
    shared = {"clip_denoised", "generator", "callback"}
    keywords = {n for n, p in parameters.items() if p.kind is p.KEYWORD_ONLY} - shared
    assert keywords == {setting.name for setting in spec.settings}
    assert all(parameters[setting.name].default is inspect.Parameter.empty for setting in spec.settings)
    assert shared <= set(parameters) and spec.grid in GRID_SPACINGS and spec.default_steps >= 1
    for setting in spec.settings:
        high = math.inf if setting.maximum is None else setting.maximum
        assert setting.minimum <= setting.default <= high and setting.help
    assert spec.describe().startswith(f"{name} (")


@pytest.mark.parametrize("name", SAMPLERS)
def test_the_output_has_the_shape_of_the_noise(name):
    z = noise((3, 1, 2, 5, 4))
    out = run(name, toy_eps_fn, z)
    assert out.shape == z.shape and out.dtype == torch.float32 and torch.isfinite(out).all()


@pytest.mark.parametrize("name", SAMPLERS)
def test_the_same_seed_gives_the_same_result(name):
    z = noise()
    torch.testing.assert_close(run(name, toy_eps_fn, z, seed=3), run(name, toy_eps_fn, z, seed=3), rtol=0, atol=0)


@pytest.mark.parametrize("name", SAMPLERS)
@pytest.mark.parametrize("steps", [1, 2, 5])
def test_the_callback_runs_once_per_step(name, steps):
    seen = []
    run(name, toy_eps_fn, noise(), steps=steps, callback=lambda info: seen.append((info["i"], info["total"])))
    assert seen == [(i, steps) for i in range(steps)]


@pytest.mark.parametrize("name", SAMPLERS)
def test_an_exact_eps_predictor_gives_back_the_data(name):
    x = noise(seed=5).clamp(-0.9, 0.9)
    torch.testing.assert_close(run(name, exact_eps_fn(x), noise()), x, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("name", SAMPLERS)
def test_only_stochastic_samplers_depend_on_the_seed(name):
    """The catalogue's `stochastic` is what the sampler does: fresh noise from the generator or none."""
    z = noise()
    differs = not torch.equal(run(name, toy_eps_fn, z, seed=0), run(name, toy_eps_fn, z, seed=1))
    assert differs == sampler_spec(name).is_stochastic({})


@pytest.mark.parametrize(
    ("name", "setting"),
    [(name, setting) for name in SAMPLERS for setting in CATALOGUE[name].settings if setting.adds_noise],
)
def test_a_setting_that_adds_noise_makes_the_seed_matter(name, setting):
    value = 1.0 if setting.maximum is None else setting.maximum
    z = noise()
    first, second = (run(name, toy_eps_fn, z, seed=seed, **{setting.name: value}) for seed in (0, 1))
    assert not torch.equal(first, second)
    assert sampler_spec(name).is_stochastic({setting.name: value})


@pytest.mark.parametrize("name", SAMPLERS)
def test_settings_are_checked_by_the_request(name):
    spec = sampler_spec(name)
    with pytest.raises(InvalidRequestError, match=re.escape(f"sampler '{name}' has no setting 'unknown'")):
        SamplingOptions(sampler=name, sampler_options={"unknown": 1})
    for setting in spec.settings:
        below = setting.minimum - 1
        with pytest.raises(InvalidRequestError, match=f"setting {setting.name}=.* is out of range"):
            build_request("o,m", 2, sampler=name, sampler_options={setting.name: below})
        with pytest.raises(InvalidRequestError, match="out of range"):
            SamplingOptions(sampler=name, sampler_options=[f"{setting.name}=nan"])
        given = SamplingOptions(sampler=name, sampler_options=f"{setting.name}={setting.default}")
        assert given.sampler_options == {setting.name: setting.default}
        as_mapping = SamplingOptions(sampler=name, sampler_options={setting.name: setting.default})
        assert given == as_mapping and hash(given) == hash(as_mapping)  # text or mapping: one request
    assert SamplingOptions(sampler=name).sampler_settings == {s.name: s.default for s in spec.settings}
    assert SamplingOptions(sampler=name).steps == spec.default_steps


@pytest.mark.parametrize("name", SAMPLERS)
def test_every_sampler_runs_in_the_engine_and_its_settings_reach_it(name, tiny_model, monkeypatch):
    """The engine calls the catalogue's function with every setting (the given ones, else the defaults)."""
    spec = sampler_spec(name)
    calls = []

    def spy(*args, **kwargs):
        calls.append({key: kwargs[key] for key in kwargs if key not in ("generator", "callback")})
        return spec.load()(*args, **kwargs)

    monkeypatch.setitem(CATALOGUE, name, SamplerSpec(**{**vars(spec), "function": spy}))
    engine = Engine(tiny_model, torch.device("cpu"))
    frames = [np.random.default_rng(0).random(tiny_model.config.grid).astype(np.float32), None]
    given = {s.name: s.default / 2 for s in spec.settings}
    result = engine.generate(frames, build_request("o,m", 2, sampler=name, steps=2, sampler_options=given))
    assert result.mean[1].shape == tuple(tiny_model.config.grid)
    assert calls and all(call == given for call in calls)


def test_a_sampler_without_settings_refuses_any(monkeypatch):
    bare = [name for name in SAMPLERS if not CATALOGUE[name].settings]
    for name in bare:
        with pytest.raises(InvalidRequestError, match="its settings: none"):
            SamplingOptions(sampler=name, sampler_options="eta=0.5")
    with pytest.raises(InvalidRequestError, match="is not name=value"):
        SamplingOptions(sampler=SAMPLERS[0], sampler_options="eta")
