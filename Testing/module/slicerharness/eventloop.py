"""Waiting as Slicer's main thread waits: inside the Qt event loop, holding Python's GIL.

Slicer embeds Python through PythonQt built without its GIL-releasing thread support (issue 19's
audit of Slicer 5.6-5.10 and PythonQt), so its main thread holds the GIL while the event loop idles
in C++, in every modelled release. A Python `threading.Thread` then
only runs while the main thread is inside a call that releases the GIL, such as the panel's own
`Thread.join(timeout)` slice. `time.sleep` in a test's wait loop would release the GIL and give the
worker full speed, which Slicer never does; here the idle time is spent in libc's `usleep` called
through `ctypes.PyDLL`, which keeps the GIL, as the C++ event loop does.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import time
from collections.abc import Callable

from PySide6 import QtCore, QtWidgets

_libc = ctypes.PyDLL(ctypes.util.find_library("c"))  # PyDLL: the GIL stays held during the call
_IDLE_US = 2000  # one idle slice of the event loop
_incref = ctypes.pythonapi.Py_IncRef  # given back for good: a list holding them would drop them again at exit
_incref.argtypes = [ctypes.c_void_p]
_incref.restype = None


def hold_gil_idle(microseconds: int = _IDLE_US) -> None:
    """Idle like the C++ event loop: no Python runs, and no other Python thread either."""
    _libc.usleep(ctypes.c_uint(int(microseconds)))


def keeping_none(call, *args) -> None:
    """`call(*args)`, giving back the references to None it drops. PySide6 6.12's
    `QCoreApplication.processEvents()` and `sendPostedEvents()` each release one reference to None they
    never took; Python 3.11's None is not immortal, so after a few thousand event-loop passes (a long
    module test run) it is deallocated: "Fatal Python error: none_dealloc". Every harness pass of the
    event loop goes through here."""
    before = sys.getrefcount(None)
    call(*args)  # (its result, None, would hold a reference while counted)
    lost = before - sys.getrefcount(None)  # before anything here holds None again
    for _ in range(lost):
        _incref(id(None))


def process_events() -> None:
    """One pass of the event loop, deferred deletes included, as Slicer's main loop runs them."""
    app = QtWidgets.QApplication.instance()
    keeping_none(app.processEvents)
    keeping_none(app.sendPostedEvents, None, QtCore.QEvent.DeferredDelete)


def wait_until(
    condition: Callable[[], bool], timeout: float = 120.0, on_tick: Callable[[], None] | None = None
) -> None:
    """Run the event loop until `condition()`; between passes idle with the GIL held."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the panel did not get there in time")
        process_events()
        if on_tick:
            on_tick()
        hold_gil_idle()
