"""Run SADMModule.py outside desktop Slicer (test harness, never shipped).

`install()` makes the imports of a scripted module work in a plain Python with the `slicer-core`
wheel and PySide6: `qt` is PySide6, `ctk` holds ctkCollapsibleButton, and the `slicer` package of the
wheel (real MRML scene, nodes, storage, slicer.util array helpers) gains the GUI pieces the module
uses: slicer.app, qMRML node selectors, ScriptedLoadableModule, parameterNodeWrapper, i18n, the
sequences module and Sample Data. `new_scene()` gives every test a fresh scene laid out like
Slicer's (layout node, Red/Yellow/Green slice composite nodes, sequences logic).

Where Slicer 5.6, 5.8 and 5.10 differ in what the module touches, the stand-ins follow the release
set in `versions.py` (Slicer's source at each tag; see Testing/module/README.md). `eventloop.py`
waits as Slicer's main thread does, holding the GIL.
"""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[3]
MODULE_DIR = REPOSITORY / "SADMModule"
MODULE_PATHS = {"SADMModule": str(MODULE_DIR / "SADMModule.py")}

_installed = False


def _layouts() -> dict:
    import slicer

    return {
        slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpView: ("Red", "Yellow", "Green"),
        slicer.vtkMRMLLayoutNode.SlicerLayoutSideBySideView: ("Red", "Yellow"),
    }


def install() -> None:
    """Idempotent: set up `qt`, `ctk` and the Slicer GUI stand-ins, then an empty scene."""
    global _installed
    if _installed:
        return
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6 import QtWidgets

    from .qtmodules import make_ctk_module, make_qt_module

    sys.modules["qt"] = make_qt_module()
    sys.modules["ctk"] = make_ctk_module()
    qapp = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["SADM harness"])
    qapp.setStyle("Fusion")

    import slicer

    from . import application, mrmlwidgets, packaging, parameternode, scriptedmodule

    for widget_class in mrmlwidgets.WIDGET_CLASSES:
        setattr(slicer, widget_class.__name__, widget_class)
    slicer.app = application.Application(qapp)
    slicer.modules = types.SimpleNamespace(sequences=application.SequencesModule())
    application.install_util_overrides(MODULE_PATHS)

    submodules = {
        "slicer.ScriptedLoadableModule": scriptedmodule.make_module(),
        "slicer.parameterNodeWrapper": parameternode.make_module(),
        "slicer.i18n": _i18n_module(),
    }
    for name, module in submodules.items():
        sys.modules[name] = module
        setattr(slicer, name.split(".", 1)[1], module)
    sys.modules["SampleData"] = application.make_sample_data_module()
    packaging.install()  # `slicer.packaging` importable from 5.12 only
    if str(MODULE_DIR) not in sys.path:
        sys.path.insert(0, str(MODULE_DIR))
    _installed = True
    new_scene()


def new_scene():
    """A fresh scene as Slicer starts one: layout node, slice composite nodes, sequences logic, and the
    default colour nodes that Slicer's colour logic adds (vtkMRMLColorLogic::AddDefaultColorNodes; the
    wheel has no application logic to find Slicer's colour files, so the file-based tables such as
    Inferno are missing here while Slicer has them: code must work without them)."""
    import slicer
    import vtk

    scene = slicer.vtkMRMLScene()
    slicer.mrmlScene = scene
    slicer.modules.sequences.bind(scene)
    warnings = vtk.vtkObject.GetGlobalWarningDisplay()
    vtk.vtkObject.GlobalWarningDisplayOff()  # "FindDefaultColorFiles failed: Unable to get application logic"
    colours = slicer.vtkSlicerColorLogic()
    colours.SetMRMLScene(scene)
    colours.SetMRMLScene(None)  # the nodes stay; the logic observes nothing afterwards
    vtk.vtkObject.SetGlobalWarningDisplay(warnings)
    layout = slicer.vtkMRMLLayoutNode()
    layout.SetSingletonTag("vtkMRMLLayoutNode")
    for arrangement, views in _layouts().items():
        items = "".join(f'<item><view class="vtkMRMLSliceNode" singletontag="{view}"/></item>' for view in views)
        layout.AddLayoutDescription(arrangement, f'<layout type="horizontal">{items}</layout>')
    layout.SetViewArrangement(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpView)
    scene.AddNode(layout)
    for view in ("Red", "Yellow", "Green"):
        composite = slicer.vtkMRMLSliceCompositeNode()
        composite.SetLayoutName(view)
        scene.AddNode(composite)
    slicer.app.messages.clear()
    return scene


def _i18n_module() -> types.ModuleType:
    module = types.ModuleType("slicer.i18n")
    module.tr = lambda text: text
    module.translate = lambda context, text: text
    return module


def module_parent(path: str = MODULE_PATHS["SADMModule"]) -> types.SimpleNamespace:
    """What Slicer passes to a ScriptedLoadableModule: an object holding the module's metadata."""
    return types.SimpleNamespace(path=path)
