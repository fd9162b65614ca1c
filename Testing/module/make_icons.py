"""Draw the module icon, the extension icon and the Sample Data thumbnails from the sample sequences.

    .venv/bin/python Testing/module/make_icons.py

The icons show what SADM does: frames of a sequence in time, the last one generated (dashed frame,
warm tint). Thumbnails show three timepoints of each sample, as Sample Data's own thumbnails do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

REPOSITORY = Path(__file__).resolve().parents[2]
SAMPLES = REPOSITORY / "SADMModule" / "Resources" / "SampleData"
MODULE_ICONS = REPOSITORY / "SADMModule" / "Resources" / "Icons"
EXTENSION_ICONS = REPOSITORY / "Resources" / "Icons"
SCALE = 4  # draw large, shrink: smooth edges


def read_frames(name: str) -> tuple[list[np.ndarray], list[str], str]:
    import slicer

    scene = slicer.vtkMRMLScene()
    sequence = scene.AddNewNodeByClass("vtkMRMLSequenceNode")
    storage = slicer.vtkMRMLVolumeSequenceStorageNode()
    storage.SetScene(scene)
    storage.SetFileName(str(SAMPLES / f"{name}.seq.nrrd"))
    if not storage.ReadData(sequence):
        raise RuntimeError(f"cannot read {name}; run make_sample_data.py first")
    frames = [
        slicer.util.arrayFromVolume(sequence.GetNthDataNode(i)).copy() for i in range(sequence.GetNumberOfDataNodes())
    ]
    values = [sequence.GetNthIndexValue(i) for i in range(len(frames))]
    return frames, values, sequence.GetIndexUnit()


def slice_image(volume: np.ndarray, size: int, axis: int = 0, crop: float = 1.0) -> Image.Image:
    """Middle slice, flipped to radiological display, windowed to the 1–99th percentile."""
    plane = np.take(volume, volume.shape[axis] // 2, axis=axis).astype(np.float32)
    plane = plane[::-1, ::-1] if axis == 0 else plane[::-1, :]
    if crop < 1.0:
        rows, cols = plane.shape
        r0, c0 = int(rows * (1 - crop) / 2), int(cols * (1 - crop) / 2)
        plane = plane[r0 : rows - r0, c0 : cols - c0]
    low, high = np.percentile(plane, [1, 99.5])
    grey = np.clip((plane - low) / max(high - low, 1e-6), 0, 1)
    return Image.fromarray((grey * 255).astype(np.uint8)).resize((size, size), Image.LANCZOS).convert("RGB")


def tinted(image: Image.Image, colour=(255, 170, 60), amount: float = 0.22) -> Image.Image:
    overlay = Image.new("RGB", image.size, colour)
    return Image.blend(image, overlay, amount)


def dashed_rectangle(draw: ImageDraw.ImageDraw, box, colour, width: int, dash: int) -> None:
    x0, y0, x1, y1 = box
    for start in range(x0, x1, 2 * dash):
        draw.line([(start, y0), (min(start + dash, x1), y0)], fill=colour, width=width)
        draw.line([(start, y1), (min(start + dash, x1), y1)], fill=colour, width=width)
    for start in range(y0, y1, 2 * dash):
        draw.line([(x0, start), (x0, min(start + dash, y1))], fill=colour, width=width)
        draw.line([(x1, start), (x1, min(start + dash, y1))], fill=colour, width=width)


def sequence_icon(frames: list[np.ndarray], size: int = 128) -> Image.Image:
    """Three frames stacked diagonally in time; the front one is generated."""
    big = size * SCALE
    icon = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    draw = ImageDraw.Draw(icon)
    tile = int(big * 0.56)
    picks = [frames[0], frames[len(frames) // 2], frames[-1]]
    offsets = [
        (int(big * 0.04), int(big * 0.04)),
        (int(big * 0.20), int(big * 0.20)),
        (int(big * 0.40), int(big * 0.40)),
    ]
    for index, (volume, (x, y)) in enumerate(zip(picks, offsets)):
        image = slice_image(volume, tile, crop=0.5)
        generated = index == len(picks) - 1
        if generated:
            image = tinted(image)
        icon.paste(image, (x, y))
        if generated:
            dashed_rectangle(
                draw, (x, y, x + tile - 1, y + tile - 1), (255, 140, 0, 255), width=3 * SCALE, dash=7 * SCALE
            )
        else:
            draw.rectangle((x, y, x + tile - 1, y + tile - 1), outline=(235, 240, 250, 255), width=2 * SCALE)
    # time arrow along the bottom-left
    y = big - int(big * 0.07)
    draw.line([(int(big * 0.05), y), (int(big * 0.33), y)], fill=(40, 70, 120, 255), width=3 * SCALE)
    draw.polygon(
        [(int(big * 0.36), y), (int(big * 0.31), y - 5 * SCALE), (int(big * 0.31), y + 5 * SCALE)],
        fill=(40, 70, 120, 255),
    )
    return icon.resize((size, size), Image.LANCZOS)


def thumbnail(frames: list[np.ndarray], values: list[str], unit: str, title: str, axis: int) -> Image.Image:
    """260×210: three timepoints side by side with their index values, like Sample Data thumbnails."""
    width, height = 260, 210
    canvas = Image.new("RGBA", (width, height), (0, 0, 0, 255))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    picks = [0, len(frames) // 2, len(frames) - 1]
    tile = 84
    for column, index in enumerate(picks):
        x = 2 + column * (tile + 3)
        canvas.paste(slice_image(frames[index], tile, axis=axis, crop=0.8 if axis == 0 else 1.0), (x, 48))
        draw.text((x + 4, 48 + tile + 6), f"{values[index]} {unit}", fill=(230, 230, 230), font=font)
    draw.text((6, 10), title, fill=(255, 255, 255), font=font)
    draw.text((6, 26), f"{len(frames)} timepoints", fill=(180, 180, 180), font=font)
    return canvas


def main() -> None:
    cardiac, cardiac_values, cardiac_unit = read_frames("SADMCardiacSynthetic")
    brain, brain_values, brain_unit = read_frames("SADMBrainSynthetic")
    MODULE_ICONS.mkdir(parents=True, exist_ok=True)
    EXTENSION_ICONS.mkdir(parents=True, exist_ok=True)
    icon = sequence_icon(cardiac)
    icon.save(MODULE_ICONS / "SADMModule.png")
    icon.save(EXTENSION_ICONS / "SADM.png")
    thumbnail(cardiac, cardiac_values, cardiac_unit, "Synthetic cardiac cine (ED to ES)", axis=0).save(
        MODULE_ICONS / "SADMCardiacSynthetic.png"
    )
    thumbnail(brain, brain_values, brain_unit, "Synthetic brain ageing", axis=0).save(
        MODULE_ICONS / "SADMBrainSynthetic.png"
    )


if __name__ == "__main__":
    main()
