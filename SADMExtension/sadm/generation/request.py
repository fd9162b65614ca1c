"""The generation request — roles, times and sampling options — built and validated once, here.

Every front end (`sadm generate`, `sadm evaluate`, `sadm bench`, `sadm demo`, the Slicer Logic)
builds a `GenerationRequest` with `build_request` and hands it to `Engine.generate`; the rules and
their error messages therefore cannot disagree between them. Torch-free on purpose: the Slicer panel
checks a request before PyTorch is installed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from sadm.defaults import DEFAULT_SAMPLER, NATIVE_PATHS
from sadm.diffusion.catalogue import sampler_spec
from sadm.errors import InvalidRequestError, InvalidRolesError

OBSERVED, MISSING, FUTURE = "observed", "missing", "future"
ROLES = (OBSERVED, MISSING, FUTURE)
ROLE_LETTERS = {"o": OBSERVED, "m": MISSING, "f": FUTURE}
EVEN_SPACING_TOLERANCE = 0.1
"""Times count as evenly spaced when every interval is within this fraction of their mean: models that
embed frame indices assume even spacing, and rounded times or cine trigger jitter must still pass."""


# --- roles ------------------------------------------------------------------------------------


def validate_roles(roles: Sequence[str], max_frames: int | None = None) -> list[str]:
    """Check the rules of the method and return the roles as a list.

    Frame 0 is observed (it conditions every later one); at least one frame is missing or future;
    every future frame comes after every observed and missing frame; no more frames than the model
    was built for.
    """
    roles = list(roles)
    if not roles:
        raise InvalidRolesError("roles is empty; give one role per frame, starting with 'observed'")
    for index, role in enumerate(roles):
        if role not in ROLES:
            raise InvalidRolesError(f"roles[{index}] is {role!r}; each role must be one of {ROLES}")
    if roles[0] != OBSERVED:
        raise InvalidRolesError(
            f"roles[0] must be 'observed' (the first frame conditions all later ones); got {roles[0]!r}"
        )
    if max_frames is not None and len(roles) > max_frames:
        raise InvalidRolesError(
            f"the sequence has {len(roles)} frames but this model supports at most {max_frames}; "
            f"drop frames or use a model trained with max_frames >= {len(roles)}"
        )
    if all(role == OBSERVED for role in roles):
        raise InvalidRolesError("no frame to generate: mark at least one frame 'missing' or 'future'")
    future = [i for i, r in enumerate(roles) if r == FUTURE]
    if future:
        last_known = max(i for i, r in enumerate(roles) if r != FUTURE)
        early = [i for i in future if i < last_known]
        if early:
            raise InvalidRolesError(
                f"future frame(s) {early} come before frame {last_known} ({roles[last_known]!r}); future "
                "frames must follow every observed and missing frame — mark them 'missing' instead"
            )
    return roles


def parse_roles(roles: str | Sequence[str] | None, input_frames: int, future: int = 0) -> list[str]:
    """One role per input frame (words or o/m/f letters, as a list or a comma-separated string; None:
    all observed), optionally followed by 'future' for timepoints after the input, then `future`
    more future timepoints. Validated (`validate_roles`) except against a model's limits."""
    if future < 0:
        raise InvalidRequestError(f"the number of future timepoints must be 0 or more; got {future}")
    if roles is None:
        words = [OBSERVED] * input_frames
    else:
        items = roles.replace(" ", ",").split(",") if isinstance(roles, str) else list(roles)
        words = [_role_word(item, index) for index, item in enumerate(items) if str(item).strip()]
        if len(words) < input_frames:
            example = ",".join(["o"] + ["m"] * max(0, input_frames - 1))
            raise InvalidRolesError(
                f"roles gives {len(words)} role(s) but the input has {input_frames} frame(s); give one role per "
                f"input frame (observed, or missing to regenerate it; e.g. {example}), then future for each "
                "timepoint to add"
            )
        extra = [i for i in range(input_frames, len(words)) if words[i] != FUTURE]
        if extra:
            raise InvalidRolesError(
                f"timepoint(s) {extra} come after the {input_frames} input frame(s), so they can only be 'future'; "
                f"got {[words[i] for i in extra]}"
            )
    words += [FUTURE] * future
    if all(word == OBSERVED for word in words):
        raise InvalidRolesError(
            f"nothing to generate: every one of the {input_frames} input frame(s) is observed; mark frames "
            "missing (e.g. o,m,o) or add future timepoints"
        )
    return validate_roles(words)


def _role_word(item, index: int) -> str:
    word = str(item).strip().lower()
    if word in ROLE_LETTERS:
        return ROLE_LETTERS[word]
    if word in ROLES:
        return word
    raise InvalidRolesError(f"roles[{index}] is {item!r}; each role must be one of {ROLES} (or o/m/f)")


# --- times ------------------------------------------------------------------------------------


def parse_times(text: str) -> list[float] | None:
    """Times as a person types them (the panel's Times field, `--times`): numbers separated by commas,
    semicolons or spaces; empty text is None (use the input's own times)."""
    items = [item for item in re.split(r"[,;\s]+", text.strip()) if item]
    if not items:
        return None
    try:
        return [float(item) for item in items]
    except ValueError:
        raise InvalidRequestError(
            f"times {text!r} is not a list of numbers; write one time per timepoint, e.g. 61, 64.5, 70, 78"
        ) from None


def check_times(times: Sequence[float], length: int, what: str = "times") -> tuple[float, ...]:
    """One finite time per timepoint, strictly increasing."""
    try:
        values = tuple(float(t) for t in times)
    except (TypeError, ValueError):
        raise InvalidRequestError(f"{what} must be numbers, one per timepoint; got {times!r}") from None
    if len(values) != length:
        raise InvalidRequestError(
            f"{what} gives {len(values)} value(s) but there are {length} timepoint(s) (input + future); "
            "give one time per timepoint"
        )
    if not all(math.isfinite(v) for v in values) or any(b <= a for a, b in zip(values, values[1:])):
        raise InvalidRequestError(f"{what} must be finite and increase strictly; got {[f'{v:g}' for v in values]}")
    return values


def extend_times(times: Sequence[float] | None, length: int) -> tuple[float, ...] | None:
    """The input's times continued over appended future timepoints at the input's last interval (one
    rule for every front end; None when the input has no usable times)."""
    if times is None:
        return None
    values = tuple(float(t) for t in times)
    if len(values) >= length:
        return values[:length]
    if len(values) < 2 or values[-1] <= values[-2]:
        return None
    step = values[-1] - values[-2]
    return values + tuple(values[-1] + step * n for n in range(1, length - len(values) + 1))


def resolve_times(
    length: int,
    input_times: Sequence[float] | None = None,
    times: Sequence[float] | None = None,
    future_times: Sequence[float] | None = None,
) -> tuple[float, ...] | None:
    """Every timepoint's time: `times` as given (input and future), else the input's times followed by
    `future_times`, else the input's times continued at their last interval; None if none is known."""
    if times is not None:
        if future_times is not None:
            raise InvalidRequestError("give either every timepoint's times or the future timepoints' times, not both")
        return check_times(times, length)
    if future_times is not None:
        if input_times is None:
            raise InvalidRequestError(
                "future times need the input frames' own times, and the input carries none; give every "
                "timepoint's time instead"
            )
        return check_times([*input_times, *future_times], length)
    extended = extend_times(input_times, length)
    return None if extended is None else check_times(extended, length, "the input's times")


def future_count(future: int, future_times: Sequence[float] | None) -> int:
    """How many future timepoints to append: `future`, or one per future time (they must agree)."""
    if future_times is None:
        return future
    if future not in (0, len(future_times)):
        raise InvalidRequestError(
            f"{future} future timepoint(s) and {len(future_times)} future time(s) disagree; give only the times"
        )
    return len(future_times)


# --- sampling ---------------------------------------------------------------------------------


def parse_sampler_options(options: Mapping[str, object] | str | Sequence[str] | None) -> dict[str, object]:
    """A sampler's settings as a person writes them: a mapping, or `name=value` items (a list, as
    repeated `--sampler-option` gives, or one text separated by commas or spaces, the panel's field).
    Only the form is checked here; the names and values are the sampler's (`SamplingOptions`)."""
    if options is None:
        return {}
    if isinstance(options, Mapping):
        return dict(options)
    items = re.split(r"[,;\s]+", options.strip()) if isinstance(options, str) else list(options)
    parsed: dict[str, object] = {}
    for item in (str(item).strip() for item in items):
        if not item:
            continue
        name, equals, value = item.partition("=")
        if not (equals and name.strip() and value.strip()):
            raise InvalidRequestError(
                f"sampler option {item!r} is not name=value; write e.g. eta=0.5 (see the sampler's settings)"
            )
        parsed[name.strip()] = value.strip()
    return parsed


@dataclass(frozen=True)
class SamplingOptions:
    """How each frame is drawn. `steps` None: the sampler's default; `guidance` None: the model's w;
    `native` None: the model's native path (its config.json); `sampler_options`: the sampler's own
    settings that differ from its defaults (sadm.diffusion.catalogue), as a mapping or name=value items."""

    sampler: str = DEFAULT_SAMPLER
    steps: int | None = None
    guidance: float | None = None
    seed: int = 0
    samples: int = 1
    batch_guidance: bool = True
    native: str | None = None  # how a frame reaches the input grid: "warp", "resample" (the paper) or "register"
    sampler_options: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.native is not None and self.native not in NATIVE_PATHS:
            raise InvalidRequestError(
                f"native path {self.native!r} is unknown; choose one of {', '.join(NATIVE_PATHS)}"
            )
        spec = sampler_spec(self.sampler)
        object.__setattr__(self, "sampler_options", spec.check_settings(parse_sampler_options(self.sampler_options)))
        steps = spec.default_steps if self.steps is None else _whole(self.steps, "steps")
        if steps < 1:
            raise InvalidRequestError(f"steps must be at least 1; got {steps}")
        object.__setattr__(self, "steps", steps)
        if self.guidance is not None:
            guidance = _number(self.guidance, "guidance w")
            if not (math.isfinite(guidance) and guidance >= 0):
                raise InvalidRequestError(
                    f"guidance w must be a finite number >= 0 (the paper uses 0.1); got {guidance:g}"
                )
            object.__setattr__(self, "guidance", guidance)
        seed = _whole(self.seed, "seed")
        if seed < 0:
            raise InvalidRequestError(f"seed must be 0 or more; got {self.seed}")
        object.__setattr__(self, "seed", seed)
        samples = _whole(self.samples, "samples")
        if samples < 1:
            raise InvalidRequestError(f"samples must be at least 1; got {self.samples}")
        object.__setattr__(self, "samples", samples)
        object.__setattr__(self, "batch_guidance", bool(self.batch_guidance))

    def __hash__(self) -> int:  # hashable as before sampler_options: the mapping hashed as sorted pairs
        fields = {**vars(self), "sampler_options": tuple(sorted(self.sampler_options.items()))}
        return hash(tuple(fields.values()))

    @property
    def sampler_settings(self) -> dict[str, float]:
        """Every setting of the sampler: the options given, else the catalogue's defaults."""
        return sampler_spec(self.sampler).with_defaults(self.sampler_options)


def _whole(value, what: str) -> int:
    if isinstance(value, bool) or not float(_number(value, what)).is_integer():
        raise InvalidRequestError(f"{what} must be a whole number; got {value!r}")
    return int(value)


def _number(value, what: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InvalidRequestError(f"{what} must be a number; got {value!r}") from None


# --- the request ------------------------------------------------------------------------------


@dataclass(frozen=True)
class GenerationRequest:
    """What to generate: a role per timepoint, their times (None: unknown), and how to sample."""

    roles: tuple[str, ...]
    times: tuple[float, ...] | None = None
    sampling: SamplingOptions = field(default_factory=SamplingOptions)

    def __post_init__(self) -> None:
        object.__setattr__(self, "roles", tuple(validate_roles(self.roles)))
        if self.times is not None:
            object.__setattr__(self, "times", check_times(self.times, len(self.roles)))

    @property
    def targets(self) -> list[int]:
        """The timepoints to generate, in order."""
        return [index for index, role in enumerate(self.roles) if role != OBSERVED]

    @property
    def observed(self) -> list[int]:
        return [index for index, role in enumerate(self.roles) if role == OBSERVED]

    def with_sampling(self, **changes) -> GenerationRequest:
        """The same request with some sampling options changed (validated again)."""
        return replace(self, sampling=replace(self.sampling, **changes))

    def positions_for(self, max_frames: int, time_embedding: str, model: str = "this model") -> tuple[float, ...]:
        """Check the request against a model and return the frame positions Aθ embeds: indices for
        models that embed frame indices (their times, if any, must then be evenly spaced, or the
        model would silently misplace frames), the times for continuous-time models."""
        validate_roles(self.roles, max_frames)
        if time_embedding == "index":
            if self.times is not None and len(self.times) > 2:
                intervals = [b - a for a, b in zip(self.times, self.times[1:])]
                mean = sum(intervals) / len(intervals)
                if max(abs(interval - mean) for interval in intervals) > EVEN_SPACING_TOLERANCE * mean:
                    raise InvalidRequestError(
                        f"{model} places frames by their index, i.e. evenly spaced in time, but the times "
                        f"{[f'{t:g}' for t in self.times]} are not; give evenly spaced times, or use a model "
                        "trained with attention.time_embedding='continuous' (e.g. brain-demo)"
                    )
            return tuple(float(index) for index in range(len(self.roles)))
        if self.times is None:
            raise InvalidRequestError(
                f"{model} places frames by their time (e.g. age in years), but the input carries no times: give one "
                "time per timepoint (sadm generate --times, the panel's Times field, or times= in Python), or an "
                "input whose frames carry times (a sequence with numeric index values)"
            )
        return self.times


def build_request(
    roles: str | Sequence[str] | None,
    input_frames: int,
    *,
    future: int = 0,
    input_times: Sequence[float] | None = None,
    times: Sequence[float] | None = None,
    future_times: Sequence[float] | None = None,
    sampling: SamplingOptions | None = None,
    **sampling_options,
) -> GenerationRequest:
    """The one way a front end turns what a user gave into a request: roles for the input frames
    (plus `future` / `future_times` timepoints after them), the timepoints' times from `times`, or
    the input's own `input_times` (+ `future_times`, or continued at their last interval), and the
    sampling options (a `SamplingOptions`, or its fields as keywords)."""
    if sampling is not None and sampling_options:
        raise TypeError("give sampling= or sampling keywords, not both")
    options = sampling if sampling is not None else SamplingOptions(**sampling_options)
    words = parse_roles(roles, input_frames, future_count(future, future_times))
    return GenerationRequest(tuple(words), resolve_times(len(words), input_times, times, future_times), options)
