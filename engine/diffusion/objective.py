"""The DDPM training objective of the SD families (ε or v), as one object the loop asks for a loss.

The family builds its objective once per run (`ModelFamily.objective`); the loop's step only calls
`loss`. This is the SD step as it always was: same draws in the same order, so a seeded SD run is
unchanged. FLUX.1's flow-matching objective is in `engine/families/flux1/objective.py`.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from .loss import debiased_weights, diffusion_loss, huber_thresholds, min_snr_weights
from .noise import NoiseOptions, model_input_noise, sample_noise, sample_timesteps


class DiffusionObjective:
    def __init__(self, cfg: Any, base: Any, *, generator: torch.Generator, weight_dtype: torch.dtype,
                 device: torch.device):
        self.base = base
        self.training = cfg.training
        self.options = NoiseOptions.of(cfg.training)  # read once: the step only checks plain fields
        self.generator = generator
        self.weight_dtype = weight_dtype
        self.device = device

    def loss(self, denoiser: Any, latents: torch.Tensor, cond: Any, weights: torch.Tensor, size_conds: Any,
             autocast: Callable[[], Any]) -> torch.Tensor:
        base, training, options = self.base, self.training, self.options
        noise = sample_noise(latents, options, self.generator)
        timesteps = sample_timesteps(latents.shape[0], options, base.noise_scheduler.config.num_train_timesteps,
                                     self.generator, self.device)
        noisy = base.noise_scheduler.add_noise(latents, model_input_noise(noise, options, self.generator), timesteps)
        with autocast():
            prediction = base.spec.denoise(denoiser, noisy, timesteps, cond, size_conditions=size_conds,
                                           dtype=self.weight_dtype)
        target = base.spec.training_target(base.noise_scheduler, latents.float(), noise.float(), timesteps,
                                           base.prediction_type)
        if training.min_snr_gamma:
            weights = weights * min_snr_weights(base.noise_scheduler, timesteps, training.min_snr_gamma,
                                                base.is_v_prediction)
        if training.debiased_estimation_loss:
            weights = weights * debiased_weights(base.noise_scheduler, timesteps, base.is_v_prediction)
        loss_type, huber_c = training.loss_type, None
        if loss_type in ("huber", "smooth_l1"):
            huber_c = huber_thresholds(base.noise_scheduler, timesteps, training.huber_schedule,
                                       training.huber_c, training.huber_scale)
        return diffusion_loss(prediction, target, weights, loss_type, huber_c)
