"""The paper's evaluation protocol: settings (single / missing / full), baselines, metrics tables."""

from sadm.evaluation.baselines import BASELINES, copy_last, linear
from sadm.evaluation.runner import EvaluationResult, ModelMethod, evaluate
from sadm.evaluation.settings import SETTINGS, setting_runs

__all__ = [
    "BASELINES",
    "SETTINGS",
    "EvaluationResult",
    "ModelMethod",
    "copy_last",
    "evaluate",
    "linear",
    "setting_runs",
]
