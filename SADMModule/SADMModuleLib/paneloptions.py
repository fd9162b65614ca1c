"""The panel's options as one object: the engine's own `SamplingOptions`.

Every field of `SADMModuleParameterNode` named after a field of `SamplingOptions` (in camelCase:
`samplerOptions` for `sampler_options`) reaches `build_request` under that field's name, so a new
sampling option needs only a widget in SADMModule.ui whose SlicerParameterName is the field and the
field on the parameter node (ARCHITECTURE.md, "Where to add"). A QLineEdit is kept in step by the
panel's text handler instead of a binding (see `textFields`).
"""

from __future__ import annotations

import dataclasses
import re

import qt

from sadm.generation.request import SamplingOptions

MODEL_GUIDANCE = -0.05
"""The panel's Guidance at its minimum, shown as "model's default": the model's own w, as the console API's
guidance=None (the spin box's special value; one step up is 0)."""

PANEL_VALUES = {"guidance": lambda w: None if w < 0 else w}
"""Where a panel value means something else to the engine: Guidance's minimum is the model's own w."""


def parameterName(option: str) -> str:
    """The parameter node's name of a SamplingOptions field: sampler_options -> samplerOptions."""
    return re.sub(r"_(\w)", lambda match: match.group(1).upper(), option)


def samplingOptions(parameters) -> dict:
    """The `build_request` keywords the parameter node holds: each SamplingOptions field it has."""
    options = {}
    for field in dataclasses.fields(SamplingOptions):
        name = parameterName(field.name)
        if hasattr(type(parameters), name):
            value = getattr(parameters, name)
            options[field.name] = PANEL_VALUES[field.name](value) if field.name in PANEL_VALUES else value
    return options


def parameterWidgets(ui) -> dict:
    """Parameter name -> widget, from the SlicerParameterName property set in the .ui file."""
    widgets = {}
    for widget in vars(ui).values():
        name = widget.property("SlicerParameterName")
        if name:
            widgets[str(name)] = widget
    return widgets


def textFields(ui) -> dict:
    """The line edits among them: Slicer 5.6/5.8's line-edit connector rewrites the text on every change,
    moving the cursor, so the panel keeps these in step itself."""
    return {name: widget for name, widget in parameterWidgets(ui).items() if isinstance(widget, qt.QLineEdit)}


def boundWidgets(ui) -> dict:
    """The widgets the parameter node binds (connectParametersToGui): every one but the text fields."""
    text = textFields(ui)
    return {name: widget for name, widget in parameterWidgets(ui).items() if name not in text}
