"""PythonSlicer as Slicer ships it: a CTK application launcher that runs `python-real` as its child.

Modelled from Slicer's CMake/SlicerBlockInstallPython.cmake (PythonSlicer is `ctkAppLauncher` configured
to launch `python-real`) and CTK AppLauncher's Base/ctkAppLauncher.cpp:

- `runProcess`: the child is started with QProcess in ForwardedChannels mode, so it writes the
  launcher's own stdout and stderr and reads its stdin: here the child inherits the three descriptors.
- A kill of the launcher (SIGKILL, TerminateProcess) is not forwarded: the child keeps running.
- `applicationFinished`: a child that exits normally gives its exit code; one that crashed or was killed by
  a signal (QProcess::CrashExit) makes the launcher print "error: [<program>] exit abnormally - Report
  the problem." on stderr and exit with EXIT_FAILURE (1).

`cold_start_s` models a slow first start (the launcher reading its settings, python-real importing numpy
and the engine from a cold disk): python-real waits that long before it runs the module, so a command
the client sends meanwhile waits in the pipe, as it does in Slicer on the first run after a scene close.

`write_launcher(folder, cold_start_s)` writes an executable `PythonSlicer` (POSIX) that runs this model
with the test's interpreter as python-real.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

HARNESS_PARENT = str(Path(__file__).resolve().parent.parent)


def main(real_python: str, cold_start_s: float, arguments: list[str]) -> int:
    command = [real_python, *arguments]
    if cold_start_s > 0 and arguments[:1] == ["-m"]:
        module = arguments[1]
        boot = (
            f"import time, runpy, sys; time.sleep({float(cold_start_s)!r}); sys.argv[1:] = {arguments[2:]!r}; "
            f"runpy.run_module({module!r}, run_name='__main__', alter_sys=True)"
        )
        command = [real_python, "-c", boot, *arguments[2:]]
    child = subprocess.Popen(command)  # ForwardedChannels: stdin, stdout and stderr are the launcher's own
    returncode = child.wait()
    if returncode < 0:  # QProcess::CrashExit
        sys.stderr.write(f"error: [{real_python}] exit abnormally - Report the problem.\n")
        sys.stderr.flush()
        return 1
    return returncode


def write_launcher(folder: Path | str, cold_start_s: float = 0.0, real_python: str = sys.executable) -> str:
    """An executable PythonSlicer in `folder` that runs `real_python` behind the launcher model."""
    path = Path(folder) / "PythonSlicer"
    path.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        f"sys.path.insert(0, {HARNESS_PARENT!r})\n"
        "from slicerharness.launcher import main\n"
        f"sys.exit(main({real_python!r}, {float(cold_start_s)!r}, sys.argv[1:]))\n",
        encoding="utf-8",
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return os.fspath(path)


def children(pid: int) -> list[int]:
    """The pids of the direct children of `pid` (Linux /proc)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting for its parent counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def python_real(launcher_pid: int, timeout_s: float = 60.0) -> int:
    """The pid of the launcher's child, the Python that runs (or is about to run) the worker."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = children(launcher_pid)
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError("the launcher started no python-real")
