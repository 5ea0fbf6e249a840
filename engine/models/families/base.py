"""`ModelFamily`: everything that differs between base-model families, in one object per family.

The facts (names, metadata strings, reference configs, native size) are plain values so the wizard,
`validate` and the VRAM/size estimates can use them without torch. The behaviour that needs torch
(the training target, the denoiser call, the sample pipeline) lives in methods that import it lazily.
Adding a family means one module in this package that builds a `ModelFamily` (or a subclass).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: one object per family
class ModelFamily:
    name: str  # the `model.family` value: "sd1", "sd2", "sd2-v", "sdxl"
    label: str  # the words the UI and error messages use: "SD 1.x"
    naming: str  # the Kohya key naming scheme its LoRA files use: "sd1", "sd2", "sdxl"
    prediction_type: str  # the objective its models are trained for: "epsilon" or "v_prediction"
    base_model_version: str  # sd-scripts' `ss_base_model_version`
    architecture: str  # `modelspec.architecture` of the base (the LoRA's adds "/lora")
    implementation: str  # `modelspec.implementation` as sd-scripts writes it
    config_repo: str  # the hub repo whose configs a single file of this family loads with
    native_side: int  # image side the reference models were trained at (when no configs say)
    text_encoder_components: tuple[str, ...]  # folder names of its text encoders, in order
    pipeline_class: str  # the diffusers pipeline its samples are made with
    # The reference models' layer configs (torch-free): file-size and memory estimates count from these.
    reference_configs: Mapping[str, Any] = field(default_factory=dict)
    bucket_max_side: int = 1024  # a sensible largest bucket side
    size_conditioning: bool = False  # the denoiser also gets the image's size/crop (SDXL)
    # How captions become conditioning: "clip" (one CLIP encoder's last states) or "clip_pair_pooled"
    # (two encoders' penultimate states side by side, plus the second one's pooled output: SDXL).
    text_conditioning: str = "clip"
    # How other tools' metadata names the family: ss_base_model_version and modelspec.architecture prefixes.
    metadata_prefixes: tuple[str, str] = ("", "")
    marks_v_in_version: bool = True  # sd-scripts appends "_v" to SD 1.x/2.x versions for v-prediction
    # Its Kohya files use the original (LDM) UNet block names, mapped from the UNet's own config.
    ldm_unet_names: bool = False

    # ------------------------------------------------------------------ legacy flags and words

    @property
    def is_v_prediction(self) -> bool:
        return self.prediction_type == "v_prediction"

    def legacy_flags(self, prediction_type: str | None = None) -> dict[str, bool]:
        """The old `model.v2` / `model.v_parameterization` / `model.sdxl` values that agree with it."""
        prediction = prediction_type or self.prediction_type
        return {"v2": self.naming == "sd2", "v_parameterization": prediction == "v_prediction",
                "sdxl": self.naming == "sdxl"}

    # ------------------------------------------------------------------ metadata

    def modelspec_architecture(self) -> str:
        return self.architecture + "/lora"

    def version_for(self, v_parameterization: bool) -> str:
        """`ss_base_model_version` as sd-scripts writes it: `_v` marks v-prediction on SD 1.x/2.x."""
        if self.marks_v_in_version and v_parameterization and not self.base_model_version.endswith("_v"):
            return self.base_model_version + "_v"
        return self.base_model_version

    # ------------------------------------------------------------------ native resolution

    def native_resolution(self, denoiser_config: Mapping[str, Any] | None,
                          vae_config: Mapping[str, Any] | None) -> int:
        """The side the model was trained at: the denoiser's latent `sample_size` × the VAE's factor.

        Falls back to the family's reference side when a config does not say.
        """
        sample = (denoiser_config or {}).get("sample_size")
        if isinstance(sample, (list, tuple)):
            sample = max(sample) if sample else None
        channels = (vae_config or {}).get("block_out_channels")
        if not isinstance(sample, int) or sample <= 0 or not isinstance(channels, (list, tuple)) or not channels:
            return self.native_side
        return sample * 2 ** (len(channels) - 1)

    # ------------------------------------------------------------------ training (torch inside)

    def training_target(self, scheduler: Any, latents: Any, noise: Any, timesteps: Any,
                        prediction_type: str | None = None) -> Any:
        """What the denoiser is trained to output: the noise (ε) or the velocity (v)."""
        from engine.train.loss import training_target

        return training_target(scheduler, latents, noise, timesteps,
                               (prediction_type or self.prediction_type) == "v_prediction")

    def encode_text(self, tokenizers: list[Any], encoders: list[Any], captions: list[str], *, clip_skip: int,
                    max_token_length: int, device: Any) -> Any:
        """The captions' conditioning (hidden states, and a pooled vector where the family uses one)."""
        from engine.train.text import encode_captions

        return encode_captions(tokenizers, encoders, captions, sdxl=self.text_conditioning == "clip_pair_pooled",
                               clip_skip=clip_skip, max_token_length=max_token_length, device=device)

    def denoise(self, denoiser: Any, noisy: Any, timesteps: Any, conditioning: Any, *,
                size_conditions: Any, dtype: Any) -> Any:
        """One call of the UNet on noisy latents with the captions' conditioning."""
        added = None
        if self.size_conditioning:
            added = {"text_embeds": conditioning.pooled.to(dtype), "time_ids": size_conditions.to(noisy.device, dtype=dtype)}
        return denoiser(noisy, timesteps, conditioning.hidden.to(dtype), added_cond_kwargs=added).sample

    def pipeline(self, *, vae: Any, text_encoders: list[Any], tokenizers: list[Any], denoiser: Any,
                 scheduler: Any) -> Any:
        """A diffusers pipeline over loaded components, for samples."""
        import diffusers

        pipeline_class = getattr(diffusers, self.pipeline_class)
        if len(text_encoders) == 2:
            return pipeline_class(vae=vae, text_encoder=text_encoders[0], text_encoder_2=text_encoders[1],
                                  tokenizer=tokenizers[0], tokenizer_2=tokenizers[1], unet=denoiser,
                                  scheduler=scheduler)
        return pipeline_class(vae=vae, text_encoder=text_encoders[0], tokenizer=tokenizers[0], unet=denoiser,
                              scheduler=scheduler, safety_checker=None, feature_extractor=None,
                              requires_safety_checker=False)
