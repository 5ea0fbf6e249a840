"""Image files: reading a header cheaply for the scan, and loading pixels for training.

The scan must stay fast (hundreds of images in well under a second), so `read_image_header` reads
only what PIL parses on open plus a few bytes at the end of the file: the size, the EXIF
orientation, and whether the file is complete. Pixels are decoded only by `load_training_image`,
which returns exactly the bucket's size and the crop it used (SDXL conditions on the original size
and the crop's top/left).

Numpy and PIL only; the training loop turns arrays into tensors.
"""

from __future__ import annotations

import random
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from engine.dataset.buckets import Size, cover_size

ORIENTATION_TAG = 0x0112
# EXIF orientations 5-8 rotate by 90 degrees, so the displayed width is the stored height.
_SWAPS_SIDES = {5, 6, 7, 8}
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_JPEG_END = b"\xff\xd9"


class UnreadableImage(Exception):
    """An image file that cannot be used; the message says why in plain words."""


@dataclass(frozen=True)
class ImageHeader:
    """What the scan needs from an image file without decoding it."""

    size: Size  # (width, height) as displayed, EXIF orientation applied
    format: str  # PIL's name for the content, e.g. "PNG", "JPEG"
    orientation: int  # EXIF orientation, 1 when absent


@dataclass(frozen=True)
class LoadedImage:
    """A training image cut to its bucket."""

    pixels: np.ndarray  # H x W x 3, uint8, exactly the bucket's size
    original_size: Size  # (width, height) before resizing, EXIF orientation applied
    crop_left: int  # where the bucket-sized window sits in the resized image (after any flip)
    crop_top: int
    flipped: bool

    @property
    def target_size(self) -> Size:
        return self.pixels.shape[1], self.pixels.shape[0]

    def sdxl_size_conditioning(self) -> tuple[int, int, int, int, int, int]:
        """SDXL's add_time_ids order: original (h, w), crop (top, left), target (h, w)."""
        width, height = self.original_size
        target_width, target_height = self.target_size
        return height, width, self.crop_top, self.crop_left, target_height, target_width


def read_image_header(path: Path) -> ImageHeader:
    """Size, format and orientation of an image file, raising `UnreadableImage` for empty,
    truncated, damaged, unrecognised, oversized or unreadable files."""
    try:
        file_size = path.stat().st_size
    except OSError as exc:
        raise UnreadableImage(_os_reason(exc)) from None
    if file_size == 0:
        raise UnreadableImage("the file is empty (0 bytes)")
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError as exc:
        raise UnreadableImage(_os_reason(exc)) from None
    _check_declared_length(head, file_size)  # before PIL, whose WebP reader fails vaguely
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL's decompression-bomb and palette warnings
            with Image.open(path) as image:
                image_format = image.format or "unknown"
                width, height = image.size
                # The base class reads EXIF already parsed from the header; PNG's own getexif()
                # would decode the whole image to look for a late eXIf chunk.
                orientation = int(Image.Image.getexif(image).get(ORIENTATION_TAG, 1) or 1)
                _check_end_marker(image, path)
    except UnreadableImage:
        raise
    except Image.DecompressionBombError:
        raise UnreadableImage("the image is too large to load safely (decompression bomb limit)") from None
    except UnidentifiedImageError:
        raise UnreadableImage("not an image PIL can read (wrong extension or damaged file)") from None
    except OSError as exc:
        raise UnreadableImage(_os_reason(exc)) from None
    except Exception as exc:  # PIL raises SyntaxError, ValueError, struct.error on bad headers
        raise UnreadableImage(f"damaged image header ({exc})") from None
    if width < 1 or height < 1:
        raise UnreadableImage(f"the image has no pixels ({width}x{height})")
    if orientation in _SWAPS_SIDES:
        width, height = height, width
    return ImageHeader((width, height), image_format, orientation)


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied: the file cannot be read by this user"
    text = str(exc)
    if "truncated" in text:
        return "the file is truncated (the end of the image data is missing)"
    return f"cannot read the file ({exc.strerror or text})"


def _read_tail(path: Path, count: int) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - count))
        return handle.read()


_TRUNCATED = "the file is truncated (the end of the image data is missing)"


def _check_declared_length(head: bytes, file_size: int) -> None:
    """WebP and BMP headers state the file's length: a shorter file was cut off."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        declared = int.from_bytes(head[4:8], "little") + 8
    elif head[:2] == b"BM":
        declared = int.from_bytes(head[2:6], "little")  # some writers leave it 0
    else:
        return
    if file_size < declared:
        raise UnreadableImage(_TRUNCATED)


def _check_end_marker(image: Image.Image, path: Path) -> None:
    """Catch PNG and JPEG files cut short (interrupted copies and downloads) without decoding
    pixels: look for the format's end marker, and only when it is missing look closer."""
    if image.format == "PNG":
        if _read_tail(path, len(_PNG_END)) == _PNG_END:
            return
        try:  # data after IEND is legal; verify() walks the chunks and their checksums
            image.verify()
        except Exception:
            raise UnreadableImage(_TRUNCATED) from None
    elif image.format in ("JPEG", "MPO"):
        if _read_tail(path, 64).rstrip(b"\x00\r\n\t ").endswith(_JPEG_END):
            return
        try:  # trailing data (e.g. phone "motion photos"): decode at 1/8 scale to be sure
            image.draft("RGB", (max(1, image.size[0] // 8), max(1, image.size[1] // 8)))
            image.load()
        except Exception:
            raise UnreadableImage(_TRUNCATED) from None


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode to RGB, the way a viewer would show it on a white page."""
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        image = _high_depth_to_l(image)
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        page = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        page.alpha_composite(rgba)
        return page.convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def _high_depth_to_l(image: Image.Image) -> Image.Image:
    """16-bit (or 32-bit) greyscale to 8-bit; PIL's own convert clips everything above 255."""
    values = np.asarray(image).astype(np.float64)
    if image.mode == "F":
        top = 1.0 if values.max(initial=0.0) <= 1.0 else 255.0
    elif image.mode.startswith("I;16") or values.max(initial=0) > 255:
        top = 65535.0
    else:
        top = 255.0
    scaled = np.clip(np.rint(values * (255.0 / top)), 0, 255).astype(np.uint8)
    return Image.fromarray(scaled)


def _fits(resized: Size, bucket: Size, image_size: Size) -> bool:
    """Whether a precomputed resize target still suits the image actually loaded."""
    if resized[0] < bucket[0] or resized[1] < bucket[1]:
        return False
    return abs(resized[0] / resized[1] - image_size[0] / image_size[1]) < 0.02 * (image_size[0] / image_size[1])


def load_training_image(
    path: Path,
    bucket: Size,
    *,
    resized_size: Size | None = None,
    random_crop: bool = False,
    flip: bool = False,
    rng: random.Random | None = None,
) -> LoadedImage:
    """Load an image and cut it to `bucket` (W, H): resize to cover, then crop the overflow
    (centred, or at a random offset with `random_crop`), then mirror it when `flip` is true (the
    caller decides when to flip). `resized_size` is the scan's `ImageItem.resized_size`; without it
    the image is scaled to just cover the bucket (no_upscale buckets need it to keep native size).
    """
    return cut_to_bucket(decode_resized(path, bucket, resized_size=resized_size), bucket,
                         random_crop=random_crop, flip=flip, rng=rng)


@dataclass(frozen=True)
class ResizedImage:
    """An image decoded and resized to cover its bucket, not yet cut (the slow part of loading)."""

    picture: Image.Image
    original_size: Size


def decode_resized(path: Path, bucket: Size, *, resized_size: Size | None = None) -> ResizedImage:
    """The first half of load_training_image: decode (EXIF orientation applied) and resize. It
    draws no random numbers, so worker threads can run it ahead of the training loop."""
    path = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with Image.open(path) as image:
                orientation = int(Image.Image.getexif(image).get(ORIENTATION_TAG, 1) or 1)
                stored = image.size
                original = (stored[1], stored[0]) if orientation in _SWAPS_SIDES else stored
                target = resized_size if resized_size and _fits(resized_size, bucket, original) else None
                target = target or cover_size(original, bucket)
                if image.format in ("JPEG", "MPO") and target[0] * 2 <= original[0]:
                    # Decode large JPEGs at a reduced DCT scale that still exceeds the target.
                    request = (target[1], target[0]) if orientation in _SWAPS_SIDES else target
                    image.draft("RGB", request)
                image.load()
                picture = to_rgb(ImageOps.exif_transpose(image))
        except UnidentifiedImageError:
            raise UnreadableImage(f"{path}: not an image PIL can read") from None
        except OSError as exc:
            raise UnreadableImage(f"{path}: {_os_reason(exc)}") from None
    if picture.size != target:
        picture = picture.resize(target, Image.Resampling.LANCZOS)
    return ResizedImage(picture, original)


def cut_to_bucket(resized: ResizedImage, bucket: Size, *, random_crop: bool = False, flip: bool = False,
                  rng: random.Random | None = None) -> LoadedImage:
    """The second half of load_training_image: crop the bucket's window (drawing the random offset
    from `rng`) and mirror it when `flip` is true."""
    picture = resized.picture
    spare_x, spare_y = picture.size[0] - bucket[0], picture.size[1] - bucket[1]
    if random_crop:
        rng = rng or random.Random()
        left, top = rng.randint(0, spare_x), rng.randint(0, spare_y)
    else:
        left, top = spare_x // 2, spare_y // 2
    pixels = np.asarray(picture.crop((left, top, left + bucket[0], top + bucket[1])), dtype=np.uint8)
    if flip:
        pixels = pixels[:, ::-1]
        left = spare_x - left  # the window's left edge in the mirrored resized image
    return LoadedImage(np.ascontiguousarray(pixels), resized.original_size, left, top, flip)


def image_to_tensor_array(pixels: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 to 3 x H x W float32 in [-1, 1] (what the VAE expects)."""
    array = np.asarray(pixels, dtype=np.float32).transpose(2, 0, 1)
    return np.ascontiguousarray(array / 127.5 - 1.0, dtype=np.float32)
