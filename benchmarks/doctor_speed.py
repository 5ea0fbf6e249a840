"""How long `tui-lora doctor` takes on a folder of 5,000 generated images, cold and warm cache.

    python benchmarks/doctor_speed.py [--images 5000] [--dir /tmp/doctor-bench] [--keep] [--flat]

Generates a dataset of smooth random pictures (JPEG mostly, some PNG, a few duplicates and
near-duplicates, caption files beside most images) in four concept folders, then runs the doctor
twice through the engine API with a fresh cache folder: the first run decodes every image (cold),
the second reads the cache (warm). Prints both times, the finding count, the report's length in lines
and the near-copy findings. Not part of the tests.

`--flat` generates instead one concept folder of flat-colour 16×16 PNGs, each a different colour,
with captions: the dataset of issue 27 (every image once reported as a near copy of the others,
in 70 s and a 288-line report). Targets: at most 20 s on 2 cores for 5,000, no near copies, at
most ~60 report lines.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.dataset.doctor import DoctorOptions, format_report, run_doctor  # noqa: E402

_CONCEPTS = ("10_ohwx woman", "5_ohwx dog", "3_style", "1_background")
_SIZES = ((512, 512), (512, 768), (768, 512), (640, 640), (384, 576))


def _picture(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    """Coloured blocks blurred into shapes, a few ellipses and grain: detail at several scales,
    so perceptual hashes differ the way they do between photos."""
    noise = np.random.default_rng(rng.randrange(1 << 30))
    blocks = Image.fromarray(noise.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize(size, Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(blocks)
    for _ in range(6):
        x0, y0 = rng.randrange(size[0]), rng.randrange(size[1])
        x1, y1 = x0 + rng.randrange(40, 300), y0 + rng.randrange(40, 300)
        draw.ellipse((x0, y0, x1, y1), fill=tuple(rng.randrange(256) for _ in range(3)))
    grain = noise.normal(0, 8, (size[1], size[0], 3))
    return Image.fromarray(np.clip(np.asarray(blocks, dtype=np.float32) + grain, 0, 255).astype(np.uint8))


def make_dataset(root: Path, count: int, seed: int = 0) -> Path:
    rng = random.Random(seed)
    images = root / "images"
    for name in _CONCEPTS:
        (images / name).mkdir(parents=True, exist_ok=True)
    previous = None
    for index in range(count):
        folder = images / _CONCEPTS[index % len(_CONCEPTS)]
        if previous is not None and index % 97 == 0:
            picture = previous.resize((previous.width // 2, previous.height // 2))  # a near copy
        else:
            picture = _picture(rng, rng.choice(_SIZES))
        previous = picture
        if index % 5 == 0:
            picture.save(folder / f"img{index:05d}.png", optimize=False, compress_level=1)
        else:
            picture.save(folder / f"img{index:05d}.jpg", quality=85)
        if index % 10:
            (folder / f"img{index:05d}.txt").write_text(f"ohwx, tag{index % 40}, shape, colour {index % 7}\n")
    return images


def make_flat_dataset(root: Path, count: int) -> Path:
    """`count` flat 16×16 pictures, every one a different colour, each with a caption."""
    folder = root / "images" / "2_flat colours"
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        colour = ((index * 37) % 256, (index * 91 // 7) % 256, (index * 13 // 3 + index // 256 * 50) % 256)
        Image.new("RGB", (16, 16), colour).save(folder / f"{index:05d}.png")
        (folder / f"{index:05d}.txt").write_text(f"flat colour {index}")
    return root / "images"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--dir", type=Path, default=None, help="where to generate (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the generated folder")
    parser.add_argument("--flat", action="store_true", help="flat-colour 16×16 pictures, each a different colour")
    args = parser.parse_args()
    root = args.dir or Path(tempfile.mkdtemp(prefix="doctor-bench-"))
    try:
        images = root / "images"
        if not images.is_dir():
            started = time.perf_counter()
            (make_flat_dataset if args.flat else make_dataset)(root, args.images)
            print(f"generated {args.images} images in {time.perf_counter() - started:.1f} s under {images}")
        cache = root / "cache"
        shutil.rmtree(cache, ignore_errors=True)
        for label in ("cold", "warm"):
            started, cpu = time.perf_counter(), time.process_time()
            report = run_doctor(DoctorOptions(images_dir=images, cache_dir=cache))
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            # CPU seconds (all threads) tell the cost on a busy machine, where wall time is inflated.
            near = len(report.by_code("duplicates.near"))
            print(f"{label}: {seconds:.2f} s wall, {cpu:.2f} s CPU for {report.image_count} images "
                  f"({report.cached_count} from the cache), {len(report.findings)} findings ({near} near-copy), "
                  f"report {len(format_report(report, 100).splitlines())} lines")
    finally:
        if not args.keep and args.dir is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
