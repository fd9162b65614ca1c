"""The Python packages the engine needs: which are missing, the exact fix, installing them with consent."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import re
import sys
from collections.abc import Sequence

import slicer
from slicer.i18n import tr as _

from sadm.errors import SADMError
from SADMModuleLib import MODULE_DIR

TORCH_REQUIREMENT = ">=2.1"


class SADMDependencyError(SADMError, RuntimeError):
    """A Python package SADM needs is missing; the message says how to install it."""


PACKAGES = ("torch", "safetensors", "einops", "SimpleITK")
"""Import names of what the engine needs; their distributions carry the same names."""


def installedVersion(importName: str) -> str | None:
    """The installed version of a package, without importing it (importing torch takes seconds and
    may touch the GPU: the engine runs in the worker process); None when it cannot be imported.
    An importable package without metadata (e.g. a SimpleITK built with Slicer) gives "unknown"."""
    if importName in sys.modules:
        module = sys.modules[importName]
        if module is None:
            return None  # import blocked
        return str(getattr(module, "__version__", "unknown"))
    try:
        if importlib.util.find_spec(importName) is None:
            return None
    except (ImportError, ValueError):
        return None
    try:
        return importlib.metadata.version(importName)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def minimumVersions() -> dict[str, str]:
    """The lower bound SADM needs of each package (Resources/requirements.txt, and torch's)."""
    minimums = {"torch": TORCH_REQUIREMENT.lstrip(">=")}
    for line in _requirementLines():
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*>=\s*([0-9][0-9.]*)", line)
        if match is None:
            raise ValueError(f"requirements.txt: {line!r} is not of the form name>=version")
        minimums[match.group(1)] = match.group(2)
    return minimums


def tooOld(importName: str) -> tuple[str, str] | None:
    """(installed, needed) when an installed package is older than SADM needs, else None."""
    installed = installedVersion(importName)
    needed = minimumVersions().get(importName)
    if installed in (None, "unknown") or needed is None:
        return None
    if _versionTuple(installed.split("+")[0]) < _versionTuple(needed):
        return installed, needed
    return None


def torchProblem() -> str | None:
    """Why the installed torch cannot be used (too old), or None. Torch < 2.1 lacks
    `scaled_dot_product_attention`. That its DLLs load is seen where it is imported, in the worker
    (`torchLoadProblem`)."""
    old = tooOld("torch")
    if old is None:
        return None
    return (
        f"PyTorch {old[0]} is installed but SADM needs PyTorch {TORCH_REQUIREMENT}. Update it: "
        f"`import PyTorchUtils; PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=True, "
        f"torchVersionRequirement='{TORCH_REQUIREMENT}')` in the Python console, then restart Slicer."
    )


def torchLoadProblem(error: object) -> str:
    """PyTorch is installed but `import torch` failed (on Windows a DLL that fails to load: an OSError)."""
    return (
        f"PyTorch is installed but cannot be loaded ({error}). Reinstall it from the PyTorch Util module "
        f"(PyTorch {TORCH_REQUIREMENT}) and restart Slicer."
    )


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
    """Import names of the packages the engine needs that are not installed or too old (nothing is imported)."""
    return [name for name in PACKAGES if installedVersion(name) is None or tooOld(name) is not None]


def checkDependencies() -> None:
    """Raise with the exact fix when a package is missing or too old (the console path; the panel installs)."""
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
        old = [f"{name} {tooOld(name)[0]}" for name in missing if tooOld(name) is not None]
        state = f"too old ({', '.join(old)})" if len(old) == len(missing) else "not installed or too old"
        raise SADMDependencyError(
            f"the Python package(s) {', '.join(missing)} are {state}; run "
            f"`slicer.util.pip_install('{' '.join(requirementsFor(missing))}')` in the Python console "
            "(or press Generate in the SADM panel, which offers to do it), then restart Slicer."
        )


def installingMessage(missing: Sequence[str]) -> str:
    """What the panel says before an install that blocks Slicer for minutes starts."""
    if "torch" in missing:
        return _(
            "Installing PyTorch through the PyTorch extension (and {others}): this takes several minutes, during which "
            "Slicer does not respond. The PyTorch extension loads PyTorch into Slicer itself; restart Slicer afterwards "
            "to free that memory."
        ).format(others=", ".join(name for name in missing if name != "torch") or _("nothing else"))
    return _("Installing {packages} with pip: Slicer does not respond until it is done.").format(
        packages=", ".join(requirementsFor(missing))
    )


def isWindows() -> bool:
    return sys.platform == "win32"


def installDependencies(askConfirmation: bool = True) -> None:
    """Install what is missing, with consent: torch through the PyTorch extension, the rest with pip."""
    missing = missingPackages()
    old = tooOld("torch")
    if old is not None and isWindows():
        # An upgrade in place fails while the old PyTorch's DLLs are loaded (in Slicer, or its worker).
        raise SADMDependencyError(
            f"PyTorch {old[0]} is installed but SADM needs PyTorch {TORCH_REQUIREMENT}. On Windows it cannot be "
            "upgraded while it may be loaded: open the PyTorch Util module, press Uninstall PyTorch, restart Slicer, "
            "then press Generate (it offers to install a current PyTorch)."
        )
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
                try:
                    pip_ensure(requirements, requester="SADM", prompt_install=askConfirmation)
                except RuntimeError as error:
                    # Slicer >= 5.12 says a declined prompt with this RuntimeError (slicer/packaging.py)
                    if "declined" in str(error).lower():
                        raise SADMDependencyError(
                            f"installation of {', '.join(requirements)} was declined; SADM cannot run without them"
                        ) from error
                    raise
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


def _requirementLines() -> list[str]:
    path = MODULE_DIR / "Resources" / "requirements.txt"
    if not path.is_file():
        return []
    lines = [line.split("#")[0].strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [line for line in lines if line]


def requirementsFor(importNames: Sequence[str]) -> list[str]:
    """pip requirement lines (Resources/requirements.txt) for the given import names."""
    lines = _requirementLines()
    chosen = []
    for name in importNames:
        match = next((line for line in lines if re.split(r"[<>=!~\[; ]", line)[0].lower() == name.lower()), name)
        chosen.append(match)
    return chosen
