"""Stable Diffusion 3.5 (Medium and Large): an MMDiT flow-matching transformer with CLIP-L, CLIP-G and T5-XXL.

The facts are in `reference.py` (sd-scripts' strings and defaults) and `configs/` (the real models'
layer configs); the torch parts (objective, caption encoding, LoRA names and files, loading, tiny
model) are in their own modules, reached through the methods below and imported lazily.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.families.base import ModelFamily
from engine.families.sd35 import reference as ref
from engine.families.sd35.kohya import KOHYA
from engine.families.sd35 import settings
from engine.families.sd35.tiny import TINY_MODEL

# The file's key form goes from `finish_metadata` (which sees the run's settings) to `write_lora`
# (which does not) inside the metadata mapping, and is taken out before the file is written.
_KEY_FORMAT = "__sd35_key_format__"


@dataclass(frozen=True, eq=False)
class SD35Family(ModelFamily):
    """SD 3 / 3.5: sd-scripts' SD3 objective, files in sd-scripts' `networks/lora_sd3.py` form."""

    flow_matching: bool = True

    def variant_of(self, denoiser_config: Any) -> str:
        return ref.variant_of_config(dict(denoiser_config))

    # ------------------------------------------------------------------ settings (torch-free)

    def settings_sections(self) -> dict[str, list[Any]]:
        return {"model": settings.SD35_MODEL_SETTINGS, "objective": settings.SD35_SETTINGS}

    def adjust_settings(self, table: list[Any]) -> list[Any]:
        return settings.with_sd35_adjustments(table)

    def settings_rules(self, values: Any, table: Any) -> list[Any]:
        return settings.sd35_rules(values, {s.key: s.default for s in table})

    def run_problems(self, values: Any, table: Any) -> list[Any]:
        return [p for p in self.settings_rules({**values, "model.family": self.name}, table) if p.is_error]

    def finish_metadata(self, metadata: dict[str, str], cfg: Any, base: Any) -> dict[str, str]:
        """sd-scripts' SD3 keys: base version, the variant's architecture and the sd35: options."""
        metadata.update(ref.lora_metadata(self.variant_of(base.unet.config), settings.training_options(cfg.values)))
        metadata["ss_network_module"] = "networks.lora_sd3"  # sd-scripts' SD3 LoRA module
        for key in ("modelspec.encoder_layer", "ss_clip_skip"):
            metadata.pop(key, None)  # CLIP skip does not apply: SD3 reads the penultimate layers
        metadata[_KEY_FORMAT] = cfg.sd35.lora_format
        return metadata

    # ------------------------------------------------------------------ detection (torch-free)

    def detects_folder(self, model_index: Any) -> bool:
        transformer = model_index.get("transformer")  # a StableDiffusion3Pipeline's denoiser is an MMDiT
        return isinstance(transformer, list) and len(transformer) == 2 and transformer[1] == "SD3Transformer2DModel"

    def detects_single_file(self, keys: Any) -> bool:
        return ref.is_sai_transformer(keys)

    def guessed_from_path(self, path: str) -> bool:
        lowered = path.lower()
        return any(mark in lowered for mark in ("sd3", "stable-diffusion-3", "sd35"))

    def vram_reference(self, path: str = "") -> dict[str, Any]:
        """Medium's configs when the path names SD 3.5 Medium, else Large's."""
        return ref.reference_config("5-medium" if "medium" in path.lower() else "5-large")

    def estimate_counts(self) -> Any:
        from engine.families.sd35 import sizes  # torch-free

        return sizes

    # ------------------------------------------------------------------ loading

    def claims_source(self, kind: str, location: str, requested: str | None) -> bool:
        from engine.families.sd35.loading import is_sd35_source

        return is_sd35_source(kind, location, requested)

    def load_base(self, kind: str, location: str, path: str, *, family: str | None, config_dir: str | None,
                  dtype: Any, cache_dir: str | None, companions: Any) -> Any:
        from engine.families.sd35.loading import load_sd35_base

        named = {f"model.{name}": value for name, value in companions.items()}
        return load_sd35_base(kind, location, path, family=family, config_dir=config_dir, dtype=dtype,
                              cache_dir=cache_dir, companions=named, spec=self)

    # ------------------------------------------------------------------ LoRA files (torch inside)

    def write_lora(self, path: Any, weights: Any, *, base: Any, metadata: Any, save_dtype: Any, fmt: str) -> None:
        from engine.families.sd35.lora_io import save_sd35_lora

        metadata = dict(metadata)
        key_format = metadata.pop(_KEY_FORMAT, "kohya")
        save_sd35_lora(path, weights, metadata=metadata, save_dtype=save_dtype, fmt=fmt,
                       num_blocks=base.unet.config.num_layers, key_format=key_format)

    def read_lora(self, path: Any, base: Any) -> Any:
        from engine.families.sd35.lora_io import read_sd35_lora

        return read_sd35_lora(path, num_blocks=base.unet.config.num_layers)

    # ------------------------------------------------------------------ training (torch inside)

    def objective(self, cfg: Any, base: Any, *, generator: Any, weight_dtype: Any, device: Any) -> Any:
        from engine.families.sd35.objective import SD3Objective

        return SD3Objective(cfg, base, generator=generator, weight_dtype=weight_dtype, device=device)

    def text_options(self, cfg: Any, base: Any) -> dict[str, Any]:
        return {"t5_max_tokens": int(cfg.sd35.t5xxl_max_token_length), "lg_mask": bool(cfg.sd35.apply_lg_attn_mask),
                "t5_mask": bool(cfg.sd35.apply_t5_attn_mask)}

    def encode_text(self, tokenizers: list[Any], encoders: list[Any], captions: list[str], *, device: Any,
                    t5_max_tokens: int = 256, lg_mask: bool = False, t5_mask: bool = False) -> Any:
        from engine.families.sd35.objective import encode_sd3_captions

        return encode_sd3_captions(tokenizers, encoders, captions, t5_max_tokens=t5_max_tokens, lg_mask=lg_mask,
                                   t5_mask=t5_mask, device=device)

    def lora_targets(self, denoiser: Any) -> list[str]:
        """sd-scripts' SD3 targets: every Linear of both halves of every joint block."""
        from engine.families.sd35.lora_names import default_targets

        return default_targets(denoiser)

    def prepare_denoiser(self, denoiser: Any, cfg: Any) -> None:
        pass  # diffusers' SD3 attention already runs on PyTorch's fused attention

    def sample_scheduler(self, sampler: str, base: Any) -> Any:
        from diffusers import FlowMatchEulerDiscreteScheduler

        return FlowMatchEulerDiscreteScheduler.from_config(base.scheduler_config)  # the model's own flow sampler

    def sample_options(self, prompt: Any, clip_skip: int) -> dict[str, Any]:
        return {"negative_prompt": prompt.negative or None}

    def pipeline(self, *, vae: Any, text_encoders: list[Any], tokenizers: list[Any], denoiser: Any,
                 scheduler: Any) -> Any:
        from diffusers import StableDiffusion3Pipeline

        return StableDiffusion3Pipeline(transformer=denoiser, scheduler=scheduler, vae=vae,
                                        text_encoder=text_encoders[0], tokenizer=tokenizers[0],
                                        text_encoder_2=text_encoders[1], tokenizer_2=tokenizers[1],
                                        text_encoder_3=text_encoders[2], tokenizer_3=tokenizers[2])


SD35 = SD35Family(
    name="sd35",
    label="SD 3.5",
    naming="sd35",
    prediction_type="flow_matching",
    base_model_version="5-large",
    architecture=f"{ref.ARCHITECTURE_PREFIX}-5-large",
    implementation=ref.IMPLEMENTATION,
    config_repo=ref.HUB_IDS["5-large"],
    native_side=ref.NATIVE_SIDE,
    text_encoder_components=("text_encoder", "text_encoder_2", "text_encoder_3"),
    pipeline_class="StableDiffusion3Pipeline",
    # the file-size estimate's layout (a transformer, named by its class, and the trainable encoders)
    reference_configs={"transformer": ref.reference_config("5-large")["denoiser"],
                       "text_encoders": ref.reference_config("5-large")["text_encoders"][:2]},
    quick_picks=tuple((pick, ref.HUB_IDS[variant]) for pick, variant in ref.QUICK_PICKS.items())
    + (("builtin-tiny-sd35", "builtin-tiny-sd35"),),
    vram_reference_file=Path(__file__).parent / "configs" / ref.CONFIG_FILES["5-large"],
    bucket_max_side=2048,
    text_conditioning="clip_lg_t5",
    metadata_prefixes=("5-", ref.ARCHITECTURE_PREFIX),
    marks_v_in_version=False,
    writes_prediction_type=True,  # sd-scripts writes "epsilon" for SD3 (reference.PREDICTION_TYPE_WRITTEN)
    settings_section="sd35",
    has_legacy_flags=False,
    tiny_model=TINY_MODEL,
    kohya=KOHYA,
    companions=("clip_l", "clip_g", "t5xxl", "ae"),  # the files beside a single SD 3.5 model file
    trainable_text_encoders=2,  # CLIP-L and CLIP-G; T5 stays frozen, as sd-scripts' default
)
FAMILIES = (SD35,)
