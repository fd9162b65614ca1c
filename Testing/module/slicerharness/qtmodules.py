"""PySide6 as Slicer's flat `qt` module, and the one CTK widget the panel uses."""

from __future__ import annotations

import types

from PySide6 import QtCore, QtGui, QtUiTools, QtWidgets
from PySide6.QtCore import Property, Signal


def make_qt_module() -> types.ModuleType:
    """PythonQt puts every Qt class in one `qt` namespace; do the same with PySide6."""
    qt = types.ModuleType("qt")
    qt.__doc__ = "PySide6 exposed as PythonQt's `qt` module (SADM test harness, never shipped)."
    for source in (QtCore, QtGui, QtWidgets, QtUiTools):
        for name in dir(source):
            if not name.startswith("_"):
                setattr(qt, name, getattr(source, name))
    return qt


class ctkCollapsibleButton(QtWidgets.QWidget):
    """CTK's section header: a full-width button with an arrow; clicking it hides the contents."""

    contentsCollapsed = Signal(bool)
    HEADER_HEIGHT = 24

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._text = ""
        self._collapsed = False
        self.setContentsMargins(6, self.HEADER_HEIGHT + 4, 6, 4)

    def _getText(self) -> str:
        return self._text

    def setText(self, text: str) -> None:
        self._text = text
        self.update()

    def _getCollapsed(self) -> bool:
        return self._collapsed

    def setCollapsed(self, collapsed: bool) -> None:
        self._collapsed = bool(collapsed)
        for child in self.findChildren(QtWidgets.QWidget, options=QtCore.Qt.FindDirectChildrenOnly):
            child.setVisible(not self._collapsed)
        self.updateGeometry()
        self.update()
        self.contentsCollapsed.emit(self._collapsed)

    text = Property(str, _getText, setText)
    collapsed = Property(bool, _getCollapsed, setCollapsed)

    def minimumSizeHint(self) -> QtCore.QSize:
        hint = super().minimumSizeHint()
        return QtCore.QSize(hint.width(), self.HEADER_HEIGHT) if self._collapsed else hint

    def mousePressEvent(self, event: QtGui.QMouseEvent) -> None:
        if event.position().y() <= self.HEADER_HEIGHT:
            self.setCollapsed(not self._collapsed)
        else:
            super().mousePressEvent(event)

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:
        painter = QtGui.QPainter(self)
        style = self.style()
        button = QtWidgets.QStyleOptionButton()
        button.initFrom(self)
        button.rect = QtCore.QRect(0, 0, self.width(), self.HEADER_HEIGHT)
        style.drawControl(QtWidgets.QStyle.CE_PushButtonBevel, button, painter, self)
        arrow = QtWidgets.QStyleOption()
        arrow.initFrom(self)
        arrow.rect = QtCore.QRect(8, (self.HEADER_HEIGHT - 10) // 2, 10, 10)
        primitive = (
            QtWidgets.QStyle.PE_IndicatorArrowRight if self._collapsed else QtWidgets.QStyle.PE_IndicatorArrowDown
        )
        style.drawPrimitive(primitive, arrow, painter, self)
        painter.drawText(
            QtCore.QRect(24, 0, self.width() - 30, self.HEADER_HEIGHT),
            int(QtCore.Qt.AlignVCenter | QtCore.Qt.AlignLeft),
            self._text,
        )
        if not self._collapsed:
            # CTK draws a sunken frame around the expanded contents.
            painter.setPen(self.palette().color(QtGui.QPalette.Mid))
            painter.drawRect(0, self.HEADER_HEIGHT, self.width() - 1, self.height() - self.HEADER_HEIGHT - 1)
        painter.end()


def make_ctk_module() -> types.ModuleType:
    ctk = types.ModuleType("ctk")
    ctk.__doc__ = "The CTK widgets the SADM panel uses, for the test harness."
    ctk.ctkCollapsibleButton = ctkCollapsibleButton
    return ctk
