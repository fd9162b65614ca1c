"""`slicer.app`, `slicer.modules.sequences` and the Sample Data module, as far as the SADM module uses
them: the layout manager sets the scene's layout node, the sequence toolbar remembers the active
browser, Sample Data loads registered local files with the wheel's storage nodes."""

from __future__ import annotations

import hashlib
import logging
import types
import urllib.parse
import urllib.request
from pathlib import Path

import slicer
from PySide6 import QtCore, QtWidgets
from PySide6.QtCore import Signal

from . import versions


class LayoutManager:
    """Switches the view arrangement of the scene's layout node, as qSlicerLayoutManager does."""

    def _layout_node(self):
        return slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLLayoutNode")

    def setLayout(self, layout: int) -> None:
        self._layout_node().SetViewArrangement(layout)

    def layout(self) -> int:
        return self._layout_node().GetViewArrangement()


class Application(QtCore.QObject):
    """slicer.app: signals, cursor, layout manager; messages shown to the user are recorded."""

    startupCompleted = Signal()

    def __init__(self, qapp: QtWidgets.QApplication) -> None:
        super().__init__()
        self.qapp = qapp
        self.messages: list[tuple[str, str]] = []  # (kind, text) of every popup the module asked for
        self.confirmAnswer = True
        self._layout_manager = LayoutManager()

    def processEvents(self) -> None:
        from .eventloop import keeping_none

        keeping_none(self.qapp.processEvents)

    def testingEnabled(self) -> bool:
        return False

    def commandOptions(self):
        return types.SimpleNamespace(testingEnabled=False, noMainWindow=False)

    def layoutManager(self) -> LayoutManager:
        return self._layout_manager

    def setOverrideCursor(self, cursor) -> None:
        self.qapp.setOverrideCursor(cursor)

    def restoreOverrideCursor(self) -> None:
        self.qapp.restoreOverrideCursor()


class SequenceBrowserToolBar:
    def __init__(self) -> None:
        self._active = None

    def setActiveBrowserNode(self, browser) -> None:
        self._active = browser

    def activeBrowserNode(self):
        return self._active


class SequencesModule:
    """slicer.modules.sequences: the real vtkSlicerSequencesLogic of the wheel, bound to the scene."""

    def __init__(self) -> None:
        self._logic = None
        self._toolbar = SequenceBrowserToolBar()

    def bind(self, scene) -> None:
        self._logic = slicer.vtkSlicerSequencesLogic()
        self._logic.SetMRMLScene(scene)
        self._toolbar = SequenceBrowserToolBar()

    def logic(self):
        return self._logic

    def toolBar(self) -> SequenceBrowserToolBar:
        return self._toolbar


def _record(kind: str):
    def display(text, windowTitle=None, parent=None, **kwargs):
        details = kwargs.get("detailedText")  # shown under "Show Details..." in Slicer's message box
        slicer.app.messages.append((kind, str(text) + (f"\n{details}" if details else "")))
        logging.info("%s: %s", kind, text)
        return slicer.app.confirmAnswer if kind == "confirm" else None

    return display


class _FromRelease:
    """A static method that exists only from a given Slicer release on (AttributeError before it)."""

    def __init__(self, release: str, function) -> None:
        self.release, self.function = release, function

    def __get__(self, instance, owner):
        if not versions.at_least(self.release):
            raise AttributeError(f"Slicer {versions.current()} has no such method (it exists from {self.release})")
        return self.function


def make_sample_data_module() -> types.ModuleType:
    """The Sample Data module: a registry of sources, and loading of local (file://) sources."""
    module = types.ModuleType("SampleData")
    module.sources = {}

    def record(category, sampleName, uris, fileNames, nodeNames, thumbnailFileName, loadFileTypes, checksums):
        module.sources[sampleName] = types.SimpleNamespace(
            category=category,
            sampleName=sampleName,
            uris=uris,
            fileNames=fileNames,
            nodeNames=nodeNames,
            thumbnailFileName=thumbnailFileName,
            loadFileTypes=loadFileTypes,
            checksums=checksums,
        )

    # SampleDataLogic.registerCustomSampleDataSource, parameter for parameter as at each tag
    # (Modules/Scripted/SampleData/SampleData.py): 5.6 knows only `loadFileType`.
    def register_5_6(
        category="Custom",
        sampleName=None,
        uris=None,
        fileNames=None,
        nodeNames=None,
        customDownloader=None,
        thumbnailFileName=None,
        loadFileType="VolumeFile",
        loadFiles=None,
        loadFileProperties={},  # noqa: B006  (Slicer's own signature)
        checksums=None,
    ) -> None:
        record(category, sampleName, uris, fileNames, nodeNames, thumbnailFileName, loadFileType, checksums)

    def register_5_8(
        category="Custom",
        sampleName=None,
        uris=None,
        fileNames=None,
        nodeNames=None,
        customDownloader=None,
        thumbnailFileName=None,
        loadFileTypes=None,
        loadFiles=None,
        loadFileProperties={},  # noqa: B006  (Slicer's own signature)
        checksums=None,
        loadFileType=None,
    ) -> None:
        if (loadFileType is not None) and (loadFileTypes is not None):
            raise ValueError("loadFileType and loadFileTypes cannot be specified at the same time")
        if (loadFileType is not None) and (loadFileTypes is None):
            loadFileTypes = loadFileType
        record(category, sampleName, uris, fileNames, nodeNames, thumbnailFileName, loadFileTypes, checksums)

    class SampleDataLogic:
        """Up to 5.10 a category is just the source's `category`; 5.12 adds registerCustomSampleDataCategory."""

        registerCustomSampleDataCategory = _FromRelease(
            "5.12", lambda category, title: module.categoryTitles.__setitem__(category, title)
        )

        @staticmethod
        def registerCustomSampleDataSource(*args, **kwargs) -> None:
            register = register_5_8 if versions.at_least("5.8") else register_5_6
            register(*args, **kwargs)

        def downloadSample(self, sampleName):
            return _load_source(module.sources[sampleName])

    module.categoryTitles = {}
    module.SampleDataLogic = SampleDataLogic
    module.downloadSample = lambda sampleName: SampleDataLogic().downloadSample(sampleName)
    return module


def _load_source(source):
    """Load a registered local file into the scene, checking its checksum as Sample Data does."""
    path = Path(urllib.request.url2pathname(urllib.parse.urlparse(source.uris).path))
    algorithm, digest = source.checksums.split(":")
    actual = hashlib.new(algorithm.lower(), path.read_bytes()).hexdigest()
    if actual != digest.lower():
        raise RuntimeError(f"checksum mismatch for {path}: {actual} != {digest}")
    if source.loadFileTypes == "SequenceFile":
        node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSequenceNode", source.nodeNames)
        storage = slicer.vtkMRMLVolumeSequenceStorageNode()
    else:
        node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", source.nodeNames)
        storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(path))
    storage.SetScene(slicer.mrmlScene)
    if not storage.ReadData(node):
        raise RuntimeError(f"could not read {path}")
    node.SetName(source.nodeNames)
    return node


def install_util_overrides(module_paths: dict[str, str]) -> None:
    """slicer.util functions that need the desktop application, replaced by harness versions."""
    from .mrmlwidgets import WIDGET_CLASSES
    from .qtmodules import ctkCollapsibleButton

    util = slicer.util

    def loadUI(path: str):
        """Load a .ui with QUiLoader; the scene connections are dropped (qMRMLWidget propagates it)."""
        import re

        from PySide6 import QtUiTools

        text = Path(path).read_text(encoding="utf-8")
        text = re.sub(r"<connections>.*?</connections>", "", text, flags=re.S)
        loader = QtUiTools.QUiLoader()
        for widget_class in (*WIDGET_CLASSES, ctkCollapsibleButton):
            loader.registerCustomWidget(widget_class)
        buffer = QtCore.QBuffer()
        buffer.setData(QtCore.QByteArray(text.encode()))
        buffer.open(QtCore.QIODevice.ReadOnly)
        widget = loader.load(buffer)
        if widget is None:
            raise RuntimeError(f"Could not load UI file {path}: {loader.errorString()}")
        return widget

    def childWidgetVariables(widget):
        ui = types.SimpleNamespace()
        for child in widget.findChildren(QtWidgets.QWidget):
            if child.objectName():
                setattr(ui, child.objectName(), child)
        return ui

    util.loadUI = loadUI
    util.childWidgetVariables = childWidgetVariables
    util.errorDisplay = _record("error")
    util.warningDisplay = _record("warning")
    util.infoDisplay = _record("info")
    util.confirmOkCancelDisplay = _record("confirm")
    util.confirmYesNoDisplay = _record("confirm")
    util.modulePath = lambda name: module_paths[name]
    util.resetSliceViews = lambda: None
    util.mainWindow = lambda: None
