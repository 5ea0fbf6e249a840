"""The native resolution of a diffusers folder, read from its json configs (no torch, no weights)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping


def _json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def native_resolution_of_folder(folder: str | Path, family: Any) -> int | None:
    """`sample_size` of the folder's denoiser × its VAE's scale factor; None when the configs are absent."""
    root = Path(folder).expanduser()
    denoiser = _json(root / "unet" / "config.json") or _json(root / "transformer" / "config.json")
    vae = _json(root / "vae" / "config.json")
    if denoiser is None or vae is None or "sample_size" not in denoiser:
        return None
    return family.native_resolution(denoiser, vae)


def _folder_for(values: Mapping[str, Any]) -> Path | None:
    """The diffusers folder whose configs describe the model: the path itself, or a single file's config folder."""
    path = str(values.get("model.path") or "")
    config_dir = values.get("model.config_dir")
    if path.lower().endswith((".safetensors", ".ckpt")):
        return Path(str(config_dir)).expanduser() if config_dir else None
    folder = Path(path).expanduser() if path else None
    return folder if folder is not None and (folder / "model_index.json").is_file() else None


def native_resolution_of(values: Mapping[str, Any], family: Any) -> tuple[int, str]:
    """The side the base model was trained at and where that came from (its configs, or the family's reference)."""
    folder = _folder_for(values)
    if folder is not None:
        side = _cached_native(str(folder), _stamp(folder), family)
        if side is not None:
            return side, f"the configs in {folder}"
    return family.native_side, f"the {family.label} reference models"


def _stamp(folder: Path) -> float:
    try:
        return (folder / "vae" / "config.json").stat().st_mtime
    except OSError:
        return 0.0


@lru_cache(maxsize=32)
def _cached_native(folder: str, stamp: float, family: Any) -> int | None:
    # `stamp` is part of the cache key so an edited config is read again.
    return native_resolution_of_folder(folder, family)
