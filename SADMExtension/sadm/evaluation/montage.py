"""PNG montages of 2D slices: the one picture format for data previews and for
"ground truth / generated / |difference|" comparisons (Pillow only, no matplotlib)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Union

import numpy as np

ValueRange = tuple[float, float]
RowRanges = Union[None, ValueRange, Sequence[Union[ValueRange, None]]]
COLORMAPS = ("gray", "hot", "diverging")


def mid_slices(volume: np.ndarray, axis: int = 0, index: int | None = None) -> np.ndarray:
    """The middle slice of a (k, j, i) volume along `axis` (0 = k, 1 = j, 2 = i).

    Leading axes are kept, so a sequence (L, k, j, i) gives its L mid slices (L, ·, ·) at once.
    `index` picks another slice than the middle one.
    """
    volume = np.asarray(volume)
    if volume.ndim < 3:
        raise ValueError(f"mid_slices needs a (..., k, j, i) array with at least 3 axes; got shape {volume.shape}")
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0 (k), 1 (j) or 2 (i); got {axis}")
    numpy_axis = volume.ndim - 3 + axis
    size = volume.shape[numpy_axis]
    index = size // 2 if index is None else int(index)
    if not 0 <= index < size:
        raise ValueError(f"slice index {index} is outside 0..{size - 1} along axis {axis}")
    return np.take(volume, index, axis=numpy_axis)


def _colorize(tile: np.ndarray, value_range: ValueRange, colormap: str) -> np.ndarray:
    """Map a 2D float tile to uint8 RGB through a small built-in lookup table."""
    low, high = value_range
    scaled = np.clip((tile.astype(np.float64) - low) / max(high - low, 1e-12), 0.0, 1.0)
    if colormap == "gray":
        gray = np.round(scaled * 255).astype(np.uint8)
        return np.stack([gray] * 3, axis=-1)
    if colormap == "hot":  # black → red → yellow → white: small errors stay dark, large ones glow
        red = np.clip(scaled * 3.0, 0, 1)
        green = np.clip(scaled * 3.0 - 1.0, 0, 1)
        blue = np.clip(scaled * 3.0 - 2.0, 0, 1)
    elif colormap == "diverging":  # blue ← white → red, centred on the middle of the range
        signed = scaled * 2.0 - 1.0
        red = np.where(signed > 0, 1.0, 1.0 + signed)
        blue = np.where(signed < 0, 1.0, 1.0 - signed)
        green = 1.0 - np.abs(signed)
    else:
        raise ValueError(f"colormap must be one of {COLORMAPS}; got {colormap!r}")
    return np.round(np.stack([red, green, blue], axis=-1) * 255).astype(np.uint8)


def _row_ranges(rows: list[list[np.ndarray]], value_range: RowRanges) -> list[ValueRange]:
    """One (low, high) per row: given globally, given per row, or the row's 0.5–99.5 percentiles."""
    if value_range is not None and len(value_range) == 2 and all(np.isscalar(v) for v in value_range):
        return [(float(value_range[0]), float(value_range[1]))] * len(rows)
    per_row = [None] * len(rows) if value_range is None else list(value_range)
    if len(per_row) != len(rows):
        raise ValueError(
            f"value_range has {len(per_row)} entries for {len(rows)} rows; give one per row or one (low, high)"
        )
    ranges = []
    for row, given in zip(rows, per_row):
        if given is not None:
            ranges.append((float(given[0]), float(given[1])))
            continue
        values = np.concatenate([np.asarray(tile, dtype=np.float64).ravel() for tile in row]) if row else np.zeros(1)
        values = values[np.isfinite(values)]
        low, high = np.percentile(values, [0.5, 99.5]) if values.size else (0.0, 1.0)
        ranges.append((float(low), float(high) if high > low else float(low) + 1.0))
    return ranges


def _fit(rgb: np.ndarray, box: tuple[int, int]):
    """Resize an RGB tile to fit `box` (height, width), keeping its aspect ratio (bilinear)."""
    from PIL import Image

    height, width = rgb.shape[:2]
    factor = min(box[0] / height, box[1] / width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return Image.fromarray(rgb).resize(size, Image.BILINEAR)


def save_montage(
    path: str | Path,
    rows: list[list[np.ndarray]],
    row_labels: Sequence[str] | None = None,
    column_labels: Sequence[str] | None = None,
    value_range: RowRanges = None,
    colormaps: str | Sequence[str] = "gray",
    tile_size: tuple[int, int] | None = None,
    scale: float = 1.0,
    title: str | None = None,
    gap: int = 2,
    font_size: int = 14,
) -> Path:
    """Write a grid of 2D slices as a PNG (grayscale, or RGB when a row is coloured); return its path.

    `rows[r][c]` is a 2D array shown with its first axis downwards; rows may be ragged (empty cells
    stay black). `value_range` is one (low, high) for all rows, a list with one (low, high) or None
    per row, or None for per-row percentiles — comparisons need one range for "truth" and
    "generated" rows and a separate one for a "|difference|" row. `colormaps` ("gray", "hot",
    "diverging") is one name or one per row. Each tile is fitted into `tile_size` (height, width;
    default: the largest tile times `scale`).
    """
    from PIL import Image, ImageDraw, ImageFont

    if not rows or not any(len(row) for row in rows):
        raise ValueError("save_montage needs at least one row with one 2D slice")
    rows = [[np.asarray(tile) for tile in row] for row in rows]
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            if tile.ndim != 2:
                raise ValueError(f"rows[{r}][{c}] must be a 2D slice; got shape {tile.shape} (use mid_slices first)")
    if row_labels is not None and len(row_labels) != len(rows):
        raise ValueError(f"{len(row_labels)} row labels for {len(rows)} rows")
    columns = max(len(row) for row in rows)
    if column_labels is not None and len(column_labels) > columns:
        raise ValueError(f"{len(column_labels)} column labels for {columns} columns")
    maps = [colormaps] * len(rows) if isinstance(colormaps, str) else list(colormaps)
    if len(maps) != len(rows):
        raise ValueError(f"{len(maps)} colormaps for {len(rows)} rows; give one name or one per row")
    ranges = _row_ranges(rows, value_range)
    if tile_size is None:
        tile_size = (
            round(max(t.shape[0] for row in rows for t in row) * scale),
            round(max(t.shape[1] for row in rows for t in row) * scale),
        )
    tile_h, tile_w = tile_size

    font = ImageFont.load_default(size=font_size)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def text_size(text: str) -> tuple[int, int]:
        left, upper, right, lower = measure.multiline_textbbox((0, 0), str(text), font=font)
        return right - left, lower - upper

    line = font_size + 6
    label_w = 0
    if row_labels is not None:
        label_w = max(text_size(label)[0] for label in row_labels) + 2 * gap + 6
    header = max((text_size(label)[1] for label in column_labels), default=0) + 8 if column_labels is not None else 0
    top = (line if title else 0) + header
    width = label_w + columns * (tile_w + gap) + gap
    if title:
        width = max(width, text_size(title)[0] + 2 * gap + 4)
    height = top + len(rows) * (tile_h + gap) + gap
    canvas = Image.new("RGB", (width, height), (0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((gap + 2, 2), title, fill=(255, 255, 255), font=font)
    if column_labels is not None:
        y = (line if title else 0) + 2
        for c, label in enumerate(column_labels):
            x = label_w + gap + c * (tile_w + gap)
            draw.multiline_text((x + 2, y), str(label), fill=(255, 255, 255), font=font)
    for r, row in enumerate(rows):
        y = top + gap + r * (tile_h + gap)
        if row_labels is not None:
            label_h = text_size(row_labels[r])[1]
            draw.multiline_text(
                (gap + 2, y + (tile_h - label_h) // 2), str(row_labels[r]), fill=(255, 255, 255), font=font
            )
        for c, tile in enumerate(row):
            image = _fit(_colorize(tile, ranges[r], maps[r]), (tile_h, tile_w))
            x = label_w + gap + c * (tile_w + gap)
            canvas.paste(image, (x + (tile_w - image.width) // 2, y + (tile_h - image.height) // 2))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if all(name == "gray" for name in maps):
        canvas = canvas.convert("L")  # a third of the bytes, same picture
    canvas.save(path, format="PNG", optimize=True)
    return path
