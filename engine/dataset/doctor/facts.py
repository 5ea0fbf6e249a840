"""What the doctor needs to know about one image file, read as cheaply as possible.

The size, orientation and completeness come from `engine.dataset.images.read_image_header` (the
scan's own reader, so the doctor and the run agree on what is unreadable). The colour mode, bit
depth, frames and alpha come from the header PIL parses on open. Pixels are decoded once, for the
perceptual hash, and only as a small thumbnail: JPEG decodes at 1/8 scale through `draft()`.
The exact-copy hash (`sha`) is filled in later, only for files whose byte size matches another's.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
from PIL import Image

from engine.dataset.images import ImageHeader, UnreadableImage, read_image_header, to_rgb

_THUMBNAIL = 64  # phash looks at 32x32; a little more keeps the resampling honest
_HIGH_DEPTH_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I", "F"}
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
# EXIF orientation -> the transpose that shows the picture upright (as ImageOps.exif_transpose does)
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_RESIZABLE = {"RGB", "RGBA", "L", "LA", "P"}  # modes PIL shrinks directly
_HASH_SIDE = 32  # phash's grey thumbnail
# the first 8 rows of the (unscaled) DCT-II matrix: phash keeps only the 8×8 lowest frequencies
_DCT_ROWS = 2 * np.cos(np.pi * np.arange(8)[:, None] * (2 * np.arange(_HASH_SIDE)[None, :] + 1) / (2 * _HASH_SIDE))


@dataclass
class ImageFacts:
    size_bytes: int
    mtime_ns: int
    error: str = ""  # why the image is unusable ("" when it is fine)
    width: int = 0  # as displayed (EXIF orientation applied)
    height: int = 0
    format: str = ""  # PIL's name for the content: PNG, JPEG, WEBP, BMP, MPO
    mode: str = ""  # PIL mode: RGB, RGBA, L, P, CMYK, I;16, ...
    bits: int = 8  # bits per channel as stored
    frames: int = 1
    has_alpha: bool = False
    transparent: bool = False  # some pixel is not fully opaque (so training's white fill shows)
    orientation: int = 1
    phash: str = ""  # imagehash.phash as hex ("" when it could not be computed)
    detail: float = -1.0  # spread of the 32×32 grey thumbnail (0: one flat colour; -1: not measured)
    colours: str = ""  # a 4×4 colour thumbnail as hex: what tells low-detail pictures apart
    sha: str = ""  # blake2b of the bytes, only when needed

    def to_dict(self) -> dict:
        return dict(vars(self))  # flat: cheaper than dataclasses.asdict for thousands of entries

    def header(self) -> ImageHeader:
        """The scan's view of this image (raises what the scan's own reader would)."""
        if self.error:
            raise UnreadableImage(self.error)
        return ImageHeader((self.width, self.height), self.format, self.orientation)

    @classmethod
    def from_dict(cls, data: dict) -> ImageFacts:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def stat_key(path: Path) -> tuple[int, int]:
    """(size in bytes, mtime in ns): what decides whether cached facts still hold."""
    info = os.stat(path)
    return info.st_size, info.st_mtime_ns


def read_facts(path: Path, size_bytes: int, mtime_ns: int) -> ImageFacts:
    facts = ImageFacts(size_bytes, mtime_ns)
    try:
        header = read_image_header(path)
    except UnreadableImage as exc:
        facts.error = str(exc)
        return facts
    facts.width, facts.height = header.size
    facts.format, facts.orientation = header.format, header.orientation
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as image:
                facts.mode = image.mode
                facts.frames = int(getattr(image, "n_frames", 1) or 1)
                facts.has_alpha = image.mode in _ALPHA_MODES or "transparency" in image.info
                facts.bits = _bits(image)
                facts.phash, facts.transparent, facts.detail, facts.colours = _phash(
                    image, facts.has_alpha, facts.orientation)
    except Exception as exc:  # noqa: BLE001 - the header read but the pixels do not
        facts.error = f"the image data is damaged ({exc})"
    return facts


def _bits(image: Image.Image) -> int:
    if image.mode in _HIGH_DEPTH_MODES:
        return 32 if image.mode in ("I", "F") else 16
    tile = getattr(image, "tile", None) or []
    args = tile[0][3] if tile else ""
    rawmode = args if isinstance(args, str) else str(args[0]) if args else ""
    return 16 if ";16" in rawmode else 8  # PIL reads 16-bit RGB PNGs as 8-bit RGB


def _phash(image: Image.Image, has_alpha: bool, orientation: int) -> tuple[str, bool, float, str]:
    """The perceptual hash of the upright image, whether its alpha channel is used (judged on
    the thumbnail: a transparent area large enough to matter survives the shrinking), how much
    detail the hash rests on, and its colour thumbnail."""
    if image.format in ("JPEG", "MPO"):
        image.draft(None, (_THUMBNAIL, _THUMBNAIL))  # decode at 1/8 scale, mode unchanged
    if getattr(image, "n_frames", 1) > 1:
        image.seek(0)
    image.load()
    small = image if image.mode in _RESIZABLE else to_rgb(image)
    small.thumbnail((_THUMBNAIL, _THUMBNAIL))  # shrink first: every later step is on 64 px
    if orientation in _UPRIGHT:
        small = small.transpose(_UPRIGHT[orientation])
    transparent = has_alpha and small.convert("RGBA").getchannel("A").getextrema()[0] < 255
    small = small if small.mode == "L" else to_rgb(small)
    grey = np.asarray(small.convert("L").resize((_HASH_SIDE, _HASH_SIDE), Image.Resampling.LANCZOS), dtype=np.float64)
    # imagehash.phash's bits (a DCT's lowest 8×8 frequencies above their median), as two small
    # matrix products instead of two FFT calls: the same hash, a fraction of the time
    low = _DCT_ROWS @ grey @ _DCT_ROWS.T
    bits = (low > np.median(low)).flatten()
    code = int("".join("1" if bit else "0" for bit in bits), 2)
    colours = np.asarray(small.convert("RGB").resize((4, 4), Image.Resampling.BOX), dtype=np.uint8)
    return f"{code:016x}", transparent, float(grey.std()), colours.tobytes().hex()
