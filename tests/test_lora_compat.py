"""Saved LoRA files load in diffusers with every key used and reproduce the trained UNet."""

from __future__ import annotations


import pytest
import torch

from engine.train.entry import run_config
from tests.helpers import load_lora_noting_complaints

pytestmark = pytest.mark.slow


def _unet_inputs(unet, seed=0):
    g = torch.Generator().manual_seed(seed)
    config = unet.config
    latents = torch.randn(1, config.in_channels, 16, 16, generator=g)
    text = torch.randn(1, 77, config.cross_attention_dim, generator=g)
    return latents, torch.tensor([500]), text


@pytest.mark.parametrize("network_type", ["lora", "locon"])
def test_file_loads_in_diffusers_with_same_unet_output(tiny_config, network_type):
    from diffusers import StableDiffusionPipeline

    from engine.families.builtin import ensure_builtin_model

    cfg = tiny_config(network__type=network_type, network__conv_rank=2, network__conv_alpha=1.0,
                      network__rank=4, network__alpha=1.0)
    result = run_config(cfg)
    assert result.status == "completed"
    trained_unet = result.trainer.model.base.unet
    trained_unet.eval()
    latents, t, text = _unet_inputs(trained_unet)
    with torch.no_grad():
        expected = trained_unet(latents, t, text).sample

    pipe = StableDiffusionPipeline.from_pretrained(str(ensure_builtin_model("builtin-tiny-sd1")), safety_checker=None)
    with torch.no_grad():
        base_out = pipe.unet(latents, t, text).sample
    complaints = load_lora_noting_complaints(pipe, result.outputs[-1])
    assert not complaints, complaints
    with torch.no_grad():
        loaded = pipe.unet(latents, t, text).sample
    assert not torch.allclose(base_out, expected, atol=1e-6)  # training changed the UNet
    torch.testing.assert_close(loaded, expected, atol=1e-5, rtol=1e-4)
