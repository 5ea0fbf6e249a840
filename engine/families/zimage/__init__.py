"""Z-Image (Tongyi-MAI; Z-Image-Turbo and the Z-Image base): a single-stream flow-matching transformer
over 2×2 patches of FLUX.1's 16-channel latents, conditioned on Qwen3's hidden states.

The facts come from `reference.py`; the torch parts live beside it (`objective.py`, `lora_io.py`,
`loading.py`, `tiny.py`, `memory.py`) and are reached through the methods below, imported lazily.
Qwen3 stays frozen (its outputs can be cached); the LoRA trains the transformer's attention and
feed-forward linears and is written in the `diffusion_model.` form ComfyUI and diffusers load.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.families.base import ModelFamily
from engine.families.zimage import reference as ref
from engine.families.zimage import settings
from engine.families.zimage.tiny import TINY_MODEL


@dataclass(frozen=True, eq=False)
class ZImageFamily(ModelFamily):
    """Z-Image: its own objective, caption encoding, file form and sampling."""

    flow_matching: bool = True

    def variant_of(self, source: Any) -> str:
        return ref.variant_of(str(source or ""))

    # ------------------------------------------------------------------ training (torch inside)

    def objective(self, cfg: Any, base: Any, *, generator: Any, weight_dtype: Any, device: Any) -> Any:
        from .objective import ZImageObjective

        return ZImageObjective(cfg, base, generator=generator, weight_dtype=weight_dtype, device=device)

    def text_options(self, cfg: Any, base: Any) -> dict[str, Any]:
        return {"max_sequence_length": int(cfg.zimage.max_sequence_length)}

    def encode_text(self, tokenizers: list[Any], encoders: list[Any], captions: list[str], *, device: Any,
                    max_sequence_length: int = ref.MAX_SEQUENCE_LENGTH) -> Any:
        from .objective import encode_zimage_captions

        return encode_zimage_captions(tokenizers[0], encoders[0], captions, max_sequence_length=max_sequence_length,
                                      device=device)

    def conditioning_class(self) -> type:
        from .objective import ZImageConditioning

        return ZImageConditioning

    def settings_sections(self) -> dict[str, list[Any]]:
        return {"model": settings.MODEL_SETTINGS, "objective": settings.ZIMAGE_SETTINGS}

    def adjust_settings(self, table: list[Any]) -> list[Any]:
        return settings.with_zimage_adjustments(table)

    def settings_rules(self, values: Any, table: Any) -> list[Any]:
        return settings.zimage_rules(values, table)

    def run_problems(self, values: Any, table: Any) -> list[Any]:
        return [p for p in settings.zimage_rules({**values, "model.family": self.name}, table) if p.is_error]

    def detects_folder(self, model_index: Any) -> bool:
        from engine.families.zimage.loading import is_zimage_index

        return is_zimage_index(model_index)

    def detects_single_file(self, keys: Any) -> bool:
        from engine.families.zimage.loading import is_zimage_keys

        return is_zimage_keys(keys)

    def memory_walk(self) -> Any:
        from engine.families.zimage import memory  # torch-free

        return memory

    def guessed_from_path(self, path: str) -> bool:
        text = path.lower()
        return any(name in text for name in ("z-image", "z_image", "zimage"))

    def claims_source(self, kind: str, location: str, requested: str | None) -> bool:
        from engine.families.zimage.loading import is_zimage_source

        return is_zimage_source(kind, location, requested)

    def load_base(self, kind: str, location: str, path: str, *, family: str | None, config_dir: str | None,
                  dtype: Any, cache_dir: str | None, companions: Any) -> Any:
        from engine.families.zimage.loading import load_zimage_base

        return load_zimage_base(kind, location, path, family=family, config_dir=config_dir, dtype=dtype,
                                cache_dir=cache_dir, qwen3=companions.get("qwen3"), ae=companions.get("ae"))

    def finish_metadata(self, metadata: dict[str, str], cfg: Any, base: Any) -> dict[str, str]:
        """ai-toolkit's base version, musubi-tuner's modelspec facts and the `zimage:` options."""
        options = {name: cfg.values[f"zimage.{name}"] for name in ref.TRAINING_OPTIONS}
        metadata.update(ref.lora_metadata(options))
        metadata["ss_network_module"] = "networks.lora"
        for key in ("modelspec.prediction_type", "modelspec.encoder_layer", "ss_clip_skip"):
            metadata.pop(key, None)  # flow matching is neither ε nor v; Qwen3 has no CLIP skip
        return metadata

    def write_lora(self, path: Any, weights: Any, *, base: Any, metadata: Any, save_dtype: Any, fmt: str) -> None:
        from .lora_io import save_zimage_lora

        save_zimage_lora(path, weights, metadata=metadata, save_dtype=save_dtype, fmt=fmt)

    def read_lora(self, path: Any, base: Any) -> Any:
        from .lora_io import read_zimage_lora

        return read_zimage_lora(path, {name for name, _ in base.unet.named_modules()})

    def prepare_denoiser(self, denoiser: Any, cfg: Any) -> None:
        pass  # diffusers' Z-Image attention already runs on PyTorch's fused attention

    def lora_targets(self, denoiser: Any) -> list[str]:
        from .lora_io import default_targets

        return default_targets(denoiser)

    def sample_scheduler(self, sampler: str, base: Any) -> Any:
        from diffusers import FlowMatchEulerDiscreteScheduler

        return FlowMatchEulerDiscreteScheduler.from_config(base.scheduler_config)  # the model's own flow sampler

    def fp8_keep_patterns(self) -> tuple[str, ...]:
        return ref.FP8_KEEP_PATTERNS

    def sample_defaults(self, source: str) -> dict[str, Any]:
        variant = self.variant_of(source)
        return {"steps": ref.SAMPLE_STEPS[variant], "cfg": ref.SAMPLE_GUIDANCE[variant]}

    def sample_options(self, prompt: Any, clip_skip: int) -> dict[str, Any]:
        return {"negative_prompt": prompt.negative or None}

    def pipeline(self, *, vae: Any, text_encoders: list[Any], tokenizers: list[Any], denoiser: Any,
                 scheduler: Any) -> Any:
        from diffusers import ZImagePipeline

        return ZImagePipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoders[0], tokenizer=tokenizers[0],
                              transformer=denoiser)


ZIMAGE = ZImageFamily(
    name=ref.NAME,
    label=ref.LABEL,
    naming=ref.NAME,
    prediction_type="flow_matching",
    base_model_version=ref.BASE_MODEL_VERSION,
    architecture=ref.ARCHITECTURE,
    implementation=ref.IMPLEMENTATION,
    config_repo=ref.HUB_IDS["turbo"],
    native_side=ref.NATIVE_SIDE,
    text_encoder_components=("text_encoder",),
    pipeline_class="ZImagePipeline",
    reference_configs=ref.REFERENCE_CONFIGS,
    bucket_max_side=2048,
    text_conditioning="qwen3",
    metadata_prefixes=(ref.BASE_MODEL_VERSION, ref.ARCHITECTURE),  # "zimage" (ai-toolkit), "Z-Image" (musubi-tuner)
    marks_v_in_version=False,
    writes_prediction_type=False,
    settings_section="zimage",
    has_legacy_flags=False,
    companions=("qwen3", "ae"),  # the files beside a single-file transformer (model.qwen3, model.ae)
    quick_picks=(("z-image-turbo", ref.HUB_IDS["turbo"]), ("z-image", ref.HUB_IDS["base"]),
                 ("builtin-tiny-zimage", "builtin-tiny-zimage")),
    vram_reference_file=Path(__file__).parent / "vram_reference.json",
    tiny_model=TINY_MODEL,
    trainable_text_encoders=0,  # Qwen3 stays frozen, as in diffusers' example and ai-toolkit
)
FAMILIES = (ZIMAGE,)
