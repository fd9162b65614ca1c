"""Render the README's panel screenshot and slice-view picture: the SADM panel after a generation
with a bundled model, and the two slice views the module shows then (input Red, generated Yellow).

    .venv/bin/python scripts/make_panel_screenshot.py   # Resources/Screenshots/SADMModule-{panel,slice-views}.png
    .venv/bin/python scripts/make_panel_screenshot.py --out /tmp/panel.png --views-out /tmp/views.png

The panel runs in the test harness (Testing/module/slicerharness: the real MRML scene of the
slicer-core wheel, PySide6 offscreen in place of PythonQt) with the bundled `cardiac-demo` model on the
bundled sample sequence a user gets from Sample Data (SADMCardiacSynthetic: ED→ES of a synthetic cine
subject), with one timepoint missing and two future ones. The slice views are resliced by Slicer's
own vtkMRMLSliceLogic (slicer-core: the MRML scene's slice, composite and display nodes, window/level
and colour tables; VTK offscreen), at the missing timepoint, where the input still holds the real
frame the model did not see. The tests never write here; run this by hand when the panel changes and
commit the pictures.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPOSITORY / "Resources" / "Screenshots" / "SADMModule-panel.png"
DEFAULT_VIEWS_OUT = REPOSITORY / "Resources" / "Screenshots" / "SADMModule-slice-views.png"
VIEW_PIXELS = 360


def settle(rounds: int = 3) -> None:
    """A few passes of the event loop through the harness's `process_events` (PySide6 6.12's own
    processEvents drops references to None: a long run ends in "Fatal Python error: none_dealloc")."""
    from slicerharness.eventloop import process_events

    for _ in range(rounds):
        process_events()


def render(
    out: Path,
    model: str,
    steps: int | None,
    samples: int,
    timeout_s: float,
    frames: int | None = None,
    views_out: Path | None = None,
) -> Path:
    """The panel after generating with `model` on the first `frames` frames (all: None) of the sample."""
    sys.path[:0] = [str(REPOSITORY / "Testing" / "module"), str(REPOSITORY / "Testing")]
    import slicerharness

    slicerharness.install()
    import SampleData
    import slicer

    import SADMModule
    from SADMModule import FUTURE, MISSING

    scene = slicerharness.new_scene()
    colors = slicer.vtkSlicerColorLogic()  # Slicer's start-up colour tables (Grey, ...), as the app has them
    colors.SetMRMLScene(scene)
    SADMModule.registerSampleData()
    heart = SampleData.SampleDataLogic().downloadSample(SADMModule.SAMPLE_DATA[0][0])  # the bundled .seq.nrrd
    if frames is not None:
        for item in reversed(range(frames, heart.GetNumberOfDataNodes())):
            heart.RemoveDataNodeAtValue(heart.GetNthIndexValue(item))
    widget = SADMModule.SADMModuleWidget()
    widget.parent.resize(430, 960)
    settle()
    ui = widget.ui
    ui.inputSequenceSelector.setCurrentNode(heart)
    settle()
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
    settle()
    roles = [ui.timepointTable.cellWidget(r, 2).currentText() for r in range(ui.timepointTable.rowCount())]
    assert roles.count(FUTURE) == 2 and roles.count(MISSING) == 1, roles

    ui.generateButton.click()
    deadline = time.monotonic() + timeout_s
    while widget._run is not None:
        if time.monotonic() > deadline:
            raise SystemExit(f"the generation did not finish in {timeout_s:.0f} s")
        settle(1)
        time.sleep(0.02)
    settle()
    if widget.lastOutputs is None:
        raise SystemExit(f"the generation failed: {ui.statusLabel.text()}")
    widget.parent.resize(430, widget.parent.sizeHint().height())
    settle()
    out.parent.mkdir(parents=True, exist_ok=True)
    if not widget.parent.grab().save(str(out)):
        raise SystemExit(f"could not write {out}")
    missing = roles.index(MISSING)
    if views_out is not None:
        render_slice_views(widget.lastOutputs, missing, views_out, model)
    widget.cleanup()
    return out


def render_slice_views(outputs, item: int, out: Path, model: str) -> Path:
    """The Red (input) and Yellow (generated) slice views at the output browser's item `item`."""
    import numpy as np
    import slicer
    from PIL import Image, ImageDraw
    from vtk.util.numpy_support import vtk_to_numpy

    outputs.browser.SetSelectedItemNumber(item)
    slicer.modules.sequences.logic().UpdateProxyNodesFromSequences(outputs.browser)
    index = outputs.sequence.GetNthIndexValue(item)
    unit = outputs.sequence.GetIndexUnit()
    tiles = []
    for view, title in (("Red", f"input, t = {index} {unit} (hidden from the model)"), ("Yellow", f"SADM ({model})")):
        logic = slicer.vtkMRMLSliceLogic()
        logic.SetMRMLScene(slicer.mrmlScene)
        sliceNode = logic.AddSliceNode(view)
        sliceNode.SetDimensions(VIEW_PIXELS, VIEW_PIXELS, 1)
        logic.FitSliceToAll()
        producer = logic.GetImageDataConnection().GetProducer()
        producer.Update()
        image = producer.GetOutputDataObject(0)
        width, height, _ = image.GetDimensions()
        rgba = vtk_to_numpy(image.GetPointData().GetScalars()).reshape(height, width, -1)[::-1]  # VTK rows go up
        tile = Image.fromarray(np.ascontiguousarray(rgba[..., :3]).astype(np.uint8))
        volume = slicer.mrmlScene.GetNodeByID(logic.GetSliceCompositeNode().GetBackgroundVolumeID())
        band = Image.new("RGB", (width, 40), (32, 32, 32))
        draw = ImageDraw.Draw(band)
        draw.text((8, 4), f"{view}: {volume.GetName()}", fill=(255, 255, 255))
        draw.text((8, 22), title, fill=(200, 200, 200))
        framed = Image.new("RGB", (width, height + 40))
        framed.paste(band, (0, 0))
        framed.paste(tile, (0, 40))
        tiles.append(framed)
    picture = Image.new("RGB", (sum(t.width for t in tiles) + 4 * (len(tiles) - 1), max(t.height for t in tiles)))
    x = 0
    for tile in tiles:
        picture.paste(tile, (x, 0))
        x += tile.width + 4
    out.parent.mkdir(parents=True, exist_ok=True)
    picture.save(out)
    print(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="PNG to write (default: the README's)")
    parser.add_argument("--views-out", type=Path, default=DEFAULT_VIEWS_OUT, help="PNG of the slice views")
    parser.add_argument("--model", default="cardiac-demo", help="a model in the panel's list (default: cardiac-demo)")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (default: the panel's)")
    parser.add_argument("--samples", type=int, default=2, help="draws per frame, for the uncertainty maps")
    parser.add_argument("--frames", type=int, default=None, help="use only the sample's first N frames")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the generation")
    args = parser.parse_args(argv)
    print(render(args.out, args.model, args.steps, args.samples, args.timeout, args.frames, args.views_out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
