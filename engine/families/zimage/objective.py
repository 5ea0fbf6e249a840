"""Z-Image's training step: flow matching as diffusers' Z-Image LoRA example does it.

Followed (same formulas, own code): diffusers `examples/dreambooth/train_dreambooth_lora_z_image.py`
— `u` from `compute_density_for_timestep_sampling` (the weighting scheme's density), an index into
the 1000-step schedule shifted by the model's shift, the input mix `(1 − σ)·x + σ·noise`, the
transformer called with `1 − σ` on a list of `[C, 1, H, W]` latents and Qwen3 states with padding
dropped, its output negated, the target `noise − x`, and the loss weighted by
`compute_loss_weighting_for_sd3`. Captions are encoded as `ZImagePipeline.encode_prompt` does
(Qwen3 chat layout, the second-to-last hidden state, 512 tokens), so the LoRA sees at training time
exactly what it will see when sampled.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable

import torch

from engine.diffusion.loss import diffusion_loss, huber_thresholds

NUM_TRAIN_TIMESTEPS = 1000


@dataclass
class ZImageConditioning:
    hidden: torch.Tensor  # Qwen3's second-to-last hidden states [B, tokens, width], padded
    mask: torch.Tensor  # [B, tokens] True where a real token is (the transformer never sees the padding)


@dataclass(frozen=True)
class ZImageOptions:
    weighting_scheme: str = "none"
    logit_mean: float = 0.0
    logit_std: float = 1.0
    mode_scale: float = 1.29
    timestep_shift: float = 3.0
    ip_gamma: float = 0.0
    ip_gamma_random_strength: bool = False

    @classmethod
    def of(cls, cfg: Any) -> ZImageOptions:
        z, training = cfg.zimage, cfg.training
        return cls(z.weighting_scheme, z.logit_mean, z.logit_std, z.mode_scale, z.timestep_shift,
                   training.ip_noise_gamma, training.ip_noise_gamma_random_strength)


def training_schedule(shift: float):
    """The example's noise scheduler: 1000 steps, sigmas shifted by `shift` (Turbo's is 3)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=NUM_TRAIN_TIMESTEPS, shift=shift)


def sample_sigmas(options: ZImageOptions, batch: int, schedule_sigmas: torch.Tensor,
                  generator: torch.Generator | None) -> torch.Tensor:
    """Noise levels σ for a batch: the scheme's density picks an index into the shifted schedule."""
    from diffusers.training_utils import compute_density_for_timestep_sampling

    u = compute_density_for_timestep_sampling(options.weighting_scheme, batch, logit_mean=options.logit_mean,
                                              logit_std=options.logit_std, mode_scale=options.mode_scale,
                                              generator=generator)
    indices = (u * NUM_TRAIN_TIMESTEPS).long().clamp(0, NUM_TRAIN_TIMESTEPS - 1)
    return schedule_sigmas[indices].float()


def loss_weighting(scheme: str, sigmas: torch.Tensor) -> torch.Tensor:
    from diffusers.training_utils import compute_loss_weighting_for_sd3

    return compute_loss_weighting_for_sd3(scheme, sigmas).float()


def predict_velocity(denoiser: Any, noisy: torch.Tensor, sigmas: torch.Tensor, cond: ZImageConditioning,
                     dtype: torch.dtype) -> torch.Tensor:
    """The flow velocity (noise − x) the transformer predicts for [B, C, H, W] noisy latents."""
    device = noisy.device
    latents = list(noisy.to(dtype).unsqueeze(2).unbind(dim=0))  # B × [C, 1, H, W]
    mask = cond.mask.to(device, torch.bool)
    hidden = cond.hidden.to(device, dtype)
    captions = [hidden[i][mask[i]] for i in range(hidden.shape[0])]  # padding dropped, as the pipeline does
    out = denoiser(latents, (1.0 - sigmas).to(device, dtype), captions, return_dict=False)[0]
    return -torch.stack([o.float() for o in out], dim=0).squeeze(2)  # Z-Image predicts x − noise


class ZImageObjective:
    """The Z-Image loss for one batch; built once per run by the family."""

    def __init__(self, cfg: Any, base: Any, *, generator: torch.Generator, weight_dtype: torch.dtype,
                 device: torch.device):
        self.options = ZImageOptions.of(cfg)
        self.training = cfg.training
        self.generator = generator
        self.weight_dtype = weight_dtype
        self.device = device
        self.schedule = training_schedule(self.options.timestep_shift)
        self.schedule_sigmas = self.schedule.sigmas.float()

    def loss(self, denoiser: Any, latents: torch.Tensor, cond: ZImageConditioning, weights: torch.Tensor,
             size_conds: Any, autocast: Callable[[], Any] | None) -> torch.Tensor:
        options, generator, device = self.options, self.generator, self.device
        noise = torch.randn(latents.shape, generator=generator, dtype=latents.dtype).to(device)
        sigmas = sample_sigmas(options, latents.shape[0], self.schedule_sigmas, generator).to(device)
        s = sigmas.view(-1, 1, 1, 1)
        mixed = noise
        if options.ip_gamma:  # input perturbation: extra noise in the input only
            gamma = (torch.rand(1, generator=generator).item() * options.ip_gamma
                     if options.ip_gamma_random_strength else options.ip_gamma)
            mixed = noise + gamma * torch.randn(latents.shape, generator=generator, dtype=latents.dtype).to(device)
        noisy = ((1.0 - s) * latents.float() + s * mixed.float()).to(latents.dtype)
        with autocast() if autocast is not None else contextlib.nullcontext():
            prediction = predict_velocity(denoiser, noisy, sigmas, cond, self.weight_dtype)
        target = noise.float() - latents.float()
        huber_c = None
        if self.training.loss_type in ("huber", "smooth_l1"):
            huber_c = huber_thresholds(self.schedule, sigmas * NUM_TRAIN_TIMESTEPS, self.training.huber_schedule,
                                       self.training.huber_c, self.training.huber_scale)
        sample_weights = weights.to(device) * loss_weighting(options.weighting_scheme, sigmas)
        return diffusion_loss(prediction, target, sample_weights, self.training.loss_type, huber_c)


def encode_zimage_captions(tokenizer: Any, encoder: Any, captions: list[str], *, max_sequence_length: int,
                           device: Any) -> ZImageConditioning:
    """Qwen3 states of the captions laid out as a chat turn, exactly as `ZImagePipeline.encode_prompt`."""
    prompts = [tokenizer.apply_chat_template([{"role": "user", "content": caption}], tokenize=False,
                                             add_generation_prompt=True, enable_thinking=True)
               for caption in captions]
    tokens = tokenizer(prompts, padding="max_length", max_length=max_sequence_length, truncation=True,
                       return_tensors="pt")
    ids, mask = tokens.input_ids.to(device), tokens.attention_mask.to(device).bool()
    hidden = encoder(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[-2]
    return ZImageConditioning(hidden, mask)
