"""The panel's timepoint table: one row per timepoint (index, frame name, role box), sized to its rows."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import qt
from slicer.i18n import tr as _

from sadm.generation.request import FUTURE, ROLES


def setUp(table) -> None:
    """Column sizing and a hidden row header, once when the panel is built."""
    table.horizontalHeader().setSectionResizeMode(0, qt.QHeaderView.ResizeToContents)
    table.horizontalHeader().setSectionResizeMode(1, qt.QHeaderView.Stretch)
    table.horizontalHeader().setSectionResizeMode(2, qt.QHeaderView.ResizeToContents)
    table.verticalHeader().setVisible(False)


def fill(
    table, names: Sequence[str], roles: Sequence[str], running: bool, onRoleChanged: Callable[[int, object], None]
) -> None:
    """Rows for the input frames (role box: any role) and the future timepoints (role box: future only)."""
    table.setRowCount(len(roles))
    for row, role in enumerate(roles):
        isInputFrame = row < len(names)
        _setReadOnlyItem(table, row, 0, str(row))
        _setReadOnlyItem(table, row, 1, names[row] if isInputFrame else _("(future)"))
        choices = ",".join(ROLES if isInputFrame else (FUTURE,))
        combo = table.cellWidget(row, 2)
        if combo is None or combo.property("roleChoices") != choices:
            # Reuse role boxes across updates; only a row whose kind changed gets a new one.
            combo = qt.QComboBox()
            for choice in choices.split(","):
                combo.addItem(choice)
            combo.setProperty("roleChoices", choices)
            combo.currentIndexChanged.connect(lambda *args, row=row, combo=combo: onRoleChanged(row, combo))
            table.setCellWidget(row, 2, combo)
        combo.blockSignals(True)
        combo.setCurrentIndex(combo.findText(role))
        combo.blockSignals(False)
        combo.setEnabled(isInputFrame and not running)
    fitHeight(table, len(roles))


def setRoleBoxesEnabled(table, inputFrames: int, enabled: bool) -> None:
    """Role boxes of the input frames follow the panel's running state (future rows stay fixed)."""
    for row in range(int(table.property("rowCount"))):
        combo = table.cellWidget(row, 2)
        if combo is not None and row < inputFrames:
            combo.setEnabled(enabled)


def fitHeight(table, rows: int, maximumRows: int = 8) -> None:
    """Show every row without an empty band below (a scroll bar beyond `maximumRows`)."""
    shown = max(1, min(rows, maximumRows))
    height = int(table.horizontalHeader().property("sizeHint").height()) + 2 * int(table.property("frameWidth"))
    height += sum(table.rowHeight(row) for row in range(min(rows, shown))) + (shown - min(rows, shown)) * 30
    table.setMinimumHeight(height)
    table.setMaximumHeight(height)


def _setReadOnlyItem(table, row: int, column: int, text: str) -> None:
    item = qt.QTableWidgetItem(text)
    item.setFlags(qt.Qt.ItemIsSelectable | qt.Qt.ItemIsEnabled)
    table.setItem(row, column, item)
