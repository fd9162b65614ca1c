"""The SADM module's library: one job per file, so that SADMModule.py reads as the module, its
panel and the workflow. Importing the package makes the `sadm` engine importable first.

Installed extension: CMake puts `sadm` beside SADMModule.py (qt-scripted-modules is on sys.path).
Source checkout: the engine lives in ../SADMExtension.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

MODULE_DIR = Path(__file__).resolve().parent.parent  # holds SADMModule.py and Resources/


def _ensureEngineImportable() -> None:
    try:
        importlib.import_module("sadm")
    except ImportError:
        checkout = MODULE_DIR.parent / "SADMExtension"
        if (checkout / "sadm" / "__init__.py").is_file():
            sys.path.insert(0, str(checkout))


_ensureEngineImportable()
