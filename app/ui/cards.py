"""Readable sample images: a small generated image upscaled smoothly, with its caption (predicted class,
reward) in a strip *under* it instead of a badge over a quarter of an 8x8 digit.

Cards are written once next to the artifacts (``<image>.card.png``) and reused by every poll; the web
process only reads them after that. No Gradio import (tested as plain functions).
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

CARD_SIDE = 160  # cards are square (galleries crop other shapes): the image on top, the caption under it
CAPTION_HEIGHT = 36
IMAGE_SIDE = CARD_SIDE - CAPTION_HEIGHT
NEAREST_FACTORS = (16, 8, 4, 2)  # the engine writes tiny images upscaled by an integer factor (nearest)


def native_image(image: Image.Image) -> Image.Image:
    """Undo an integer nearest-neighbour upscale (an 8x8 digit written as 64x64 blocks), so the smooth
    upscale starts from the real pixels instead of smoothing the blocks' edges only."""
    for factor in NEAREST_FACTORS:
        if image.width % factor or image.height % factor or image.width // factor < 4:
            continue
        small = image.resize((image.width // factor, image.height // factor), Image.Resampling.NEAREST)
        if small.resize(image.size, Image.Resampling.NEAREST).tobytes() == image.tobytes():
            return small
    return image


def card_path(image_path: str | Path) -> Path:
    path = Path(image_path)
    return path.with_name(path.stem + ".card.png")


def sample_card(image_path: str | Path, caption: str) -> str:
    """The card of one sample image (built on first use); returns its path. Falls back to the image
    itself if it cannot be read (the gallery then shows the caption Gradio's way)."""
    target = card_path(image_path)
    if target.is_file():
        return str(target)
    try:
        with Image.open(image_path) as opened:
            image = native_image(opened.convert("RGB"))
    except OSError:
        return str(image_path)
    scale = IMAGE_SIDE / max(image.width, image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    card = Image.new("RGB", (CARD_SIDE, CARD_SIDE), "white")
    card.paste(image.resize(size, Image.Resampling.BICUBIC), ((CARD_SIDE - size[0]) // 2, (IMAGE_SIDE - size[1]) // 2))
    draw = ImageDraw.Draw(card)
    font = ImageFont.load_default(size=13)
    for row, line in enumerate(caption.splitlines()[:2]):
        draw.text((CARD_SIDE // 2, IMAGE_SIDE + 3 + 16 * row), line, fill="black", font=font, anchor="ma")
    staging = target.with_name(target.name + ".tmp")
    card.save(staging, format="PNG")
    staging.replace(target)  # another poll reading the card never sees half of it
    return str(target)
