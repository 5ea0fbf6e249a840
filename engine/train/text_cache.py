"""`training.cache_text_encoder_outputs`: every caption encoded once before training, optionally on disk.

Family-agnostic: the conditioning is whatever the family's `encode_text` returns (a dataclass of
per-caption tensors: SD's hidden states and pooled vector, FLUX.1's T5 states, CLIP-L pooled and
mask, Z-Image's Qwen3 states and mask), and the family names that class (`conditioning_class`), so a
file is read back into it by field name. The disk cache sits beside the latent cache (`<cache root>/text`), one small safetensors
file per caption whose name is a digest of the caption, the family, the encoding options (CLIP
skip, token lengths, T5 mask) and a fingerprint of the encoders' weights, so a changed caption,
encoder or length simply misses and is encoded again; nothing is ever read from a stale entry.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..diffusion.text import ConditioningCache


def text_cache_root() -> Path:
    from ..models.tiny import default_cache_root

    return default_cache_root() / "text"


def encoders_fingerprint(encoders: list[Any]) -> str:
    """Cheap identity of the text encoders: their configs and a few numbers from every weight."""
    digest = hashlib.sha256()
    with torch.no_grad():
        for encoder in encoders:
            digest.update(json.dumps(encoder.config.to_dict(), sort_keys=True, default=str).encode())
            for name, tensor in encoder.state_dict().items():
                flat = tensor.detach().flatten()
                digest.update(f"{name}:{tuple(tensor.shape)}:{float(flat[:64].double().sum()):.6e}:"
                              f"{float(flat[-64:].double().sum()):.6e}".encode())
    return digest.hexdigest()[:20]


class TextOutputCache:
    """Fills a `ConditioningCache` with every caption of the run, from disk when allowed."""

    def __init__(self, identity: str, *, disk: bool, device: Any, kind: type):
        self.identity = identity
        self.kind = kind  # the family's conditioning dataclass: what a disk entry is read back into
        self.device = device
        self.disk = disk
        self.hits = 0
        self.misses = 0

    def path_for(self, caption: str) -> Path:
        key = hashlib.sha256(f"{self.identity}\0{caption}".encode()).hexdigest()[:32]
        return text_cache_root() / f"{key}.safetensors"

    def fill(self, cache: ConditioningCache, captions: list[str], encode: Callable[[list[str]], Any], *,
             batch_size: int, progress: Callable[[int, int], None] | None = None) -> None:
        todo = list(dict.fromkeys(captions))
        missing = []
        for caption in todo:
            row = self._read(cache, caption) if self.disk else None
            if row is None:
                missing.append(caption)
            else:
                cache.put(caption, row)
                self.hits += 1
        for start in range(0, len(missing), batch_size):
            chunk = missing[start:start + batch_size]
            with torch.no_grad():
                fresh = encode(chunk)
            cache.kind = type(fresh)
            names = [f.name for f in fields(fresh)]
            for index, caption in enumerate(chunk):
                row = tuple(getattr(fresh, name)[index].clone() if getattr(fresh, name) is not None else None
                            for name in names)
                cache.put(caption, row)
                if self.disk:
                    self._write(caption, type(fresh).__name__, names, row)
            self.misses += len(chunk)
            if progress:
                progress(self.hits + self.misses, len(todo))

    def _read(self, cache: ConditioningCache, caption: str) -> tuple | None:
        path = self.path_for(caption)
        if not path.exists():
            return None
        try:
            with safe_open(str(path), "pt", device="cpu") as handle:
                meta = handle.metadata() or {}
                tensors = {name: handle.get_tensor(name) for name in handle.keys()}
        except Exception:  # a torn cache file is just a miss  # noqa: BLE001
            return None
        kind = self.kind
        if meta.get("kind") != kind.__name__ or meta.get("caption") != caption:
            return None
        cache.kind = kind
        return tuple(tensors[f.name].to(self.device) if f.name in tensors else None for f in fields(kind))

    def _write(self, caption: str, kind: str, names: list[str], row: tuple) -> None:
        path = self.path_for(caption)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tensors = {name: value.detach().cpu().contiguous() for name, value in zip(names, row) if value is not None}
        try:
            save_file(tensors, str(tmp), metadata={"kind": kind, "caption": caption})
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)  # a full cache disk must not stop training


def cache_text_outputs(trainer: Any) -> None:
    """Encode every caption of the run now (validation refused anything that changes captions per
    step), then let the text encoders go when neither samples nor text-encoder training need them."""
    import gc
    import random

    from ..dataset.captions import process_caption

    cfg, base = trainer.cfg, trainer.model.base
    trainer.phase("caching", "caching text encoder outputs")
    trainer.caption_cache = ConditioningCache(budget_bytes=None)
    rng = random.Random(0)  # never drawn from: no shuffle or dropout, so each image has one caption
    captions = [process_caption(item.caption, rng=rng) for item in trainer.plan.dataset.items]
    identity = json.dumps([base.family, trainer.text_options, encoders_fingerprint(trainer.text_encoders)],
                          sort_keys=True, default=str)
    cache = TextOutputCache(identity, disk=cfg.training.cache_text_encoder_outputs_to_disk, device=trainer.device,
                            kind=base.spec.conditioning_class())
    cache.fill(trainer.caption_cache, captions, trainer._encode_captions, batch_size=cfg.training.batch_size,
               progress=lambda done, total: trainer.emit("caching", stage="text", done=done, total=total,
                                                         reused=cache.hits, encoded=cache.misses))
    trainer.emit("log", message=f"text encoder cache: reused {cache.hits} cached captions, encoded {cache.misses}",
                 reused=cache.hits, encoded=cache.misses)
    if not cfg.sampling.prompts and not trainer.model.train_text_encoder:
        trainer.text_encoders = []  # every caption is cached: their memory goes to training
        base.text_encoders.clear()
        gc.collect()
        if trainer.device.type == "cuda":
            torch.cuda.empty_cache()
