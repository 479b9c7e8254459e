"""The passes' images, drawn with Pillow once per process (no files to ship, no fonts needed): the club's mark, a
white star on the club's colour, as Apple Wallet's icon and logo at 1x, 2x and 3x and as Google Wallet's
square program logo."""
from __future__ import annotations

import io
import math
from functools import cache

from PIL import Image, ImageDraw

BACKGROUND = (20, 60, 120)  # the pass's colour: rgb(20, 60, 120), #143c78
FOREGROUND = (255, 255, 255)
LABEL = (190, 210, 240)
_SUPERSAMPLE = 4  # drawn larger, then scaled down: smooth edges without antialiasing primitives


def rgb(colour: tuple[int, int, int]) -> str:
    return "rgb({}, {}, {})".format(*colour)


def hex_colour(colour: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*colour)


def _star(draw: ImageDraw.ImageDraw, cx: float, cy: float, radius: float, fill: tuple[int, ...]) -> None:
    points = []
    for i in range(10):
        r = radius if i % 2 == 0 else radius * 0.45
        angle = math.pi / 2 + i * math.pi / 5
        points.append((cx + r * math.cos(angle), cy - r * math.sin(angle)))
    draw.polygon(points, fill=fill)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _mark(size: int, *, tile: bool) -> Image.Image:
    """The star on a rounded square of the club's colour (``tile``), or alone on transparency."""
    big = size * _SUPERSAMPLE
    image = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    if tile:
        draw.rounded_rectangle((0, 0, big - 1, big - 1), radius=big // 5, fill=(*BACKGROUND, 255))
    _star(draw, big / 2, big / 2 + big * 0.03, big * (0.36 if tile else 0.46), (*FOREGROUND, 255))
    return image.resize((size, size), Image.Resampling.LANCZOS)


def icon(scale: int) -> bytes:
    """Apple's icon: 29 x 29 points (lock screen, notifications, mail)."""
    return _icons()[scale]


def logo(scale: int) -> bytes:
    """Apple's logo: the mark at the left of a 160 x 50 point strip (the pass's ``logoText`` sits beside it)."""
    return _logos()[scale]


@cache
def _icons() -> dict[int, bytes]:
    return {scale: _png(_mark(29 * scale, tile=True)) for scale in (1, 2, 3)}


@cache
def _logos() -> dict[int, bytes]:
    out = {}
    for scale in (1, 2, 3):
        height = 50 * scale
        strip = Image.new("RGBA", (160 * scale, height), (0, 0, 0, 0))
        mark = _mark(height - 8 * scale, tile=False)
        strip.paste(mark, (0, 4 * scale), mark)
        out[scale] = _png(strip)
    return out


@cache
def program_logo() -> bytes:
    """Google Wallet's program logo: square, 660 x 660 pixels, shown in a circle."""
    return _png(_mark(660, tile=True).convert("RGB"))


def apple_files() -> dict[str, bytes]:
    """The image files of every Apple pass, by their names in the package."""
    files = {}
    for scale in (1, 2, 3):
        suffix = "" if scale == 1 else f"@{scale}x"
        files[f"icon{suffix}.png"] = icon(scale)
        files[f"logo{suffix}.png"] = logo(scale)
    return files
