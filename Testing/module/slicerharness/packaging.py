"""`slicer.packaging` as Slicer 5.12 has it (Base/Python/slicer/packaging.py at tag v5.12.3; the
module is new in 5.12, so `import slicer.packaging` fails in 5.6-5.10). What the SADM module meets:

- `pip_ensure(requirements, ..., prompt_install=True, requester=None, skip_in_testing=True)`: the
  requirements that `pip_check` finds unsatisfied (installed version from importlib.metadata against
  the specifier) are installed; in testing mode (`slicer.app.testingEnabled()`) it only logs and
  returns; with prompt_install it asks `confirmOkCancelDisplay(message, title, detailedText=list)` and,
  declined, raises `RuntimeError("User declined package installation")`; then `pip_install(...)`,
  whose failure is a `subprocess.CalledProcessError`.
- `pip_install`: the installer; `slicer.util.pip_install` delegates to it in 5.12 (util.py).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.metadata
import logging
import sys
import types

from packaging.requirements import Requirement

from . import versions

NAME = "slicer.packaging"


def _to_requirements(requirements) -> list[Requirement]:
    if isinstance(requirements, (str, Requirement)):
        requirements = str(requirements).split() if isinstance(requirements, str) else [requirements]
    return [r if isinstance(r, Requirement) else Requirement(str(r)) for r in requirements]


def pip_check(requirement) -> bool:
    """As 5.12: satisfied when the installed distribution's version is in the specifier."""
    for req in _to_requirements(requirement):
        try:
            installed = importlib.metadata.version(req.name)
        except importlib.metadata.PackageNotFoundError:
            return False
        if installed not in req.specifier:
            return False
    return True


def pip_install(requirements, **kwargs) -> None:
    """The installer. Tests replace it (`install_pip_installer`); here nothing is ever installed."""
    raise RuntimeError("the harness installs no packages: replace slicer.packaging.pip_install in the test")


def pip_ensure(
    requirements,
    constraints=None,
    skip_packages=None,
    prompt_install=True,
    prompt_restart=True,
    requester=None,
    skip_in_testing=True,
    show_progress=True,
):
    import slicer

    missing = [req for req in _to_requirements(requirements) if not pip_check(req)]
    if not missing:
        return None
    if skip_in_testing and slicer.app.testingEnabled():
        logging.info(f"Testing mode is enabled: skipping pip_ensure for [{', '.join(str(r) for r in missing)}]")
        return None
    if prompt_install:
        title = f"{requester} - Install Python Packages" if requester else "Install Python Packages"
        count = len(missing)
        message = (
            "1 Python package needs to be installed.\n\nThis will modify Slicer's Python environment. Continue?"
            if count == 1
            else f"{count} Python packages need to be installed.\n\n"
            "This will modify Slicer's Python environment. Continue?"
        )
        details = "\n".join(f"- {req}" for req in missing)
        if not slicer.util.confirmOkCancelDisplay(message, title, detailedText=details):
            raise RuntimeError("User declined package installation")
    module = sys.modules[NAME]
    return module.pip_install(
        [str(req) for req in missing], blocking=True, show_progress=show_progress, requester=requester
    )


def make_module() -> types.ModuleType:
    module = types.ModuleType(NAME)
    module.__doc__ = __doc__
    module.pip_check = pip_check
    module.pip_ensure = pip_ensure
    module.pip_install = pip_install
    return module


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Makes `slicer.packaging` importable only while the modelled release is 5.12 or newer."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != NAME or not versions.at_least("5.12"):
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec):
        return make_module()

    def exec_module(self, module) -> None:
        import slicer

        slicer.packaging = module


def forget() -> None:
    """Drop an imported `slicer.packaging` (the modelled release changed)."""
    sys.modules.pop(NAME, None)
    slicer = sys.modules.get("slicer")
    if slicer is not None and "packaging" in vars(slicer):
        delattr(slicer, "packaging")


def install() -> None:
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
    versions.on_change(forget)


def install_pip_installer(monkeypatch, installer) -> None:
    """Make `installer` the release's pip installer: `slicer.util.pip_install` up to 5.10, in 5.12
    `slicer.packaging.pip_install` (which pip_ensure calls and slicer.util.pip_install delegates to)."""
    import slicer

    if versions.at_least("5.12"):
        import slicer.packaging as packaging

        monkeypatch.setattr(packaging, "pip_install", lambda requirements, **kwargs: installer(requirements))
        monkeypatch.setattr(
            slicer.util, "pip_install", lambda requirements, **kwargs: packaging.pip_install(requirements)
        )
    else:
        monkeypatch.setattr(slicer.util, "pip_install", installer)
