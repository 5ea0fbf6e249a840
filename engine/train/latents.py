"""Images to VAE latents, with an in-memory cache and an optional disk cache.

The disk cache lives in the user's cache folder (never inside the dataset), one small
safetensors file per (image, bucket, crop, flip, VAE). Its name is a digest of the image's path,
size and modification time, the geometry, and a fingerprint of the VAE's weights, so a changed
image, bucket, VAE or flip setting simply misses the cache and is encoded again.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file, save_file

from ..dataset.color_aug import jitter_colours
from ..dataset.images import ResizedImage, cut_to_bucket, decode_resized, image_to_tensor_array
from ..dataset.scan import ImageItem


def latent_cache_root() -> Path:
    from ..models.tiny import default_cache_root

    return default_cache_root() / "latents"


def vae_fingerprint(vae) -> str:
    """Cheap identity of a VAE: its config and a few numbers from every weight tensor."""
    digest = hashlib.sha256(json.dumps(dict(vae.config), sort_keys=True, default=str).encode())
    with torch.no_grad():
        for name, tensor in vae.state_dict().items():
            flat = tensor.detach().flatten()
            digest.update(f"{name}:{tuple(tensor.shape)}:{float(flat[:64].double().sum()):.6e}:"
                          f"{float(flat[-64:].double().sum()):.6e}".encode())
    return digest.hexdigest()[:20]


def cache_key(item: ImageItem, flip: bool, vae_id: str) -> str:
    stat = Path(item.path).stat()
    parts = [str(Path(item.path).resolve()), str(stat.st_size), str(stat.st_mtime_ns), str(tuple(item.bucket)),
             str(tuple(item.resized_size)), str(flip), vae_id]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


class LatentEncoder:
    """Encodes training images; `cached()` returns the latent for an (item, flip) from the cache."""

    def __init__(self, vae, *, scaling_factor: float, shift_factor: float | None, device, dtype,
                 disk: bool, seed: int):
        self.vae = vae
        self.scaling_factor = scaling_factor
        self.shift_factor = shift_factor or 0.0
        self.device = device
        self.dtype = dtype
        self.disk = disk
        self.seed = seed
        self.memory: dict[tuple[int, bool], torch.Tensor] = {}
        self.conditioning: dict[tuple[int, bool], tuple] = {}
        self.hits = 0
        self.misses = 0
        self._vae_id = vae_fingerprint(vae) if disk else ""

    def pixels(self, item: ImageItem, flip: bool, *, random_crop: bool = False, rng=None,
               decoded: ResizedImage | None = None, color_aug: bool = False):
        """The item's pixel tensor and SDXL size conditioning; `decoded` is its image already
        decoded and resized (by a loading worker), else it is decoded here. `color_aug` jitters
        the colours (drawing from `rng`)."""
        if decoded is None:
            decoded = decode_resized(item.path, tuple(item.bucket), resized_size=tuple(item.resized_size))
        loaded = cut_to_bucket(decoded, tuple(item.bucket), random_crop=random_crop, flip=flip, rng=rng)
        pixels = jitter_colours(loaded.pixels, rng or random.Random()) if color_aug else loaded.pixels
        return torch.from_numpy(image_to_tensor_array(pixels)), loaded.sdxl_size_conditioning()

    @torch.no_grad()
    def encode(self, pixels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        pixels = pixels.to(self.device, dtype=self.dtype)
        dist = self.vae.encode(pixels).latent_dist
        latents = dist.sample(generator=generator) if generator is not None else dist.mode()
        return (latents - self.shift_factor) * self.scaling_factor

    def fill(self, items: list[ImageItem], flips: list[bool], progress: Callable[[int, int], None] | None = None,
             loader=None) -> None:
        """Encode every (item, flip) once, from disk when possible; `loader` (an ImageLoader)
        decodes the images still to encode ahead, in its workers."""
        todo = [(i, f) for i in range(len(items)) for f in flips]
        cache_dir = latent_cache_root()
        paths = [cache_dir / f"{cache_key(items[i], f, self._vae_id)}.safetensors" if self.disk else None
                 for i, f in todo]
        misses = [path is None or not path.exists() for path in paths]  # decided once: the loop writes files
        to_encode = [items[i] for (i, _), miss in zip(todo, misses) if miss]
        decoded = iter(loader.each(to_encode)) if loader is not None and to_encode else None
        for done, ((index, flip), path, predicted_miss) in enumerate(zip(todo, paths, misses), start=1):
            item = items[index]
            latent = None
            if path is not None:
                if not predicted_miss:
                    try:
                        latent = load_file(str(path))["latent"]
                        self.hits += 1
                    except Exception:  # a torn cache file is just a miss  # noqa: BLE001
                        latent = None
            if latent is None:
                # a torn cache file is a miss nobody predicted: decoded here, not by the loader
                ready = next(decoded) if decoded is not None and predicted_miss else None
                pixels, _ = self.pixels(item, flip, decoded=ready)
                generator = torch.Generator(device="cpu").manual_seed(self.seed + index * 2 + int(flip))
                with torch.no_grad():
                    dist = self.vae.encode(pixels[None].to(self.device, dtype=self.dtype)).latent_dist
                    noise = torch.randn(dist.mean.shape, generator=generator).to(dist.mean.device, dist.mean.dtype)
                    latent = ((dist.mean + dist.std * noise - self.shift_factor) * self.scaling_factor)[0].float().cpu()
                self.misses += 1
                if path is not None:
                    _save_atomic(path, latent)
            self.memory[(index, flip)] = latent
            self.conditioning[(index, flip)] = centre_crop_conditioning(item, flip)
            if progress:
                progress(done, len(todo))


def centre_crop_conditioning(item: ImageItem, flip: bool) -> tuple[int, int, int, int, int, int]:
    """SDXL size conditioning of a centre-cropped draw, from the scan's geometry alone."""
    width, height = item.original_size
    bucket_w, bucket_h = item.bucket
    spare_x, spare_y = item.resized_size[0] - bucket_w, item.resized_size[1] - bucket_h
    left, top = spare_x // 2, spare_y // 2
    if flip:
        left = spare_x - left
    return height, width, top, left, bucket_h, bucket_w


def _save_atomic(path: Path, latent: torch.Tensor) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        save_file({"latent": latent.contiguous()}, str(tmp))
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)  # a full cache disk must not stop training

