"""Which Slicer release the harness models. Each difference the SADM module touches is modelled from
Slicer's own source at that release's tag (github.com/Slicer/Slicer, tags v5.6.0, v5.8.0, v5.10.0,
v5.12.3):

- Modules/Scripted/SampleData/SampleData.py, `SampleDataLogic.registerCustomSampleDataSource`:
  5.6 takes `loadFileType` only; 5.8 and 5.10 take `loadFileTypes` and still accept `loadFileType`
  (both at once is a ValueError). `registerCustomSampleDataCategory(category, title)` exists from 5.12.
- Base/Python/slicer/parameterNodeWrapper/wrapper.py, `_connectGui`: returns None in 5.6 and 5.8
  (the tag of `_connectParametersToGui` is dropped), the tag in 5.10; `connectParametersToGui`
  returns the tag in all of them. `_disconnectGui(tag)` ignores an unknown tag (None); from 5.12 it
  also removes the ModifiedEvent observer its connect added (before, that observer stays forever).
- Base/Python/slicer/parameterNodeWrapper/guiConnectors.py, `QLineEditToStrConnector.write`: sets
  the text unconditionally in 5.6 and 5.8 (the cursor jumps to the end), only when it differs from 5.10.
- Base/Python/slicer/packaging.py (new in 5.12): `pip_ensure`, `pip_check`, `pip_install`; see
  slicerharness/packaging.py. `slicer.util.pip_install` delegates to it from 5.12.
"""

from __future__ import annotations

SLICER_VERSIONS = ("5.6", "5.8", "5.10", "5.12")
DEFAULT_VERSION = "5.10"

_current = DEFAULT_VERSION
_listeners: list = []


def on_change(listener) -> None:
    """Call `listener()` whenever the modelled release changes (e.g. to drop a module it lacks)."""
    if listener not in _listeners:
        _listeners.append(listener)


def current() -> str:
    return _current


def at_least(version: str) -> bool:
    """True when the modelled release is `version` or newer ("5.8" < "5.10")."""
    return _key(_current) >= _key(version)


def set_version(version: str) -> None:
    global _current
    if version not in SLICER_VERSIONS:
        raise ValueError(f"Slicer {version} is not modelled; choose one of {SLICER_VERSIONS}")
    changed = version != _current
    _current = version
    for listener in _listeners if changed else ():
        listener()


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))
