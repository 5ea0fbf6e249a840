"""The noise a training step adds, and the timesteps it adds it at, as the Kohya scripts draw them.

Each function follows the sd-scripts function named in its docstring (same formula, own code), and
does nothing extra when its option is off, so a plain run draws exactly what it drew before.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class NoiseOptions:
    offset: float = 0.0
    offset_random_strength: bool = False
    adaptive_scale: float = 0.0
    multires_iterations: int = 0
    multires_discount: float = 0.3
    ip_gamma: float = 0.0
    ip_gamma_random_strength: bool = False
    min_timestep: int = 0
    max_timestep: int = 1000

    @classmethod
    def of(cls, training) -> NoiseOptions:  # noqa: ANN001 - a RunConfig section view
        return cls(training.noise_offset, training.noise_offset_random_strength, training.adaptive_noise_scale,
                   training.multires_noise_iterations, training.multires_noise_discount, training.ip_noise_gamma,
                   training.ip_noise_gamma_random_strength, training.min_timestep, training.max_timestep)


def _strength(value: float, random_strength: bool, generator: torch.Generator | None) -> float | torch.Tensor:
    return torch.rand(1, generator=generator).item() * value if random_strength else value


def offset_noise(latents: torch.Tensor, noise: torch.Tensor, offset: float | torch.Tensor, adaptive_scale: float,
                 generator: torch.Generator | None) -> torch.Tensor:
    """sd-scripts `apply_noise_offset`: one random shift per image and channel, scaled by the offset;
    with an adaptive scale the offset grows by scale × |channel mean of the latent| (never below 0)."""
    if adaptive_scale:
        mean = latents.float().mean(dim=(2, 3), keepdim=True).abs()
        offset = torch.clamp(offset + adaptive_scale * mean, min=0.0).to(latents.dtype)
    shift = torch.randn((latents.shape[0], latents.shape[1], 1, 1), generator=generator, dtype=latents.dtype)
    return noise + offset * shift.to(latents.device)


def pyramid_noise(noise: torch.Tensor, iterations: int, discount: float, generator: torch.Generator | None) -> torch.Tensor:
    """sd-scripts `pyramid_noise_like`: add noise drawn at sizes shrinking by a random factor in [2, 4)
    per layer, upscaled bilinearly and weighted discount**i, then rescale to unit standard deviation."""
    batch, channels, height, width = noise.shape
    out = noise.float()
    for i in range(iterations):
        factor = 2 + 2 * torch.rand(1, generator=generator).item()
        small_h, small_w = max(1, int(height / factor ** i)), max(1, int(width / factor ** i))
        layer = torch.randn((batch, channels, small_h, small_w), generator=generator).to(noise.device)
        out = out + F.interpolate(layer, size=(height, width), mode="bilinear") * discount ** i
        if small_h == 1 or small_w == 1:
            break
    return (out / out.std()).to(noise.dtype)


def sample_noise(latents: torch.Tensor, options: NoiseOptions, generator: torch.Generator | None) -> torch.Tensor:
    """The noise the target is built from (sd-scripts `get_noise_noisy_latents_and_timesteps`, first half)."""
    noise = torch.randn(latents.shape, generator=generator, dtype=latents.dtype).to(latents.device)
    if options.offset > 0:
        offset = _strength(options.offset, options.offset_random_strength, generator)
        noise = offset_noise(latents, noise, offset, options.adaptive_scale, generator)
    if options.multires_iterations:
        noise = pyramid_noise(noise, options.multires_iterations, options.multires_discount, generator)
    return noise


def sample_timesteps(batch: int, options: NoiseOptions, num_train_timesteps: int, generator: torch.Generator | None,
                     device) -> torch.Tensor:  # noqa: ANN001
    """sd-scripts `get_timesteps`: uniform in [min, max); one fixed level when min equals max."""
    high = min(options.max_timestep, num_train_timesteps)
    low = min(options.min_timestep, high)
    if low < high:
        return torch.randint(low, high, (batch,), generator=generator).long().to(device)
    return torch.full((batch,), min(high, num_train_timesteps - 1), dtype=torch.long).to(device)


def model_input_noise(noise: torch.Tensor, options: NoiseOptions, generator: torch.Generator | None) -> torch.Tensor:
    """The noise mixed into the model's input: with input perturbation (sd-scripts' ip_noise_gamma)
    it gets gamma × fresh noise more than the target accounts for; otherwise the same noise."""
    if not options.ip_gamma:
        return noise
    gamma = _strength(options.ip_gamma, options.ip_gamma_random_strength, generator)
    extra = torch.randn(noise.shape, generator=generator, dtype=noise.dtype).to(noise.device)
    return noise + gamma * extra
