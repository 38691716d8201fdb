"""Image files of the engine: samples as PNGs and before/after grids (no model code here).

Images are ``(C, H, W)`` float tensors in [0, 1]. Tiny images (8x8 digits) are written upscaled by an
integer factor (nearest neighbour) so people can see them.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch import Tensor

MIN_PNG_SIDE = 64


def to_pil(image: Tensor) -> Image.Image:
    """``(C, H, W)`` in [0, 1] -> a PIL image, upscaled by an integer factor if smaller than 64 px."""
    array = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()
    array = array[0] if array.shape[0] == 1 else array.permute(1, 2, 0)
    picture = Image.fromarray(array.numpy())
    factor = max(1, -(-MIN_PNG_SIDE // max(picture.size)))
    if factor > 1:
        picture = picture.resize((picture.width * factor, picture.height * factor), Image.Resampling.NEAREST)
    return picture


def images_to_pngs(images: Tensor, paths: list[Path]) -> None:
    for image, path in zip(images, paths):
        to_pil(image).save(path)


def save_grid(rows_of_images: list[Tensor], path: Path, gap: int = 4) -> Path:
    """One PNG with a row per tensor of images (e.g. reference on top, fine-tuned below)."""
    tiles = [[to_pil(image) for image in row] for row in rows_of_images]
    width = max(tile.width for row in tiles for tile in row)
    height = max(tile.height for row in tiles for tile in row)
    columns = max(len(row) for row in tiles)
    grid = Image.new("RGB", (columns * (width + gap) - gap, len(tiles) * (height + gap) - gap), "white")
    for r, row in enumerate(tiles):
        for c, tile in enumerate(row):
            grid.paste(tile.convert("RGB"), (c * (width + gap), r * (height + gap)))
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)
    return path
