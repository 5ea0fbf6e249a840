"""A tiny generated dataset for the demo, the tests and CPU users: no downloads, no user files.

Two concepts (`4_redcircle shape`, `3_bluesquare shape`) with captioned images in three aspect
ratios, so buckets differ when the bucket settings allow it, and a regularisation folder
(`1_shape`) whose images have no caption files, so they fall back to the folder's tokens. The same
seed and size give byte-identical files. It only ever writes into a new or empty folder.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

from PIL import Image, ImageDraw

from engine.problems import ProblemError, error

# Concept folder -> (shape, colour name, RGB, number of images)
_CONCEPTS = {
    "4_redcircle shape": ("circle", "red", (220, 30, 30), 4),
    "3_bluesquare shape": ("square", "blue", (30, 60, 220), 3),
}
_REG_FOLDER = "1_shape"
_REG_COUNT = 4
_BACKGROUNDS = [("white", (250, 250, 250)), ("yellow", (250, 240, 170)), ("green", (190, 235, 190))]


def _shapes_of(size: int) -> list[tuple[int, int]]:
    """Square, landscape and portrait canvases, sides on an 8-pixel grid."""
    long_side = max(8, (size * 3 // 2 + 7) // 8 * 8)
    return [(size, size), (long_side, size), (size, long_side)]


def _draw(canvas: tuple[int, int], shape: str, colour: tuple, background: tuple, rng: random.Random) -> Image.Image:
    image = Image.new("RGB", canvas, background)
    draw = ImageDraw.Draw(image)
    width, height = canvas
    side = max(4, int(min(width, height) * rng.uniform(0.45, 0.7)))
    left = rng.randint(0, width - side)
    top = rng.randint(0, height - side)
    box = (left, top, left + side - 1, top + side - 1)
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    else:
        draw.polygon([(left + side // 2, top), (left, top + side - 1), (left + side - 1, top + side - 1)], fill=colour)
    return image


def _write_new(path: Path, data: bytes) -> None:
    with open(path, "xb") as handle:  # "x": fail rather than overwrite anything
        handle.write(data)


def _png_bytes(image: Image.Image) -> bytes:
    from io import BytesIO

    buffer = BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def make_synthetic_dataset(root: str | os.PathLike, *, seed: int = 0, size: int = 64) -> tuple[Path, Path]:
    """Write the dataset under `root` (created if missing; must be empty if it exists) and return
    (images folder, regularisation folder)."""
    root = Path(root)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ProblemError(
            [error(str(root), "is not an empty folder; the synthetic dataset is only written into a new "
                   "or empty folder", "choose a new folder")]
        )
    if size < 8:
        raise ProblemError([error("size", f"must be at least 8 pixels, got {size}")])
    rng = random.Random(seed)
    images_dir = root / "images"
    reg_dir = root / "regularization"
    canvases = _shapes_of(size)

    for folder, (shape, colour_name, colour, count) in _CONCEPTS.items():
        target = images_dir / folder
        target.mkdir(parents=True)
        token = folder.split("_", 1)[1].split()[0]
        for index in range(count):
            background_name, background = _BACKGROUNDS[index % len(_BACKGROUNDS)]
            image = _draw(canvases[index % len(canvases)], shape, colour, background, rng)
            stem = f"{token}_{index:02d}"
            _write_new(target / f"{stem}.png", _png_bytes(image))
            caption = f"{token}, {colour_name} {shape}, {background_name} background\n"
            _write_new(target / f"{stem}.txt", caption.encode("utf-8"))

    reg_target = reg_dir / _REG_FOLDER
    reg_target.mkdir(parents=True)
    for index in range(_REG_COUNT):
        grey = rng.randint(60, 160)
        shape = ("circle", "square", "triangle")[index % 3]
        image = _draw(canvases[index % len(canvases)], shape, (grey, grey, grey), (245, 245, 245), rng)
        _write_new(reg_target / f"shape_{index:02d}.png", _png_bytes(image))
    return images_dir, reg_dir
