"""The self-test on the extension build server: there the PyTorch extension is built but torch itself
is not installed (PyTorchUtils installs it on first use), and `slicer_add_python_unittest` still runs
SADMModuleTest. As SlicerTotalSegmentator's self-test does, it checks what needs no torch and says
plainly that generation was skipped, instead of failing."""

from __future__ import annotations

import logging
import sys

import SADMModule


def test_self_test_passes_and_says_generation_was_skipped_without_torch(scene, qapp, monkeypatch, caplog):
    # A None entry makes `import torch` raise ModuleNotFoundError, as an absent package does.
    monkeypatch.setitem(sys.modules, "torch", None)
    with caplog.at_level(logging.WARNING):
        SADMModule.SADMModuleTest().runTest()
    skipped = [r.getMessage() for r in caplog.records if "generation steps skipped" in r.getMessage()]
    assert len(skipped) == 1 and "torch" in skipped[0] and "PyTorch extension" in skipped[0], skipped
