"""The built-in tiny Z-Image-shaped model: a real `ZImagePipeline` folder, small enough for a CPU.

It has Z-Image-Turbo's structure with small widths and seeded random weights: a
`ZImageTransformer2DModel` with two main layers and two blocks in each refiner (noise and
context), so indices above 0 are exercised everywhere a LoRA reaches; a `Qwen3Model` text encoder
(two layers, so the second-to-last hidden state the pipeline reads is a real layer's output); a
16-channel `AutoencoderKL` with FLUX.1's scaling and shift; and Turbo's flow-matching scheduler
(shift 3, no dynamic shifting). The tokenizer is generated locally (`tokenizer.py`). As with the
other tiny models the VAE downsamples by 4, so a 64 px image is a 16×16 latent, 8×8 = 64 patches.

Built on first use into `<cache root>/models/builtin-tiny-zimage` by the shared tiny-model helper
(`engine.models.tiny.ensure_built`), and reused afterwards.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import engine.families.zimage.reference as ref
import engine.families.zimage.tokenizer as qwen_tokenizer
from engine.models.tiny import TinyModel, ensure_built

NAME = "builtin-tiny-zimage"
SEED = 1006
DESCRIPTION = "Z-Image-Turbo-shaped (Qwen3 text encoder, flow matching)"
# Bump when the builder changes, so cached folders built by older code are rebuilt.
BUILDER_VERSION = 1

QWEN_WIDTH = 32  # the transformer's cap_feat_dim
LATENT_CHANNELS = 16
DIM = 64  # two heads of 32 = sum of the rope axes (8, 12, 12), as 128 = 32 + 48 + 48 at full size

TRANSFORMER_CONFIG: dict[str, Any] = {
    "all_patch_size": (2,), "all_f_patch_size": (1,), "in_channels": LATENT_CHANNELS, "dim": DIM,
    "n_layers": 2, "n_refiner_layers": 2, "n_heads": 2, "n_kv_heads": 2, "norm_eps": 1e-5, "qk_norm": True,
    "cap_feat_dim": QWEN_WIDTH, "rope_theta": 256.0, "t_scale": 1000.0, "axes_dims": [8, 12, 12],
    "axes_lens": [1024, 64, 64],
}


def ensure_tiny_zimage_model(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the ZImagePipeline folder of the tiny model, building it first if needed."""
    return ensure_built(TINY_MODEL, cache_dir)


def _finish(folder: Path) -> None:
    qwen_tokenizer.write_qwen_tokenizer(folder / "tokenizer")  # the chat template travels with it


def build_zimage_pipeline():
    """The in-memory tiny `ZImagePipeline` (deterministic: same weights on every call)."""
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, ZImagePipeline, ZImageTransformer2DModel
    from transformers import Qwen3Config, Qwen3Model


    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        tokenizer = qwen_tokenizer.build_qwen_tokenizer()
        qwen = Qwen3Model(Qwen3Config(
            vocab_size=len(tokenizer), hidden_size=QWEN_WIDTH, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=1024,
            rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=True,
            pad_token_id=tokenizer.convert_tokens_to_ids(qwen_tokenizer.PAD_TOKEN),
        ))
        transformer = ZImageTransformer2DModel(**TRANSFORMER_CONFIG)
        # The pad tokens start at zero in diffusers; give them values so they take part like trained ones.
        with torch.no_grad():
            transformer.x_pad_token.normal_(std=0.02)
            transformer.cap_pad_token.normal_(std=0.02)
        # Three blocks: two downsamplings, so latents are 1/4 of the image side. No quant convs, like FLUX.1's AE.
        vae = AutoencoderKL(
            in_channels=3, out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
            block_out_channels=(32, 32, 64), layers_per_block=1, latent_channels=LATENT_CHANNELS,
            norm_num_groups=16, sample_size=64, scaling_factor=ref.VAE_CONFIG["scaling_factor"],
            shift_factor=ref.VAE_CONFIG["shift_factor"], use_quant_conv=False, use_post_quant_conv=False,
            force_upcast=True,
        )
        scheduler = FlowMatchEulerDiscreteScheduler(**ref.SCHEDULER_CONFIG)
        return ZImagePipeline(scheduler=scheduler, vae=vae, text_encoder=qwen, tokenizer=tokenizer,
                              transformer=transformer)


TINY_MODEL = TinyModel(name=NAME, family=ref.NAME, seed=SEED, description=DESCRIPTION, builder_version=BUILDER_VERSION,
                       build=build_zimage_pipeline, finish=_finish)
