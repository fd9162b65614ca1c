"""A thin `slicer.parameterNodeWrapper`: typed properties stored in a vtkMRMLScriptedModuleNode, and
connectGui for the widget kinds the SADM panel binds (check box, spin boxes, choice combo box, line
edit, node selector). Storage follows Slicer's serializers (lists as `name.len` + `name.<i>`, nodes
as references) so a scene written here reads the same in Slicer.

Binding follows Base/Python/slicer/parameterNodeWrapper/wrapper.py and guiConnectors.py at the
modelled release (see versions.py): `connectGui` returns None in 5.6/5.8 and the tag from 5.10, every
connect adds a ModifiedEvent observer that is never removed, `disconnectGui` only detaches the
connectors of a known tag, a combo box connector clears and refills its box when created (old
connectors still bound to it see that), and the line-edit connector rewrites its text on every
update in 5.6/5.8. Writing to a widget whose C++ object is gone fails as PythonQt does ("Trying to
set property ... on a destroyed ... object"); each such write is recorded in DESTROYED_WRITES."""

from __future__ import annotations

import dataclasses
import types
import typing
import weakref

import shiboken6
import slicer
import vtk
from PySide6 import QtWidgets

from . import versions
from .mrmlwidgets import qMRMLNodeComboBox

PARAMETER_PROPERTY = "SlicerParameterName"
DESTROYED_WRITES: list[str] = []  # PythonQt's message for every write to a destroyed widget
_CONNECTORS: weakref.WeakSet = weakref.WeakSet()


def bound_connectors(widget) -> int:
    """How many parameter bindings (of any wrapper) still listen to `widget`."""
    return sum(1 for c in list(_CONNECTORS) if c._callback is not None and c.widget is widget)


@dataclasses.dataclass
class WithinRange:
    minimum: float
    maximum: float


@dataclasses.dataclass
class Choice:
    choices: typing.Sequence


@dataclasses.dataclass
class Default:
    value: typing.Any


def _split(annotated) -> tuple[typing.Any, list]:
    if typing.get_origin(annotated) is typing.Annotated:
        base, *extras = typing.get_args(annotated)
        return base, list(extras)
    return annotated, []


def _is_node_type(datatype) -> bool:
    return isinstance(datatype, type) and issubclass(datatype, slicer.vtkMRMLNode)


class _Serializer:
    """Reads and writes one typed value under a parameter name."""

    def __init__(self, datatype) -> None:
        self.datatype = datatype
        self.element = _Serializer(typing.get_args(datatype)[0]) if typing.get_origin(datatype) is list else None

    def default(self):
        return [] if self.element is not None else (None if _is_node_type(self.datatype) else self.datatype())

    def read(self, node, name: str):
        if self.element is not None:
            length = int(node.GetParameter(f"{name}.len") or 0)
            return [self.element.read(node, f"{name}.{i}") for i in range(length)]
        if _is_node_type(self.datatype):
            return node.GetNodeReference(name)
        text = node.GetParameter(name)
        if self.datatype is bool:
            return text == "True"
        return self.datatype(text) if text != "" or self.datatype is str else self.default()

    def write(self, node, name: str, value) -> None:
        if self.element is not None:
            old_length = int(node.GetParameter(f"{name}.len") or 0)
            for index, item in enumerate(value):
                self.element.write(node, f"{name}.{index}", item)
            for index in range(len(value), old_length):
                node.UnsetParameter(f"{name}.{index}")
                node.RemoveNodeReferenceIDs(f"{name}.{index}")
            node.SetParameter(f"{name}.len", str(len(value)))
        elif _is_node_type(self.datatype):
            node.SetParameter(name, "")
            node.SetNodeReferenceID(name, value.GetID() if value is not None else None)
        else:
            node.SetParameter(name, str(self.datatype(value)))

    def is_in(self, node, name: str) -> bool:
        return node.HasParameter(f"{name}.len" if self.element is not None else name)


class _Connector:
    """Keeps one widget and one parameter in step (Slicer's GuiConnector, reduced)."""

    def __init__(self, widget, datatype, extras: list) -> None:
        self.widget = widget
        self._callback = None
        _CONNECTORS.add(self)
        self.choices = next((e.choices for e in extras if isinstance(e, Choice)), None)
        within = next((e for e in extras if isinstance(e, WithinRange)), None)
        if isinstance(widget, QtWidgets.QComboBox) and not isinstance(widget, qMRMLNodeComboBox):
            if self.choices is None:
                raise RuntimeError(f"{widget.objectName()}: a QComboBox needs a Choice annotation")
            widget.clear()
            for choice in self.choices:
                widget.addItem(str(choice))
        elif isinstance(widget, qMRMLNodeComboBox):
            widget.setNodeTypes([datatype.__name__])
        elif within is not None and isinstance(widget, (QtWidgets.QSpinBox, QtWidgets.QDoubleSpinBox)):
            widget.setRange(within.minimum, within.maximum)

    def signal(self):
        w = self.widget
        if isinstance(w, qMRMLNodeComboBox):
            return w.currentNodeChanged
        if isinstance(w, QtWidgets.QComboBox):
            return w.currentIndexChanged
        if isinstance(w, QtWidgets.QCheckBox):
            return w.toggled
        if isinstance(w, QtWidgets.QLineEdit):
            return w.textChanged
        return w.valueChanged

    def on_changed(self, callback) -> None:
        """GuiConnector.onChanged: connect the widget's signal, or disconnect it for None."""
        if callback is None:
            if self._callback is not None and shiboken6.isValid(self.widget):
                self.signal().disconnect(self._changed)
        else:
            self.signal().connect(self._changed)
        self._callback = callback

    def _changed(self, *_) -> None:
        if self._callback:
            self._callback()

    def read(self):
        w = self.widget
        if isinstance(w, qMRMLNodeComboBox):
            return w.currentNode()
        if isinstance(w, QtWidgets.QComboBox):
            return self.choices[w.currentIndex()]
        if isinstance(w, QtWidgets.QCheckBox):
            return w.isChecked()
        if isinstance(w, QtWidgets.QLineEdit):
            return w.text()
        return w.value()

    def write(self, value) -> None:
        w = self.widget
        if not shiboken6.isValid(w):
            message = f"Trying to set property on a destroyed {type(w).__name__} object"
            DESTROYED_WRITES.append(message)
            raise AttributeError(message)
        if isinstance(w, qMRMLNodeComboBox):
            w.setCurrentNode(value)
        elif isinstance(w, QtWidgets.QComboBox):
            w.setCurrentIndex(list(self.choices).index(value))
        elif isinstance(w, QtWidgets.QCheckBox):
            w.setChecked(bool(value))
        elif isinstance(w, QtWidgets.QLineEdit):
            # setText moves the cursor to the end: 5.10 writes only a changed value, 5.6/5.8 always.
            if not versions.at_least("5.10") or w.text() != value:
                w.setText(value)
        else:
            w.setValue(value)


def parameterNodeWrapper(cls):
    """Give `cls` one typed property per annotated field, stored in the wrapped parameter node."""
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = {}
    for name, annotated in hints.items():
        datatype, extras = _split(annotated)
        serializer = _Serializer(datatype)
        default = getattr(cls, name) if name in vars(cls) else serializer.default()
        fields[name] = (datatype, extras, serializer, default)
        setattr(cls, name, _make_property(name))

    def __init__(self, parameterNode) -> None:
        self.parameterNode = parameterNode
        self._guis: dict[int, dict] = {}
        self._gui_observers: dict[int, int] = {}
        self._next_tag = 0
        self._updating_gui = False
        with slicer.util.NodeModify(parameterNode):
            for name, (_, _, serializer, default) in fields.items():
                if not serializer.is_in(parameterNode, name):
                    serializer.write(parameterNode, name, default)

    def connectGui(self, gui):
        widgets = (
            gui.__dict__.values() if not isinstance(gui, QtWidgets.QWidget) else gui.findChildren(QtWidgets.QWidget)
        )
        mapping = {}
        for widget in widgets:
            name = widget.property(PARAMETER_PROPERTY) if hasattr(widget, "property") else None
            if name:
                mapping[name] = widget
        tag = self.connectParametersToGui(mapping)
        return tag if versions.at_least("5.10") else None  # 5.6/5.8: `_connectGui` drops the tag

    def connectParametersToGui(self, mapping: dict) -> int:
        connectors = {}
        for name, widget in mapping.items():
            datatype, extras, _, _ = fields[name]
            connectors[name] = _Connector(widget, datatype, extras)
        tag = self._next_tag
        self._next_tag += 1
        self._guis[tag] = connectors
        for name, connector in connectors.items():
            connector.write(getattr(self, name))
            connector.on_changed(_gui_to_parameter(self, name, connector))
        # Slicer adds one observer per connect (wrapper.py); up to 5.10 it is never removed.
        observer = self.parameterNode.AddObserver(vtk.vtkCommand.ModifiedEvent, lambda caller, event: _update_gui(self))
        self._gui_observers[tag] = observer
        return tag

    def disconnectGui(self, tag) -> None:
        for connector in self._guis.pop(tag, {}).values():
            connector.on_changed(None)
        if versions.at_least("5.12") and tag in self._gui_observers:  # 5.12: `_guiVtkObserverTags`
            self.parameterNode.RemoveObserver(self._gui_observers.pop(tag))

    cls.__init__ = __init__
    cls.allParameters = fields
    cls.connectGui = connectGui
    cls.connectParametersToGui = connectParametersToGui
    cls.disconnectGui = disconnectGui
    cls.AddObserver = lambda self, event, callback, priority=0.0: self.parameterNode.AddObserver(
        event, callback, priority
    )
    cls.RemoveObserver = lambda self, tag: self.parameterNode.RemoveObserver(tag)
    cls.StartModify = lambda self: self.parameterNode.StartModify()
    cls.EndModify = lambda self, wasModified: self.parameterNode.EndModify(wasModified)
    cls.Modified = lambda self: self.parameterNode.Modified()
    return cls


def _make_property(name: str) -> property:
    def getter(self):
        return type(self).allParameters[name][2].read(self.parameterNode, name)

    def setter(self, value) -> None:
        with slicer.util.NodeModify(self.parameterNode):
            type(self).allParameters[name][2].write(self.parameterNode, name, value)

    return property(getter, setter)


def _gui_to_parameter(wrapper, name: str, connector: _Connector):
    def changed() -> None:
        with slicer.util.NodeModify(wrapper.parameterNode):
            if not wrapper._updating_gui:
                setattr(wrapper, name, connector.read())

    return changed


def _update_gui(wrapper) -> None:
    if wrapper._updating_gui:
        return
    wrapper._updating_gui = True
    try:
        with slicer.util.NodeModify(wrapper.parameterNode):
            for connectors in list(wrapper._guis.values()):
                for name, connector in connectors.items():
                    connector.write(getattr(wrapper, name))
    finally:
        wrapper._updating_gui = False


def make_module() -> types.ModuleType:
    module = types.ModuleType("slicer.parameterNodeWrapper")
    module.parameterNodeWrapper = parameterNodeWrapper
    module.WithinRange = WithinRange
    module.Choice = Choice
    module.Default = Default
    return module
