"""The panel's node and model selectors: the model list (bundled models, folders loaded earlier, "Load
folder…") and the checked volumes of the volume-list input."""

from __future__ import annotations

import os
from pathlib import Path

import qt
import slicer
from slicer.i18n import tr as _


def count(widget) -> int:
    """Item count of a combo box: read as a Qt property, which every Python binding of Qt can do."""
    return int(widget.property("count"))


def fillModels(selector, available: dict) -> None:
    """Bundled models by name (their folder as tooltip), then "Load folder…"."""
    selector.clear()
    for name, folder in available.items():
        selector.addItem(name, name)
        selector.setItemData(count(selector) - 1, str(folder), qt.Qt.ToolTipRole)
    selector.addItem(_("Load folder…"), "")


def selectModel(selector, model: str) -> None:
    """Select `model`; a folder loaded earlier, or a bundled name that is not installed, is listed before
    "Load folder…"."""
    index = selector.findData(model)
    if index < 0:
        label = Path(model).name if os.sep in model or "/" in model else _("{name} (not installed)").format(name=model)
        index = max(0, count(selector) - 1)
        selector.insertItem(index, label, model)
        selector.setItemData(index, model, qt.Qt.ToolTipRole)
    selector.setCurrentIndex(index)


def checkVolumes(selector, volumes) -> None:
    """Check exactly `volumes` in the volume-list selector, without signals."""
    wanted = {node.GetID() for node in volumes if node is not None}
    selector.blockSignals(True)
    for node in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode"):
        state = qt.Qt.Checked if node.GetID() in wanted else qt.Qt.Unchecked
        if selector.checkState(node) != state:
            selector.setCheckState(node, state)
    selector.blockSignals(False)
