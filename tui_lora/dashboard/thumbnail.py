"""Sample images as terminal cells: `▀` with the upper pixel as foreground, the lower as background.

`load_thumbnail` runs in the tail worker (it reads a file); `half_block_cells` is pure and runs at
render time on the small in-memory image. PIL is imported lazily so the UI starts fast.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL.Image import Image

RGB = tuple[int, int, int]
THUMBNAIL_MAX_PIXELS = 192  # larger than any panel needs at 2 pixels per cell row


def load_thumbnail(path: str | os.PathLike) -> "Image | None":
    """A small RGB copy of the image, or None when it cannot be read (missing, partial, not an image)."""
    try:
        from PIL import Image as PILImage

        with PILImage.open(path) as image:
            image.draft("RGB", (THUMBNAIL_MAX_PIXELS, THUMBNAIL_MAX_PIXELS))  # fast path for JPEG
            small = image.convert("RGB")
            small.thumbnail((THUMBNAIL_MAX_PIXELS, THUMBNAIL_MAX_PIXELS))
            return small
    except Exception:  # noqa: BLE001 - any unreadable image (torn, huge, odd format) must not stop the tail
        return None


def fit(image_size: tuple[int, int], columns: int, rows: int) -> tuple[int, int]:
    """Pixel size that fits `columns` x `rows` cells (2 pixels per cell vertically), keeping the aspect."""
    width, height = image_size
    if width <= 0 or height <= 0 or columns <= 0 or rows <= 0:
        return (0, 0)
    scale = min(columns / width, rows * 2 / height)
    return (max(1, int(width * scale)), max(2, int(height * scale) // 2 * 2))


def half_block_cells(image: "Image", columns: int, rows: int) -> list[list[tuple[RGB, RGB]]]:
    """Rows of (top, bottom) colours, downscaled to fit the cells."""
    width, height = fit(image.size, columns, rows)
    if not width or not height:
        return []
    from PIL import Image as PILImage

    pixels = image.resize((width, height), PILImage.Resampling.BOX).load()
    return [[(pixels[x, y], pixels[x, y + 1]) for x in range(width)] for y in range(0, height - 1, 2)]
