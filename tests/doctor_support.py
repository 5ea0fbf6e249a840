"""Builders for the dataset doctor's tests: textured pictures (so perceptual hashes mean something),
concept folders, and a doctor run with a private cache and small buckets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from engine.dataset.doctor import DoctorOptions, DoctorReport, Finding, run_doctor


def picture(seed: int, size: tuple[int, int] = (96, 96)) -> Image.Image:
    """A deterministic picture with structure at several scales (blocks, a gradient, noise)."""
    rng = np.random.default_rng(seed)
    width, height = size
    blocks = rng.integers(0, 256, (6, 6, 3)).astype(np.uint8)
    coarse = np.asarray(Image.fromarray(blocks).resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)
    ramp = np.linspace(0, 60, width, dtype=np.float32)[None, :, None]
    noise = rng.normal(0, 6, (height, width, 3)).astype(np.float32)
    return Image.fromarray(np.clip(coarse + ramp + noise, 0, 255).astype(np.uint8))


def concept(root: Path, name: str, count: int = 1, *, seed: int = 0, size=(96, 96), captions: str | None = None) -> Path:
    """A concept folder of `count` pictures img0.png…; with `captions`, a .txt beside each."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        picture(seed * 1000 + index, size).save(folder / f"img{index}.png")
        if captions is not None:
            (folder / f"img{index}.txt").write_text(captions)
    return folder


def doctor(root: Path, **options) -> DoctorReport:
    """Run the doctor with small buckets (64 px area, sides 32..128) and a cache beside `root`."""
    settings = dict(max_resolution=(64, 64), bucket_min=32, bucket_max=128, bucket_step=32,
                    cache_dir=root.parent / f"{root.name}-cache")
    settings.update(options)
    return run_doctor(DoctorOptions(images_dir=root, **settings))


def only(report: DoctorReport, code: str) -> Finding:
    found = report.by_code(code)
    assert len(found) == 1, f"expected one {code}, got {[f.message for f in report.findings]}"
    return found[0]


def codes(report: DoctorReport) -> set[str]:
    return {f.code for f in report.findings}
