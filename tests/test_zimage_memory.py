"""Z-Image's torch-free counts agree with the models diffusers and transformers build, tiny and real."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from engine.families.zimage import memory, reference as ref  # noqa: E402
from engine.families.zimage.lora_io import default_targets  # noqa: E402
from engine.families.zimage.tiny import TRANSFORMER_CONFIG, ensure_tiny_zimage_model  # noqa: E402


def _fp32_bytes(slots: dict) -> float:
    """Bytes of element counts in fp32 without autocast (no cast copies)."""
    return 4 * sum(value for key, value in slots.items() if key != "cast")


def _numel(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_counts_match_the_tiny_model(model_cache):
    from diffusers import ZImagePipeline

    pipe = ZImagePipeline.from_pretrained(str(ensure_tiny_zimage_model(model_cache)))
    assert memory.transformer_parameters(TRANSFORMER_CONFIG) == _numel(pipe.transformer)
    assert memory.qwen3_parameters(pipe.text_encoder.config.to_dict()) == _numel(pipe.text_encoder)
    modules = dict(pipe.transformer.named_modules())
    linears = sorted((modules[p].in_features, modules[p].out_features) for p in default_targets(pipe.transformer))
    assert linears == sorted((i, o) for i, o, _, _ in memory.lora_layers(TRANSFORMER_CONFIG))


def test_counts_match_the_real_size_configs():
    from accelerate import init_empty_weights
    from diffusers import ZImageTransformer2DModel
    from transformers import Qwen3Config, Qwen3Model

    def plain(config):
        return {k: v for k, v in config.items() if not k.startswith("_")}

    with init_empty_weights():
        transformer = ZImageTransformer2DModel(**plain(ref.TRANSFORMER_CONFIG))
        qwen = Qwen3Model(Qwen3Config(**plain(ref.QWEN3_CONFIG)))
    assert memory.transformer_parameters(ref.TRANSFORMER_CONFIG) == _numel(transformer) == 6_154_908_736
    assert memory.qwen3_parameters(ref.QWEN3_CONFIG) == _numel(qwen) == 4_022_468_096


def test_checkpointing_keeps_less_than_the_full_forward():
    args = dict(image_tokens=4096, text_tokens=200, batch=1, lora_rank=16)
    full = memory.activations(ref.TRANSFORMER_CONFIG, checkpointing=False, **args)
    checkpointed = memory.activations(ref.TRANSFORMER_CONFIG, checkpointing=True, **args)
    assert _fp32_bytes(checkpointed[0]) * 10 < _fp32_bytes(full[0])
    assert _fp32_bytes(checkpointed[1]) > 0 == _fp32_bytes(full[1])


def _measure(side: int, batch: int, text: int, checkpointing: bool) -> int:
    from diffusers import ZImageTransformer2DModel
    from peft import LoraConfig

    from tests.vram_support import saved_activation_bytes

    torch.manual_seed(0)
    transformer = ZImageTransformer2DModel(**TRANSFORMER_CONFIG)
    transformer.requires_grad_(False)
    transformer.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=default_targets(transformer)))
    transformer.train()
    latents = [torch.randn(16, 1, side, side) for _ in range(batch)]
    captions = [torch.randn(text, TRANSFORMER_CONFIG["cap_feat_dim"]) for _ in range(batch)]
    return saved_activation_bytes(transformer, lambda: transformer(latents, torch.full((batch,), 0.5), captions,
                                                                   return_dict=False)[0], checkpointing=checkpointing)


@pytest.mark.parametrize("side,batch,text,checkpointing", [(16, 1, 20, False), (32, 1, 20, False), (16, 2, 60, False),
                                                           (16, 1, 20, True), (32, 2, 20, True)])
def test_activation_term_is_within_five_percent_of_what_autograd_saves(side, batch, text, checkpointing):
    measured = _measure(side, batch, text, checkpointing)
    model = memory.activations(TRANSFORMER_CONFIG, image_tokens=(side // 2) ** 2, text_tokens=text, batch=batch,
                               checkpointing=checkpointing, lora_rank=4)
    assert abs(_fp32_bytes(model[0]) / measured - 1) < 0.05, (measured, model[0])
