"""Render the README's panel screenshot: the SADM panel after a generation with a bundled model.

    .venv/bin/python scripts/make_panel_screenshot.py            # Resources/Screenshots/SADMModule-panel.png
    .venv/bin/python scripts/make_panel_screenshot.py --out /tmp/panel.png --model cardiac-demo

The panel runs in the test harness (Testing/module/slicerharness: the real MRML scene of the
slicer-core wheel, PySide6 offscreen in place of PythonQt) with the bundled `cardiac-demo` model on the
bundled sample sequence a user gets from Sample Data (SADMCardiacSynthetic: ED→ES of a synthetic cine
subject), with one timepoint missing and two future ones. The tests never
write here; run this by hand when the panel changes and commit the picture.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPOSITORY / "Resources" / "Screenshots" / "SADMModule-panel.png"


def settle(qapp, qt, rounds: int = 3) -> None:
    for _ in range(rounds):
        qapp.processEvents()
        qapp.sendPostedEvents(None, qt.QEvent.DeferredDelete)


def render(out: Path, model: str, steps: int | None, samples: int, timeout_s: float, frames: int | None = None) -> Path:
    """The panel after generating with `model` on the first `frames` frames (all: None) of the sample."""
    sys.path[:0] = [str(REPOSITORY / "Testing" / "module"), str(REPOSITORY / "Testing")]
    import slicerharness

    slicerharness.install()
    import qt
    import SampleData
    import slicer

    import SADMModule
    from SADMModule import FUTURE, MISSING

    slicerharness.new_scene()
    SADMModule.registerSampleData()
    heart = SampleData.SampleDataLogic().downloadSample(SADMModule.SAMPLE_DATA[0][0])  # the bundled .seq.nrrd
    if frames is not None:
        for item in reversed(range(frames, heart.GetNumberOfDataNodes())):
            heart.RemoveDataNodeAtValue(heart.GetNthIndexValue(item))
    widget = SADMModule.SADMModuleWidget()
    qapp = slicer.app.qapp
    widget.parent.resize(430, 960)
    settle(qapp, qt)
    ui = widget.ui
    ui.inputSequenceSelector.setCurrentNode(heart)
    settle(qapp, qt)
    ui.timepointTable.cellWidget(2, 2).setCurrentIndex(ui.timepointTable.cellWidget(2, 2).findText(MISSING))
    ui.futureCountSpinBox.setValue(2)
    index = ui.modelSelector.findText(model)
    if index < 0:
        raise SystemExit(
            f"model {model!r} is not in the panel's list: "
            f"{[ui.modelSelector.itemText(i) for i in range(ui.modelSelector.count())]}"
        )
    ui.modelSelector.setCurrentIndex(index)
    ui.modelSelector.activated.emit(index)
    if steps is not None:
        ui.stepsSpinBox.setValue(steps)
    ui.samplesSpinBox.setValue(samples)
    settle(qapp, qt)
    roles = [ui.timepointTable.cellWidget(r, 2).currentText() for r in range(ui.timepointTable.rowCount())]
    assert roles.count(FUTURE) == 2 and roles.count(MISSING) == 1, roles

    ui.generateButton.click()
    deadline = time.monotonic() + timeout_s
    while widget._run is not None:
        if time.monotonic() > deadline:
            raise SystemExit(f"the generation did not finish in {timeout_s:.0f} s")
        settle(qapp, qt, 1)
        time.sleep(0.02)
    settle(qapp, qt)
    if widget.lastOutputs is None:
        raise SystemExit(f"the generation failed: {ui.statusLabel.text()}")
    widget.parent.resize(430, widget.parent.sizeHint().height())
    settle(qapp, qt)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not widget.parent.grab().save(str(out)):
        raise SystemExit(f"could not write {out}")
    widget.cleanup()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="PNG to write (default: the README's)")
    parser.add_argument("--model", default="cardiac-demo", help="a model in the panel's list (default: cardiac-demo)")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (default: the panel's)")
    parser.add_argument("--samples", type=int, default=2, help="draws per frame, for the uncertainty maps")
    parser.add_argument("--frames", type=int, default=None, help="use only the sample's first N frames")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the generation")
    args = parser.parse_args(argv)
    print(render(args.out, args.model, args.steps, args.samples, args.timeout, args.frames))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
