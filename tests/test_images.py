"""Image headers (size, orientation, damaged files) and training-image loading: modes, alpha,
EXIF rotation, resize-to-cover, crop and flip."""

from __future__ import annotations

import random
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.dataset.images import (
    UnreadableImage,
    image_to_tensor_array,
    load_training_image,
    read_image_header,
)

RED, BLUE = (255, 0, 0), (0, 0, 255)


def split_image(size=(40, 20)) -> Image.Image:
    """Left half red, right half blue."""
    image = Image.new("RGB", size, RED)
    image.paste(BLUE, (size[0] // 2, 0, size[0], size[1]))
    return image


def save_with_orientation(image: Image.Image, path: Path, orientation: int) -> Path:
    exif = Image.Exif()
    exif[0x0112] = orientation
    image.save(path, exif=exif.tobytes(), quality=95)
    return path


def png_rgb16(path: Path, rgb16: tuple[int, int, int], size=(4, 3)) -> Path:
    """A 48-bit RGB PNG (PIL cannot write one), written chunk by chunk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    width, height = size
    row = b"\x00" + struct.pack(">HHH", *rgb16) * width
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(row * height)) + chunk(b"IEND", b"")
    )
    return path


def close(pixel, expected, tolerance=6) -> bool:
    return all(abs(int(a) - int(b)) <= tolerance for a, b in zip(pixel, expected))


# --- headers ---------------------------------------------------------------------------------


def test_header_of_exif_rotated_jpeg_reports_the_displayed_size(tmp_path: Path) -> None:
    path = save_with_orientation(split_image((40, 20)), tmp_path / "rotated.jpg", 6)
    header = read_image_header(path)
    assert header.size == (20, 40)
    assert header.orientation == 6 and header.format == "JPEG"


def test_header_of_plain_png(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    Image.new("RGB", (33, 17)).save(path)
    assert read_image_header(path).size == (33, 17)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP"])
def test_truncated_files_are_caught(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"cut.{fmt.lower()}"
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path, format=fmt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(UnreadableImage, match="truncated"):
        read_image_header(path)


def test_jpeg_with_data_after_its_end_marker_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "motion.jpg"
    split_image().save(path)
    path.write_bytes(path.read_bytes() + b"extra trailing payload" * 100)
    assert read_image_header(path).size == (40, 20)


def test_empty_and_non_image_files_are_unreadable(tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "text.png"
    text.write_text("not an image")
    with pytest.raises(UnreadableImage, match="empty"):
        read_image_header(empty)
    with pytest.raises(UnreadableImage, match="not an image"):
        read_image_header(text)


# --- loading ---------------------------------------------------------------------------------


def test_exif_rotated_jpeg_loads_upright(tmp_path: Path) -> None:
    path = save_with_orientation(split_image((40, 20)), tmp_path / "rotated.jpg", 6)
    loaded = load_training_image(path, (20, 40))
    assert loaded.pixels.shape == (40, 20, 3)
    assert loaded.original_size == (20, 40)
    # orientation 6 turns the stored left edge to the top
    assert close(loaded.pixels[3, 10], RED) and close(loaded.pixels[36, 10], BLUE)


def test_cmyk_jpeg_loads_as_rgb(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(path, quality=95)  # pure red in CMYK
    pixels = load_training_image(path, (16, 16)).pixels
    assert pixels.dtype == np.uint8 and pixels.shape == (16, 16, 3)
    assert close(pixels[8, 8], RED, 10)


def test_16_bit_greyscale_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    path = tmp_path / "grey16.png"
    values = np.full((8, 8), 65535, dtype=np.uint16)
    values[:, :4] = 32896  # mid grey in 16 bits
    Image.fromarray(values).save(path)
    pixels = load_training_image(path, (8, 8)).pixels
    assert tuple(pixels[0, 6]) == (255, 255, 255)
    assert close(pixels[0, 1], (128, 128, 128), 2)  # PIL's plain convert would give 255


def test_16_bit_rgb_png_loads(tmp_path: Path) -> None:
    path = png_rgb16(tmp_path / "rgb16.png", (65535, 32896, 0))
    pixels = load_training_image(path, (4, 3)).pixels
    assert close(pixels[1, 1], (255, 128, 0), 2)


def test_palette_png_with_transparent_index_is_white_there(tmp_path: Path) -> None:
    path = tmp_path / "palette.png"
    image = Image.new("P", (8, 8), 1)
    image.putpalette([0, 0, 0, 0, 200, 0] + [0] * 762)
    image.paste(0, (0, 0, 4, 8))  # left half uses index 0, declared transparent
    image.save(path, transparency=0)
    pixels = load_training_image(path, (8, 8)).pixels
    assert tuple(pixels[4, 1]) == (255, 255, 255)
    assert tuple(pixels[4, 6]) == (0, 200, 0)


def test_transparent_png_is_composited_on_white(tmp_path: Path) -> None:
    path = tmp_path / "rgba.png"
    image = Image.new("RGBA", (6, 2), (255, 0, 0, 255))
    image.paste((0, 0, 0, 0), (0, 0, 2, 2))  # fully transparent black
    image.paste((0, 0, 255, 128), (2, 0, 4, 2))  # half-transparent blue
    image.save(path)
    pixels = load_training_image(path, (6, 2)).pixels
    assert tuple(pixels[0, 0]) == (255, 255, 255)
    assert close(pixels[0, 2], (127, 127, 255), 2)
    assert tuple(pixels[0, 5]) == RED


def test_greyscale_with_alpha_loads(tmp_path: Path) -> None:
    path = tmp_path / "la.png"
    Image.new("LA", (4, 4), (0, 0)).save(path)
    assert tuple(load_training_image(path, (4, 4)).pixels[0, 0]) == (255, 255, 255)


def test_resize_to_cover_then_centre_crop(tmp_path: Path) -> None:
    path = tmp_path / "wide.png"
    image = Image.new("RGB", (200, 100), (0, 255, 0))
    image.paste(RED, (0, 0, 40, 100))  # a red band on the left fifth
    image.save(path)
    loaded = load_training_image(path, (64, 64))
    # covered to 128x64, centre crop starts at x=32: the red band (x<26 after resize) is gone
    assert loaded.pixels.shape == (64, 64, 3)
    assert (loaded.crop_left, loaded.crop_top) == (32, 0)
    assert close(loaded.pixels[32, 2], (0, 255, 0), 10)
    assert loaded.original_size == (200, 100)
    assert loaded.sdxl_size_conditioning() == (100, 200, 0, 32, 64, 64)


def test_random_crop_stays_inside_and_follows_the_rng(tmp_path: Path) -> None:
    path = tmp_path / "wide.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (50, 300, 3), dtype=np.uint8)).save(path)
    lefts = set()
    for seed in range(20):
        loaded = load_training_image(path, (32, 32), random_crop=True, rng=random.Random(seed))
        assert loaded.pixels.shape == (32, 32, 3)
        assert 0 <= loaded.crop_left <= 192 - 32 and loaded.crop_top == 0
        lefts.add(loaded.crop_left)
    assert len(lefts) > 5
    again = load_training_image(path, (32, 32), random_crop=True, rng=random.Random(3))
    first = load_training_image(path, (32, 32), random_crop=True, rng=random.Random(3))
    assert np.array_equal(again.pixels, first.pixels)


def test_flip_mirrors_and_reports_the_mirrored_crop(tmp_path: Path) -> None:
    path = tmp_path / "split.png"
    split_image((80, 40)).save(path)
    plain = load_training_image(path, (32, 32), random_crop=True, rng=random.Random(5))
    flipped = load_training_image(path, (32, 32), random_crop=True, flip=True, rng=random.Random(5))
    assert np.array_equal(flipped.pixels, plain.pixels[:, ::-1])
    assert flipped.flipped and flipped.crop_left == (64 - 32) - plain.crop_left


def test_no_upscale_resized_size_keeps_native_pixels(tmp_path: Path) -> None:
    path = tmp_path / "native.png"
    array = np.random.default_rng(2).integers(0, 255, (70, 100, 3), dtype=np.uint8)
    Image.fromarray(array).save(path)
    loaded = load_training_image(path, (64, 64), resized_size=(100, 70))
    assert (loaded.crop_left, loaded.crop_top) == (18, 3)
    assert np.array_equal(loaded.pixels, array[3:67, 18:82])


def test_large_jpeg_takes_the_reduced_decode_path_and_keeps_colours(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    split_image((1600, 800)).save(path, quality=90)
    loaded = load_training_image(path, (64, 32))
    assert loaded.pixels.shape == (32, 64, 3)
    assert loaded.original_size == (1600, 800)
    assert close(loaded.pixels[16, 5], RED, 12) and close(loaded.pixels[16, 58], BLUE, 12)


def test_loading_a_damaged_file_raises_unreadable_image(tmp_path: Path) -> None:
    path = tmp_path / "bad.png"
    path.write_text("nope")
    with pytest.raises(UnreadableImage, match="bad.png"):
        load_training_image(path, (8, 8))


def test_tensor_array_is_chw_float_in_minus_one_to_one() -> None:
    pixels = np.zeros((2, 3, 3), dtype=np.uint8)
    pixels[0, 0] = (255, 0, 128)
    array = image_to_tensor_array(pixels)
    assert array.shape == (3, 2, 3) and array.dtype == np.float32
    assert array[0, 0, 0] == 1.0 and array[1, 0, 0] == -1.0 and array[0, 1, 1] == -1.0
    assert array[2, 0, 0] == pytest.approx(128 / 127.5 - 1, abs=1e-6)
