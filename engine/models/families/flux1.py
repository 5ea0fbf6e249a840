"""FLUX.1 [dev] / [schnell]: a flow-matching transformer over 2×2-packed 16-channel latents.

Conditioning is CLIP-L's pooled vector plus T5-XXL's per-token states; [dev] also takes the
guidance scale as an input. The facts come from `flux1_reference.py` (sd-scripts' strings and
defaults); the torch parts (objective, denoiser call, text encoding, pipeline) live in
`engine/train/flux_step.py` and are reached through the methods below, imported lazily.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import flux1_reference as ref
from .base import ModelFamily


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

    def encode_text(self, tokenizers: list[Any], encoders: list[Any], captions: list[str], *, clip_skip: int,
                    max_token_length: int, device: Any, t5_max_tokens: int = 512, t5_mask: bool = False) -> Any:
        from engine.train.flux_step import encode_flux_captions

        return encode_flux_captions(tokenizers, encoders, captions, t5_max_tokens=t5_max_tokens,
                                    t5_mask=t5_mask, device=device)

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
)
