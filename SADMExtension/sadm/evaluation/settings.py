"""Role assignments of the paper's three inference settings, reproducible by seed.

Each setting is a list of runs (one role list per run); every non-observed frame of a run is scored.
- single: only frame 0 is given; all later frames are generated autoregressively (one run).
- missing: frame 0 is given and each later frame is missing with probability `missing_rate` (at least
  one); missing frames are imputed, the others given (one run).
- full: every frame i ≥ 1 is predicted from all true frames before it (one run per target).
"""

from __future__ import annotations

import numpy as np

from sadm.generation.request import FUTURE, MISSING, OBSERVED

SETTINGS = ("single", "missing", "full")


def setting_runs(setting: str, length: int, seed: int = 0, missing_rate: float = 0.5) -> list[list[str]]:
    """The role lists to run for `setting` on a sequence of `length` frames."""
    if length < 2:
        raise ValueError(f"a sequence of {length} frame(s) has nothing to predict; evaluation needs at least 2")
    if setting == "single":
        return [[OBSERVED] + [FUTURE] * (length - 1)]
    if setting == "missing":
        rng = np.random.default_rng(seed)
        missing = rng.random(length - 1) < missing_rate
        if not missing.any():
            missing[rng.integers(length - 1)] = True
        return [[OBSERVED] + [MISSING if m else OBSERVED for m in missing]]
    if setting == "full":
        return [[OBSERVED] * target + [FUTURE] for target in range(1, length)]
    raise ValueError(f"unknown setting {setting!r}; choose from {', '.join(SETTINGS)}")
