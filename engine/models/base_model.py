"""`BaseModel`: a loaded base model, as every family's loader returns it (no family named here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.problems import Problem


@dataclass
class BaseModel:
    """A loaded base model: frozen components in eval mode, plus what training needs to know."""

    unet: Any
    vae: Any
    text_encoders: list[Any]  # one (SD 1.x/2.x) or two (SDXL: CLIPTextModel, CLIPTextModelWithProjection)
    tokenizers: list[Any]  # CLIPTokenizer per text encoder, model_max_length 77
    noise_scheduler: Any  # DDPMScheduler for training, with the model's betas and prediction type
    family: str  # the `model.family` name of `spec`
    prediction_type: str  # "epsilon" or "v_prediction"
    vae_scale_factor: int  # image side / latent side
    scaling_factor: float  # latents = vae.encode(x).latent_dist.sample() * scaling_factor
    source: str  # what was loaded: a folder, a file or a hub id
    kind: str  # "builtin", "folder", "single_file" or "hub"
    scheduler_config: dict[str, Any] = field(default_factory=dict)  # the model's own, for samplers
    warnings: list[Problem] = field(default_factory=list)
    spec: Any = None  # the family object (engine.families.base.ModelFamily): everything that differs between families

    @property
    def is_v_prediction(self) -> bool:
        return self.prediction_type == "v_prediction"

    def to_pipeline(self, scheduler: Any | None = None):
        """A diffusers pipeline over these components (for sampling); `scheduler` defaults to the training one."""

        scheduler = scheduler if scheduler is not None else self.noise_scheduler
        return self.spec.pipeline(vae=self.vae, text_encoders=self.text_encoders, tokenizers=self.tokenizers,
                                  denoiser=self.unet, scheduler=scheduler)
