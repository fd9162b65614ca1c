"""The PyTorch extension's `PyTorchUtils` module, as far as the SADM module meets it.

Modelled from SlicerPyTorch's PyTorchUtils/PyTorchUtils.py, `PyTorchUtilsLogic.installTorch(askConfirmation,
forceComputationBackend, torchVersionRequirement, torchvisionVersionRequirement)`:

- with askConfirmation (and not in testing mode) it asks `slicer.util.confirmOkCancelDisplay`; declined, it
  returns None;
- it installs synchronously on the main thread: `slicer.util._executePythonModule("light_the_torch",
  ["install", "torch<requirement>", "torchvision<requirement>"])`, whose output is read by
  `slicer.util.logProcessOutput` (Slicer v5.10.0 Base/Python/slicer/util.py), which calls
  `slicer.app.processEvents()` after every output line: clicks and timers run inside the install;
- then it runs `import torch` in Slicer's own process and returns the module.

`install(pip_lines, on_line)` makes `import PyTorchUtils` give this model; `on_line(n)` runs after the
n-th output line's processEvents (a test clicks there). `calls` records each installTorch call's arguments.
"""

from __future__ import annotations

import sys
import types

PIP_OUTPUT = [
    "Collecting torch>=2.1",
    "  Downloading torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl (899.7 MB)",
    "Installing collected packages: torch",
    "Successfully installed torch-2.13.0",
]


def make_module(pip_lines=PIP_OUTPUT, on_line=None) -> types.ModuleType:
    import slicer

    module = types.ModuleType("PyTorchUtils")
    module.calls = []

    class PyTorchUtilsLogic:
        def installTorch(
            self,
            askConfirmation=False,
            forceComputationBackend=None,
            torchVersionRequirement=None,
            torchvisionVersionRequirement=None,
        ):
            arguments = ["install", "torch" + (torchVersionRequirement or ""), "torchvision"]
            question = (
                f"PyTorch will be downloaded and installed using light-the-torch (ltt {' '.join(arguments)}). "
                "The process might take some minutes."
            )
            asked = askConfirmation and not slicer.app.commandOptions().testingEnabled
            if asked and not slicer.util.confirmOkCancelDisplay(question):
                return None
            module.calls.append(arguments)
            for number, _line in enumerate(pip_lines, start=1):  # logProcessOutput: one pass per line
                slicer.app.processEvents()
                if on_line is not None:
                    on_line(number)
            import torch  # into Slicer's own process, as installTorch does

            return torch

    module.PyTorchUtilsLogic = PyTorchUtilsLogic
    return module


def install(monkeypatch, pip_lines=PIP_OUTPUT, on_line=None) -> types.ModuleType:
    module = make_module(pip_lines, on_line)
    monkeypatch.setitem(sys.modules, "PyTorchUtils", module)
    return module
