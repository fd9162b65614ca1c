"""The Python packages the engine needs: which are missing, the exact fix, installing them with consent."""

from __future__ import annotations

import importlib
import re
from collections.abc import Sequence

import slicer
from slicer.i18n import tr as _

from SADMModuleLib import MODULE_DIR

TORCH_REQUIREMENT = ">=2.1"


class SADMDependencyError(RuntimeError):
    """A Python package SADM needs is missing; the message says how to install it."""


def torchProblem() -> str | None:
    """Why the installed torch cannot be used (too old, or its DLLs fail to load), or None.
    Torch < 2.1 lacks `scaled_dot_product_attention`; a Windows DLL error is an OSError, not an ImportError."""
    try:
        import torch
    except ImportError:
        return None  # missing: missingPackages() reports it
    except OSError as error:
        return (
            f"PyTorch is installed but cannot be loaded ({error}). Reinstall it from the PyTorch Util module "
            f"(PyTorch {TORCH_REQUIREMENT}) and restart Slicer."
        )
    installed = str(getattr(torch, "__version__", "0")).split("+")[0]
    if _versionTuple(installed) < _versionTuple(TORCH_REQUIREMENT.lstrip(">=")):
        return (
            f"PyTorch {installed} is installed but SADM needs PyTorch {TORCH_REQUIREMENT}. Update it: "
            f"`import PyTorchUtils; PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=True, "
            f"torchVersionRequirement='{TORCH_REQUIREMENT}')` in the Python console, then restart Slicer."
        )
    return None


def _versionTuple(version: str) -> tuple[int, ...]:
    """Leading numeric parts of a version string ("2.0.1rc1" -> (2, 0, 1))."""
    parts = []
    for part in version.split("."):
        digits = re.match(r"\d+", part)
        if digits is None:
            break
        parts.append(int(digits.group()))
    return tuple(parts)


def missingPackages() -> list[str]:
    """Import names of the packages the engine needs that cannot be imported (or, for torch, used)."""
    missing = []
    for name in ("torch", "safetensors", "einops", "SimpleITK"):
        try:
            importlib.import_module(name)
        except (ImportError, OSError):
            missing.append(name)
    if "torch" not in missing and torchProblem() is not None:
        missing.insert(0, "torch")
    return missing


def checkDependencies() -> None:
    """Raise with the exact fix when a package is missing (the console path; the panel installs)."""
    missing = missingPackages()
    problem = torchProblem()
    if problem is not None:
        raise SADMDependencyError(problem)
    if "torch" in missing:
        raise SADMDependencyError(
            "PyTorch is not installed. Install the PyTorch extension from the Extensions Manager, then run "
            f"`import PyTorchUtils; PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=True, "
            f"torchVersionRequirement='{TORCH_REQUIREMENT}')` in the Python console (or press Generate in the SADM "
            "panel, which offers to do it), and restart Slicer."
        )
    if missing:
        raise SADMDependencyError(
            f"the Python package(s) {', '.join(missing)} are not installed; run "
            f"`slicer.util.pip_install('{' '.join(requirementsFor(missing))}')` in the Python console "
            "(or press Generate in the SADM panel, which offers to do it)."
        )


def installDependencies(askConfirmation: bool = True) -> None:
    """Install what is missing, with consent: torch through the PyTorch extension, the rest with pip."""
    missing = missingPackages()
    if "torch" in missing:
        _installTorch(askConfirmation)
        missing.remove("torch")
    if missing:
        requirements = requirementsFor(missing)
        try:
            try:
                from slicer.packaging import pip_ensure  # Slicer >= 5.12: asks, installs, offers a restart
            except ImportError:
                pip_ensure = None
            if pip_ensure is not None:
                pip_ensure(requirements, requester="SADM", prompt_install=askConfirmation)
            else:
                if askConfirmation and not slicer.util.confirmOkCancelDisplay(
                    _("SADM needs the Python packages {packages}. Install them now with pip?").format(
                        packages=", ".join(requirements)
                    )
                ):
                    raise SADMDependencyError(
                        f"installation of {', '.join(requirements)} was declined; SADM cannot run without them"
                    )
                slicer.util.pip_install(" ".join(requirements))
        except SADMDependencyError:
            raise
        except Exception as error:
            raise SADMDependencyError(
                f"installing {', '.join(requirements)} failed ({error}). Run "
                f"`slicer.util.pip_install('{' '.join(requirements)}')` in the Python console, check the "
                "network or proxy settings, and restart Slicer."
            ) from error
    checkDependencies()


def _installTorch(askConfirmation: bool) -> None:
    try:
        import PyTorchUtils
    except ModuleNotFoundError as error:
        raise SADMDependencyError(
            "PyTorch is not installed and the PyTorch extension is missing: install the 'PyTorch' extension "
            "from the Extensions Manager, restart Slicer, and press Generate again."
        ) from error
    try:
        torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(
            askConfirmation=askConfirmation, torchVersionRequirement=TORCH_REQUIREMENT
        )
    except Exception as error:
        raise SADMDependencyError(
            f"installing PyTorch failed ({error}). Open the PyTorch Util module, install PyTorch "
            f"{TORCH_REQUIREMENT} there, and restart Slicer."
        ) from error
    if torch is None:
        raise SADMDependencyError(
            f"PyTorch was not installed (declined). SADM needs PyTorch {TORCH_REQUIREMENT}: install it from the "
            "PyTorch Util module, then press Generate again."
        )


def requirementsFor(importNames: Sequence[str]) -> list[str]:
    """pip requirement lines (Resources/requirements.txt) for the given import names."""
    path = MODULE_DIR / "Resources" / "requirements.txt"
    lines = (
        [line.split("#")[0].strip() for line in path.read_text(encoding="utf-8").splitlines()] if path.is_file() else []
    )
    lines = [line for line in lines if line]
    chosen = []
    for name in importNames:
        match = next((line for line in lines if re.split(r"[<>=!~\[; ]", line)[0].lower() == name.lower()), name)
        chosen.append(match)
    return chosen
