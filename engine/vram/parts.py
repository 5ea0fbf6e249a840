"""Which model a run trains, as config dicts: a diffusers folder's own configs or the built-in
reference configs of the well-known families (shipped as JSON here, so nothing is downloaded)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from engine import families



@dataclass
class ModelParts:
    family: str  # a `model.family` name
    denoiser: dict[str, Any]
    text_encoders: list[dict[str, Any]]
    vae: dict[str, Any]
    source: str  # where the configs came from, for the breakdown

    @property
    def is_flux(self) -> bool:
        return self.denoiser.get("_class_name") == "FluxTransformer2DModel"

    @property
    def counts(self):
        """The family's own denoiser counting (`ModelFamily.estimate_counts`), or None for engine.vram's walk."""
        return families.get(self.family).estimate_counts() if self.family in families.REGISTRY else None

    @property
    def vae_scale(self) -> int:
        """Image pixels per latent pixel along a side."""
        return 2 ** (len(self.vae["block_out_channels"]) - 1)


def reference_parts(family: str, path: str = "") -> ModelParts:
    data = families.get(family).vram_reference(path)  # each family ships its real-size configs
    return ModelParts(family, data["denoiser"], data["text_encoders"], data["vae"],
                      f"the built-in {data['source']} configs")


def family_of(values: Mapping[str, Any]) -> str:
    """The family to estimate for: `model.family`, else the quick pick's or one the path names, else
    the one the old booleans describe (SD 1.x when unset)."""
    family = values.get("model.family")
    if family in families.REGISTRY:
        return str(family)
    pick = str(values.get("model.quick_pick") or "")
    path = str(values.get("model.path") or "")
    for spec in families.REGISTRY.values():
        if spec.guessed_from_path(path):
            return spec.name
    for spec in families.REGISTRY.values():
        if any(pick == name for name, _ in spec.quick_picks):
            return spec.name
    return families.of_values(values).name


def model_parts(values: Mapping[str, Any]) -> ModelParts | None:
    """The configs to estimate from; None for a built-in tiny model that is not built yet."""
    family = family_of(values)
    path = str(values.get("model.path") or "")
    folder = _diffusers_folder(path)
    if folder is not None:
        parts = _folder_parts(folder, family)
        if parts is not None:
            return parts
    if path.startswith("builtin-tiny"):
        return None
    config_dir = str(values.get("model.config_dir") or "")
    if config_dir and (parts := _folder_parts(Path(config_dir).expanduser(), family)) is not None:
        return parts
    return reference_parts(family, path)


def _diffusers_folder(path: str) -> Path | None:
    if not path:
        return None
    if path.startswith("builtin-tiny"):
        from engine.models.tiny import builtin_model_dir  # torch-free: only paths

        folder = builtin_model_dir(path)
    else:
        folder = Path(path).expanduser()
    return folder if folder.is_dir() else None


def _folder_parts(folder: Path, family: str) -> ModelParts | None:
    denoiser = _read(folder / "unet" / "config.json") or _read(folder / "transformer" / "config.json")
    vae = _read(folder / "vae" / "config.json")
    if denoiser is None or vae is None:
        return None
    encoders = []
    # every text-encoder folder any family has (SD 3.5's third is T5), in order; absent ones are skipped
    for name in sorted({name for spec in families.REGISTRY.values() for name in spec.text_encoder_components}):
        config = _read(folder / name / "config.json")
        if config is not None:
            architectures = config.get("architectures") or []
            config.setdefault("_class_name", architectures[0] if architectures else "CLIPTextModel")
            encoders.append(config)
    return ModelParts(family, denoiser, encoders, vae, f"the configs in {folder}")


def _read(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
