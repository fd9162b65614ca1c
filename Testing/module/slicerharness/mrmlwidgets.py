"""Stand-ins for Slicer's MRML widgets, bound to a real vtkMRMLScene of the slicer-core wheel.

Only what the SADM panel touches: the scene propagation of qMRMLWidget, and node selectors that
list scene nodes by class and report the current / checked nodes.
"""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets
from PySide6.QtCore import Property, Signal


class qMRMLWidget(QtWidgets.QWidget):
    """Top-level panel widget. In Slicer the .ui connects mrmlSceneChanged to each selector's
    setMRMLScene; here setMRMLScene hands the scene to every descendant that takes one."""

    mrmlSceneChanged = Signal(object)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._scene = None

    def mrmlScene(self):
        return self._scene

    def setMRMLScene(self, scene) -> None:
        self._scene = scene
        for child in self.findChildren(QtWidgets.QWidget):
            if child is not self and hasattr(child, "setMRMLScene") and not isinstance(child, qMRMLWidget):
                child.setMRMLScene(scene)
        self.mrmlSceneChanged.emit(scene)


class _SceneNodeList:
    """The scene nodes of the selector's classes, refreshed when nodes are added or removed."""

    def __init__(self, on_change) -> None:
        self.scene = None
        self.node_types: list[str] = []
        self.show_child_node_types = True
        self.show_hidden = False
        self._on_change = on_change
        self._tags: list[int] = []

    def set_scene(self, scene) -> None:
        if self.scene is not None:
            for tag in self._tags:
                self.scene.RemoveObserver(tag)
        self._tags = []
        self.scene = scene
        if scene is not None:
            for event in (scene.NodeAddedEvent, scene.NodeRemovedEvent, scene.EndCloseEvent):
                self._tags.append(scene.AddObserver(event, lambda caller, event: self._on_change()))
        self._on_change()

    def nodes(self) -> list:
        if self.scene is None:
            return []
        found = []
        for index in range(self.scene.GetNumberOfNodes()):
            node = self.scene.GetNthNode(index)
            if node.GetHideFromEditors() and not self.show_hidden:
                continue
            if any(self._matches(node, class_name) for class_name in self.node_types):
                found.append(node)
        return found

    def _matches(self, node, class_name: str) -> bool:
        return node.IsA(class_name) if self.show_child_node_types else node.GetClassName() == class_name


class qMRMLNodeComboBox(QtWidgets.QComboBox):
    """Selects one scene node of the given classes (Slicer's qMRMLNodeComboBox, selection only)."""

    currentNodeChanged = Signal(object)
    currentNodeIDChanged = Signal(str)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._list = _SceneNodeList(self._refresh)
        self._none_enabled = False
        self._none_display = "None"
        self._flags = {"addEnabled": False, "removeEnabled": False, "renameEnabled": False, "editEnabled": False}
        self._last_id: str | None = None
        self.currentIndexChanged.connect(self._emit_if_changed)

    # --- Qt properties set from the .ui file ---
    def _getNodeTypes(self) -> list:
        return list(self._list.node_types)

    def setNodeTypes(self, types) -> None:
        self._list.node_types = [str(t) for t in types]
        self._refresh()

    def _getNoneEnabled(self) -> bool:
        return self._none_enabled

    def setNoneEnabled(self, enabled: bool) -> None:
        self._none_enabled = bool(enabled)
        self._refresh()

    def _getShowChildNodeTypes(self) -> bool:
        return self._list.show_child_node_types

    def setShowChildNodeTypes(self, show: bool) -> None:
        self._list.show_child_node_types = bool(show)
        self._refresh()

    def _getNoneDisplay(self) -> str:
        return self._none_display

    def setNoneDisplay(self, text: str) -> None:
        self._none_display = text
        self._refresh()

    def _flag_property(name):
        return Property(
            bool, lambda self: self._flags[name], lambda self, value: self._flags.__setitem__(name, bool(value))
        )

    nodeTypes = Property(list, _getNodeTypes, setNodeTypes)
    noneEnabled = Property(bool, _getNoneEnabled, setNoneEnabled)
    showChildNodeTypes = Property(bool, _getShowChildNodeTypes, setShowChildNodeTypes)
    noneDisplay = Property(str, _getNoneDisplay, setNoneDisplay)
    addEnabled = _flag_property("addEnabled")
    removeEnabled = _flag_property("removeEnabled")
    renameEnabled = _flag_property("renameEnabled")
    editEnabled = _flag_property("editEnabled")

    # --- the selector API the panel and parameterNodeWrapper use ---
    def setMRMLScene(self, scene) -> None:
        self._list.set_scene(scene)

    def mrmlScene(self):
        return self._list.scene

    def currentNode(self):
        node_id = self.currentData()
        return self._list.scene.GetNodeByID(node_id) if node_id and self._list.scene is not None else None

    def currentNodeID(self) -> str:
        return self.currentData() or ""

    def setCurrentNode(self, node) -> None:
        target = node.GetID() if node is not None else None
        index = self.findData(target) if target else (0 if self._none_enabled else -1)
        self.setCurrentIndex(index)

    def setCurrentNodeID(self, node_id: str) -> None:
        self.setCurrentNode(self._list.scene.GetNodeByID(node_id) if node_id else None)

    def nodeCount(self) -> int:
        return len(self._list.nodes())

    def _refresh(self) -> None:
        previous = self._last_id
        self.blockSignals(True)
        self.clear()
        if self._none_enabled:
            self.addItem(self._none_display, None)
        for node in self._list.nodes():
            self.addItem(node.GetName(), node.GetID())
        index = self.findData(previous) if previous else -1
        if index < 0:
            # Slicer keeps "None" when it is allowed, otherwise it selects the first node.
            index = 0 if self.count() else -1
        self.setCurrentIndex(index)
        self.blockSignals(False)
        self._emit_if_changed()

    def _emit_if_changed(self, *_) -> None:
        current = self.currentData()
        if current != self._last_id:
            self._last_id = current
            self.currentNodeIDChanged.emit(current or "")
            self.currentNodeChanged.emit(self.currentNode())


class qMRMLCheckableNodeComboBox(QtWidgets.QComboBox):
    """Selects several scene nodes by check boxes (Slicer's qMRMLCheckableNodeComboBox)."""

    checkedNodesChanged = Signal()

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._list = _SceneNodeList(self._refresh)
        self._items = QtGui.QStandardItemModel(self)
        self.setModel(self._items)
        self._items.itemChanged.connect(self._on_item_changed)
        self.setEditable(True)  # the line edit shows the checked names, as CTK's checkable combo does
        self.lineEdit().setReadOnly(True)
        self.view().pressed.connect(self._toggle)

    def _getNodeTypes(self) -> list:
        return list(self._list.node_types)

    def setNodeTypes(self, types) -> None:
        self._list.node_types = [str(t) for t in types]
        self._refresh()

    def _getShowChildNodeTypes(self) -> bool:
        return self._list.show_child_node_types

    def setShowChildNodeTypes(self, show: bool) -> None:
        self._list.show_child_node_types = bool(show)
        self._refresh()

    nodeTypes = Property(list, _getNodeTypes, setNodeTypes)
    showChildNodeTypes = Property(bool, _getShowChildNodeTypes, setShowChildNodeTypes)

    def setMRMLScene(self, scene) -> None:
        self._list.set_scene(scene)

    def checkedNodes(self) -> list:
        return [
            self._node(row)
            for row in range(self._items.rowCount())
            if self._items.item(row).checkState() == QtCore.Qt.Checked
        ]

    def checkState(self, node):
        item = self._item_for(node)
        return item.checkState() if item is not None else QtCore.Qt.Unchecked

    def setCheckState(self, node, state) -> None:
        item = self._item_for(node)
        if item is not None:
            item.setCheckState(QtCore.Qt.CheckState(state))

    def _node(self, row: int):
        return self._list.scene.GetNodeByID(self._items.item(row).data(QtCore.Qt.UserRole))

    def _item_for(self, node):
        for row in range(self._items.rowCount()):
            if self._items.item(row).data(QtCore.Qt.UserRole) == node.GetID():
                return self._items.item(row)
        return None

    def _toggle(self, index: QtCore.QModelIndex) -> None:
        item = self._items.itemFromIndex(index)
        item.setCheckState(QtCore.Qt.Unchecked if item.checkState() == QtCore.Qt.Checked else QtCore.Qt.Checked)

    def _refresh(self) -> None:
        checked = (
            {node.GetID() for node in self.checkedNodes() if node is not None} if self._items.rowCount() else set()
        )
        self._items.blockSignals(True)
        self._items.clear()
        for node in self._list.nodes():
            item = QtGui.QStandardItem(node.GetName())
            item.setData(node.GetID(), QtCore.Qt.UserRole)
            item.setCheckable(True)
            item.setCheckState(QtCore.Qt.Checked if node.GetID() in checked else QtCore.Qt.Unchecked)
            self._items.appendRow(item)
        self._items.blockSignals(False)
        self._show_checked()
        if checked != {node.GetID() for node in self.checkedNodes()}:
            self.checkedNodesChanged.emit()

    def _on_item_changed(self, item) -> None:
        self._show_checked()
        self.checkedNodesChanged.emit()

    def _show_checked(self) -> None:
        self.lineEdit().setText(", ".join(node.GetName() for node in self.checkedNodes()))


WIDGET_CLASSES = (qMRMLWidget, qMRMLNodeComboBox, qMRMLCheckableNodeComboBox)
