"""The sampler catalogue: every sampler's name, default step count, logSNR grid, whether it draws fresh
noise, and its own settings — in one torch-free place, so that the request's checks, the command line
and the Slicer panel (which fills its menus before PyTorch is installed) all read the same entries.

A sampler is registered with `register(SamplerSpec(...))`; its `function` ("module:attribute", imported
when it first runs, or the callable itself) has the shared signature of `sadm.diffusion.samplers` and
takes each of its settings as a keyword. `Testing/engine/test_every_sampler.py` runs over every entry.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sadm.defaults import DEFAULT_SAMPLER
from sadm.errors import InvalidRequestError


@dataclass(frozen=True)
class SamplerSetting:
    """One keyword of a sampler: its default and the closed range [minimum, maximum] it accepts
    (maximum None: unbounded). `adds_noise`: a value other than 0 makes the sampler draw fresh noise."""

    name: str
    default: float
    minimum: float
    maximum: float | None
    help: str
    adds_noise: bool = False

    def check(self, value, sampler: str) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        high = math.inf if self.maximum is None else self.maximum
        if isinstance(value, bool) or not (math.isfinite(number) and self.minimum <= number <= high):
            raise InvalidRequestError(
                f"sampler {sampler!r} setting {self.name}={value} is out of range; give a number in {self.range} "
                f"(default {self.default:g}: {self.help})"
            )
        return number

    @property
    def range(self) -> str:
        return f"[{self.minimum:g}, {'∞' if self.maximum is None else f'{self.maximum:g}'}]"


@dataclass(frozen=True)
class SamplerSpec:
    """A sampler as the front ends see it; `function` is what the engine runs."""

    name: str
    function: str | Callable
    default_steps: int
    grid: str  # the logSNR spacing it walks (sadm.diffusion.gaussian.sampling_grid): "cosine" or "log-snr"
    stochastic: bool  # draws fresh noise at every step whatever its settings
    summary: str  # one line for help texts and the panel's tooltip
    settings: tuple[SamplerSetting, ...] = ()

    def check_settings(self, given: Mapping[str, object]) -> dict[str, float]:
        """`given` as numbers, each a setting of this sampler within its range (the defaults not added)."""
        known = {setting.name: setting for setting in self.settings}
        unknown = sorted(set(given) - set(known))
        if unknown:
            offered = ", ".join(f"{s.name} (default {s.default:g})" for s in self.settings) or "none"
            raise InvalidRequestError(
                f"sampler {self.name!r} has no setting {', '.join(map(repr, unknown))}; its settings: {offered}"
            )
        return {name: known[name].check(value, self.name) for name, value in sorted(given.items())}

    def with_defaults(self, given: Mapping[str, float]) -> dict[str, float]:
        """Every setting's value: `given`, else its default (what the function is called with)."""
        return {setting.name: float(given.get(setting.name, setting.default)) for setting in self.settings}

    def is_stochastic(self, given: Mapping[str, float]) -> bool:
        """Whether a run with these settings draws fresh noise (then the seed changes the result)."""
        values = self.with_defaults(given)
        return self.stochastic or any(s.adds_noise and values[s.name] != 0 for s in self.settings)

    def load(self) -> Callable:
        """The sampler function (imports its module, and so PyTorch, on first use)."""
        if callable(self.function):
            return self.function
        module, _, attribute = self.function.partition(":")
        return getattr(importlib.import_module(module), attribute)

    def describe(self) -> str:
        """One line: name, default steps, what it is, its settings."""
        default = "default, " if self.name == DEFAULT_SAMPLER else ""
        settings = "".join(f"; {s.name} in {s.range} (default {s.default:g}): {s.help}" for s in self.settings)
        return f"{self.name} ({default}{self.default_steps} steps): {self.summary}{settings}"


CATALOGUE: dict[str, SamplerSpec] = {}
"""Every registered sampler by name, in registration order (the order of menus and lists)."""


def register(spec: SamplerSpec) -> SamplerSpec:
    """Add `spec` to the catalogue (a name registered twice is refused)."""
    if spec.name in CATALOGUE:
        raise ValueError(f"a sampler named {spec.name!r} is registered already")
    if spec.default_steps < 1:
        raise ValueError(f"sampler {spec.name!r}: default_steps must be at least 1")
    CATALOGUE[spec.name] = spec
    return spec


def sampler_spec(name: str) -> SamplerSpec:
    """The catalogue entry of `name`; an unknown name is refused with the registered ones."""
    spec = CATALOGUE.get(name)
    if spec is None:
        raise InvalidRequestError(f"sampler {name!r} is unknown; choose one of {', '.join(sampler_names())}")
    return spec


def sampler_names() -> list[str]:
    return list(CATALOGUE)


class _Names(Sequence):
    """The registered names as a live sequence: a menu built from it offers a sampler registered later."""

    def __getitem__(self, index):
        return sampler_names()[index]

    def __len__(self) -> int:
        return len(CATALOGUE)


SAMPLER_NAMES: Sequence[str] = _Names()


def catalogue_text() -> str:
    """Every sampler described, one per line (the panel's tooltip, `--sampler`'s help)."""
    return "\n".join(spec.describe() for spec in CATALOGUE.values())


# --- the built-in samplers (sadm.diffusion.samplers) --------------------------------------------

register(
    SamplerSpec(
        name="ancestral",
        function="sadm.diffusion.samplers:sample_ancestral",
        default_steps=1000,  # the paper's T
        grid="cosine",  # the training schedule, as the paper samples
        stochastic=True,
        summary="the paper's stochastic sampler (Eq. 3)",
        settings=(
            SamplerSetting(
                "v", 0.3, 0.0, 1.0, "the step variance between the posterior's (0) and the forward process's (1)"
            ),
        ),
    )
)
register(
    SamplerSpec(
        name="ddim",
        function="sadm.diffusion.samplers:sample_ddim",
        default_steps=10,
        grid="cosine",
        stochastic=False,
        summary="deterministic and fast (20 steps: closer to the reference)",
    )
)
register(
    SamplerSpec(
        name="dpm++2m",
        function="sadm.diffusion.samplers:sample_dpmpp_2m",
        default_steps=20,
        grid="log-snr",  # a few steps spent uniformly in logSNR, where the image forms
        stochastic=False,
        summary="DPM-Solver++(2M), few steps",
        settings=(
            SamplerSetting(
                "eta", 0.0, 0.0, None, "fresh noise per step: 0 solves the ODE, 1 is DPM-Solver++(2M) SDE", True
            ),
        ),
    )
)
