"""FLUX.1 [dev] / [schnell]: a flow-matching transformer over 2×2-packed 16-channel latents.

Conditioning is CLIP-L's pooled vector plus T5-XXL's per-token states; [dev] also takes the
guidance scale as an input. The facts come from `reference.py` (sd-scripts' strings and
defaults); the torch parts (objective, denoiser call, text encoding, pipeline) live in
`objective.py` beside this module and are reached through the methods below, imported lazily.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.families.flux1 import reference as ref
from engine.families.flux1 import settings
from engine.families.flux1.tiny import TINY_MODEL
from engine.families.base import ModelFamily
from engine.families.kohya_names import KohyaNames


@dataclass(frozen=True, eq=False)
class FluxFamily(ModelFamily):
    """The Flux family: a flow-matching objective instead of a DDPM one."""

    # Settings of the SD objective that have no meaning for flow matching (sd-scripts' Flux trainer
    # does not use them either); validation refuses them for this family.
    flow_matching: bool = True

    def variant_of(self, denoiser_config: Any) -> str:
        """'dev' or 'schnell' from the transformer's config (only [dev] embeds guidance)."""
        return ref.variant_of_config(dict(denoiser_config))

    def lora_architecture(self, variant: str | None) -> str:
        return ref.lora_architecture(variant)

    def t5_max_tokens(self, variant: str | None, configured: int | None) -> int:
        """T5 tokens per caption: the setting, else what the variant was distilled with."""
        return int(configured) if configured else ref.T5_MAX_TOKENS.get(variant or "dev", 512)

    # ------------------------------------------------------------------ training (torch inside)

    def objective(self, cfg: Any, base: Any, *, generator: Any, weight_dtype: Any, device: Any) -> Any:
        from engine.families.flux1.objective import FlowMatchingObjective

        return FlowMatchingObjective(cfg, base, generator=generator, weight_dtype=weight_dtype, device=device)

    def text_options(self, cfg: Any, base: Any) -> dict[str, Any]:
        variant = self.variant_of(base.unet.config)
        return {"t5_max_tokens": self.t5_max_tokens(variant, cfg.flux.t5xxl_max_token_length),
                "t5_mask": bool(cfg.flux.apply_t5_attn_mask)}

    def conditioning_class(self) -> type:
        from engine.families.flux1.objective import FluxConditioning

        return FluxConditioning

    def encode_text(self, tokenizers: list[Any], encoders: list[Any], captions: list[str], *, device: Any,
                    t5_max_tokens: int = 512, t5_mask: bool = False) -> Any:
        from engine.families.flux1.objective import encode_flux_captions

        return encode_flux_captions(tokenizers, encoders, captions, t5_max_tokens=t5_max_tokens,
                                    t5_mask=t5_mask, device=device)

    def settings_sections(self) -> dict[str, list[Any]]:
        return {"model": settings.FLUX_MODEL_SETTINGS, "loading": settings.FLUX_TRAINING_SETTINGS,
                "objective": settings.FLUX_SETTINGS}

    def adjust_settings(self, table: list[Any]) -> list[Any]:
        return settings.with_flux_exclusions(table)

    def settings_rules(self, values: Any, table: Any) -> list[Any]:
        return settings.flux_rules(values, table)

    def run_problems(self, values: Any, table: Any) -> list[Any]:
        return [p for p in settings.flux_rules({**values, "model.family": self.name}, table) if p.is_error]

    def finish_metadata(self, metadata: dict[str, str], cfg: Any, base: Any) -> dict[str, str]:
        """sd-scripts' Flux keys: base version, the variant's architecture and the flux: options."""
        options = {name: cfg.values[f"flux.{name}"] for name in ref.TRAINING_OPTIONS}
        metadata.update(ref.lora_metadata(self.variant_of(base.unet.config), options))
        metadata["ss_network_module"] = "networks.lora_flux"  # sd-scripts' Flux LoRA module
        if cfg.values.get("flux.train_blocks", "all") != "all":  # a lora_flux network argument in sd-scripts
            import json

            args = json.loads(metadata.get("ss_network_args") or "{}")
            args["train_blocks"] = str(cfg.values["flux.train_blocks"])
            metadata["ss_network_args"] = json.dumps(args)
        for key in ("modelspec.prediction_type", "modelspec.encoder_layer", "ss_clip_skip"):
            metadata.pop(key, None)  # flow matching is neither ε nor v; CLIP skip does not apply
        return metadata

    def detects_folder(self, model_index: Any) -> bool:
        transformer = model_index.get("transformer")  # a FluxPipeline's denoiser is a Flux transformer
        return isinstance(transformer, list) and len(transformer) == 2 and transformer[1] == "FluxTransformer2DModel"

    def detects_single_file(self, keys: Any) -> bool:
        return ref.is_bfl_transformer(keys)

    def guessed_from_path(self, path: str) -> bool:
        return "flux" in path.lower()

    def claims_source(self, kind: str, location: str, requested: str | None) -> bool:
        from engine.families.flux1.loading import is_flux_source

        return is_flux_source(kind, location, requested)

    def load_base(self, kind: str, location: str, path: str, *, family: str | None, config_dir: str | None,
                  dtype: Any, cache_dir: str | None, companions: Any) -> Any:
        from engine.families.flux1.loading import load_flux_base

        return load_flux_base(kind, location, path, family=family, config_dir=config_dir, dtype=dtype,
                              cache_dir=cache_dir, **{"clip_l": None, "t5xxl": None, "ae": None, **companions})

    def write_lora(self, path: Any, weights: Any, *, base: Any, metadata: Any, save_dtype: Any, fmt: str) -> None:
        from engine.families.flux1.lora_io import save_flux_lora

        save_flux_lora(path, weights, metadata=metadata, save_dtype=save_dtype, fmt=fmt)

    def read_lora(self, path: Any, base: Any) -> Any:
        from engine.families.flux1.lora_io import read_flux_lora

        return read_flux_lora(path)

    def prepare_denoiser(self, denoiser: Any, cfg: Any) -> None:
        pass  # diffusers' Flux attention already runs on PyTorch's fused attention

    def lora_targets(self, denoiser: Any) -> list[str]:
        """sd-scripts' default Flux targets: every linear layer of every double and single block."""
        from engine.families.flux1.lora_names import default_targets

        return default_targets(len(denoiser.transformer_blocks), len(denoiser.single_transformer_blocks))

    def network_targets(self, denoiser: Any, values: Any) -> list[str]:
        """sd-scripts' `train_blocks`: every block, or the double- or single-stream ones only."""
        prefix = {"double": "transformer_blocks.", "single": "single_transformer_blocks."}.get(
            values.get("flux.train_blocks") or "all")
        targets = self.lora_targets(denoiser)
        return [path for path in targets if path.startswith(prefix)] if prefix else targets

    def block_counts(self, denoiser_config: Any) -> dict[str, int]:
        return {"transformer_blocks": int(denoiser_config["num_layers"]),
                "single_transformer_blocks": int(denoiser_config["num_single_layers"])}

    def swap_split(self, blocks_to_swap: int) -> dict[str, int]:
        # sd-scripts' split: a single block holds about half a double block's weights, so N counts
        # N // 2 double blocks and twice the rest in single blocks
        double = blocks_to_swap // 2
        return {"transformer_blocks": double, "single_transformer_blocks": (blocks_to_swap - double) * 2}

    def swappable_blocks(self, denoiser: Any) -> dict[str, list[Any]]:
        return {name: list(getattr(denoiser, name)) for name in ("transformer_blocks", "single_transformer_blocks")}

    def sample_scheduler(self, sampler: str, base: Any) -> Any:
        from diffusers import FlowMatchEulerDiscreteScheduler

        return FlowMatchEulerDiscreteScheduler.from_config(base.scheduler_config)  # the model's own flow sampler

    def sample_options(self, prompt: Any, clip_skip: int) -> dict[str, Any]:
        # prompt.cfg is [dev]'s distilled guidance; a negative prompt would need a second (true CFG) pass
        return {}

    def pipeline(self, *, vae: Any, text_encoders: list[Any], tokenizers: list[Any], denoiser: Any,
                 scheduler: Any) -> Any:
        from diffusers import FluxPipeline

        return FluxPipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoders[0], tokenizer=tokenizers[0],
                            text_encoder_2=text_encoders[1], tokenizer_2=tokenizers[1], transformer=denoiser)


FLUX1 = FluxFamily(
    name="flux1",
    label="FLUX.1",
    naming="flux1",
    prediction_type="flow_matching",
    base_model_version=ref.BASE_MODEL_VERSION,
    architecture=ref.ARCHITECTURES["dev"],
    implementation=ref.IMPLEMENTATION,
    config_repo=ref.HUB_IDS["dev"],
    native_side=ref.NATIVE_SIDE,
    text_encoder_components=("text_encoder", "text_encoder_2"),
    pipeline_class="FluxPipeline",
    reference_configs=ref.REFERENCE_CONFIGS,
    bucket_max_side=2048,
    text_conditioning="clip_pooled_t5",
    metadata_prefixes=("flux1", "flux-1"),
    marks_v_in_version=False,
    writes_prediction_type=ref.WRITES_PREDICTION_TYPE,
    settings_section="flux",
    swap_unsupported="",
    train_block_groups=("double", "single"),
    has_legacy_flags=False,
    quick_picks=(("flux1-dev", ref.HUB_IDS["dev"]), ("flux1-schnell", ref.HUB_IDS["schnell"]),
                 ("builtin-tiny-flux1", "builtin-tiny-flux1")),
    vram_reference_file=Path(__file__).parent / "vram_reference.json",
    tiny_model=TINY_MODEL,
    kohya=KohyaNames(
        scripts=("flux_train_network",), gui_keys={"flux1_checkbox": True}, network_module="networks.lora_flux",
        gui_lora_type="Flux1", marker_options=("ae", "t5xxl"),
        # flow matching has no DDPM noise levels, and CLIP-L has one fixed length
        ignored_options=("noise_offset", "min_snr_gamma", "max_token_length", "multires_noise_iterations",
                         "adaptive_noise_scale", "clip_skip", "v_parameterization", "debiased_estimation_loss")),
    trainable_text_encoders=1,  # CLIP-L only: T5 stays frozen (diffusers' loader drops T5 LoRA keys)
)
FAMILIES = (FLUX1,)
