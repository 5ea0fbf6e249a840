"""Flux LoRA files in the Kohya form: names, fused q/k/v(/mlp) layers, and what real readers get back."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from engine.families.flux1.lora_names import (  # noqa: E402
    LoraWeights,
    UnknownKeyError,
    default_targets,
    from_kohya,
    fuse,
    split,
    to_kohya,
)

REAL = 3072  # FLUX.1's inner width; its MLP is 4× that


def _random_loras(widths: dict[str, tuple[int, int]], rank: int = 2, alpha: float = 4.0, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return {path: LoraWeights(torch.randn(rank, fan_in, generator=generator),
                              torch.randn(fan_out, rank, generator=generator), alpha)
            for path, (fan_in, fan_out) in widths.items()}


def _linear_widths(module, paths):
    modules = dict(module.named_modules())
    return {path: (modules[path].in_features, modules[path].out_features) for path in paths}


@pytest.fixture(scope="module")
def tiny_pipe(model_cache):
    import os

    from diffusers import FluxPipeline

    from engine.families.flux1.tiny import ensure_tiny_flux_model

    os.environ["TUI_LORA_CACHE"] = str(model_cache)
    return FluxPipeline.from_pretrained(str(ensure_tiny_flux_model(model_cache)))


def _real_width_block_loras() -> dict[str, LoraWeights]:
    """LoRAs (not the model) for double block 0 and single block 1 at FLUX.1's real widths."""
    d = REAL
    widths = {}
    for stream in (("attn.to_q", "attn.to_k", "attn.to_v", "attn.to_out.0"),
                   ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj", "attn.to_add_out")):
        widths.update({f"transformer_blocks.0.{p}": (d, d) for p in stream})
    widths.update({"transformer_blocks.0.ff.net.0.proj": (d, 4 * d), "transformer_blocks.0.ff.net.2": (4 * d, d),
                   "transformer_blocks.0.ff_context.net.0.proj": (d, 4 * d),
                   "transformer_blocks.0.ff_context.net.2": (4 * d, d),
                   "transformer_blocks.0.norm1.linear": (d, 6 * d),
                   "transformer_blocks.0.norm1_context.linear": (d, 6 * d)})
    widths.update({f"single_transformer_blocks.1.attn.to_{p}": (d, d) for p in "qkv"})
    widths.update({"single_transformer_blocks.1.proj_mlp": (d, 4 * d),
                   "single_transformer_blocks.1.proj_out": (5 * d, d),
                   "single_transformer_blocks.1.norm.linear": (d, 3 * d)})
    return _random_loras(widths, rank=2, alpha=1.0)


def test_kohya_names_are_the_bfl_layers_sd_scripts_trains_by_default():
    loras = _random_loras({path: (8, 8) for path in default_targets(2, 2)})
    names = {key.split(".")[0] for key in to_kohya(loras)}
    per_double = {"img_attn_qkv", "img_attn_proj", "img_mlp_0", "img_mlp_2", "img_mod_lin",
                  "txt_attn_qkv", "txt_attn_proj", "txt_mlp_0", "txt_mlp_2", "txt_mod_lin"}
    expected = {f"lora_unet_double_blocks_{i}_{n}" for i in range(2) for n in per_double}
    expected |= {f"lora_unet_single_blocks_{i}_{n}" for i in range(2) for n in ("linear1", "linear2", "modulation_lin")}
    assert names == expected


def test_fused_qkv_keeps_each_parts_weight_change_under_the_readers_alpha_over_rows_rule():
    parts = list(_random_loras({p: (16, 16) for p in "qkv"}, rank=3, alpha=5.0).values())
    fused = fuse(parts)
    assert fused.down.shape == (9, 16) and fused.up.shape == (48, 9)
    assert fused.alpha == 15.0  # stored × 3 so alpha / (3·rank) is each part's alpha / rank
    assert torch.allclose(fused.delta(), torch.cat([part.delta() for part in parts]), atol=1e-5)


def test_tiny_transformer_loras_round_trip_through_the_kohya_form(tiny_pipe):
    transformer = tiny_pipe.transformer
    paths = default_targets(len(transformer.transformer_blocks), len(transformer.single_transformer_blocks))
    loras = _random_loras(_linear_widths(transformer, paths))
    clip_paths = [name for name, module in tiny_pipe.text_encoder.named_modules()
                  if name.endswith(("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"))]
    clip = _random_loras(_linear_widths(tiny_pipe.text_encoder, clip_paths), seed=1)

    back, back_clip = from_kohya(to_kohya(loras, clip))
    assert set(back) == set(loras)
    for path, weights in loras.items():
        assert torch.equal(back[path].down, weights.down) and torch.equal(back[path].up, weights.up), path
        assert back[path].alpha == weights.alpha
    kohya_clip = {path if path.startswith("text_model.") else "text_model." + path: w for path, w in clip.items()}
    assert {p: (w.down, w.up) for p, w in back_clip.items()}.keys() == kohya_clip.keys()


def test_plain_fused_lora_as_sd_scripts_writes_by_default_splits_exactly():
    # Without split_qkv sd-scripts trains one LoRA on the whole fused layer (dense up).
    inner, mlp = 8, 32
    fused = LoraWeights(torch.randn(4, inner), torch.randn(3 * inner + mlp, 4), 2.0)
    state = {"lora_unet_single_blocks_0_linear1.lora_down.weight": fused.down,
             "lora_unet_single_blocks_0_linear1.lora_up.weight": fused.up,
             "lora_unet_single_blocks_0_linear1.alpha": torch.tensor(2.0)}
    parts, _ = from_kohya(state)
    order = ["attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"]
    assert [parts[f"single_transformer_blocks.0.{p}"].up.shape[0] for p in order] == [inner] * 3 + [mlp]
    rebuilt = torch.cat([parts[f"single_transformer_blocks.0.{p}"].delta() for p in order])
    assert torch.allclose(rebuilt, fused.delta(), atol=1e-5)


def test_unknown_or_incomplete_flux_keys_are_refused_with_the_name():
    with pytest.raises(UnknownKeyError, match="img_attn_norm"):
        from_kohya({"lora_unet_double_blocks_0_img_attn_norm.lora_down.weight": torch.zeros(1, 2),
                    "lora_unet_double_blocks_0_img_attn_norm.lora_up.weight": torch.zeros(2, 1)})
    with pytest.raises(UnknownKeyError, match="dora_scale"):
        from_kohya({"lora_unet_single_blocks_0_linear2.lora_down.weight": torch.zeros(1, 2),
                    "lora_unet_single_blocks_0_linear2.lora_up.weight": torch.zeros(2, 1),
                    "lora_unet_single_blocks_0_linear2.dora_scale": torch.zeros(1, 2)})
    with pytest.raises(UnknownKeyError, match="T5"):
        from_kohya({"lora_te2_encoder_block_0_layer_0_SelfAttention_q.lora_down.weight": torch.zeros(1, 2),
                    "lora_te2_encoder_block_0_layer_0_SelfAttention_q.lora_up.weight": torch.zeros(2, 1)})
    with pytest.raises(ValueError, match="attn.to_v"):
        to_kohya(_random_loras({"transformer_blocks.0.attn.to_q": (4, 4), "transformer_blocks.0.attn.to_k": (4, 4)}))
    with pytest.raises(ValueError, match="rank"):
        fuse([LoraWeights(torch.zeros(1, 4), torch.zeros(4, 1), 1.0), LoraWeights(torch.zeros(2, 4), torch.zeros(4, 2), 1.0)])
    with pytest.raises(ValueError, match="cannot split"):
        split(LoraWeights(torch.zeros(2, 4), torch.zeros(10, 2), 1.0), [4, 4])


def test_diffusers_kohya_flux_converter_reads_every_key_and_the_trained_change_at_real_widths():
    # diffusers hard-codes FLUX.1's widths for linear1, so this uses real-width LoRA tensors; the
    # converter needs no model, only the state dict.
    from diffusers.loaders.lora_conversion_utils import _convert_kohya_flux_lora_to_diffusers

    loras = _real_width_block_loras()
    state = to_kohya(loras)
    converted = _convert_kohya_flux_lora_to_diffusers(dict(state))  # raises on keys it cannot place
    assert {key.rsplit(".", 2)[0].removeprefix("transformer.") for key in converted} == set(loras)
    for path, weights in loras.items():
        a = converted[f"transformer.{path}.lora_A.weight"]
        b = converted[f"transformer.{path}.lora_B.weight"]
        assert a.shape[0] == weights.rank  # the block-diagonal form is recognised, not copied densely
        # ΔW compared through random probes (ΔW·X): the same test as comparing the full-size matrices, cheaper.
        probe = torch.randn(a.shape[1], 4, generator=torch.Generator().manual_seed(1))
        expected = weights.up @ (weights.down @ probe) * (weights.alpha / weights.rank)
        assert torch.allclose(b @ (a @ probe), expected, rtol=1e-4, atol=1e-3), path


def test_diffusers_refuses_linear1_of_a_tiny_transformer_because_it_assumes_flux_widths():
    # Pins the library limitation that keeps the tiny-model load test below off single-block linear1.
    from diffusers.loaders.lora_conversion_utils import _convert_kohya_flux_lora_to_diffusers

    loras = _random_loras({f"single_transformer_blocks.0.{p}": (32, w)
                           for p, w in (("attn.to_q", 32), ("attn.to_k", 32), ("attn.to_v", 32), ("proj_mlp", 128))})
    with pytest.raises(AssertionError):
        _convert_kohya_flux_lora_to_diffusers(to_kohya(loras))


def test_flux_pipeline_loads_the_tiny_file_into_every_module_with_the_trained_change(tiny_pipe, tmp_path):
    from safetensors.torch import save_file

    transformer = tiny_pipe.transformer
    paths = [p for p in default_targets(len(transformer.transformer_blocks), 2) if p.startswith("transformer_blocks.")]
    paths += [f"single_transformer_blocks.{i}.{p}" for i in range(2) for p in ("proj_out", "norm.linear")]
    loras = _random_loras(_linear_widths(transformer, paths), rank=2, alpha=1.0)
    # diffusers only recognises its converted CLIP keys when an out_proj is among them (pitfall), so
    # the file holds all six linears of one layer, as a trained CLIP-L LoRA does.
    clip_paths = [name for name, _ in tiny_pipe.text_encoder.named_modules()
                  if ".layers.1." in name and name.endswith(("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"))]
    clip = _random_loras(_linear_widths(tiny_pipe.text_encoder, clip_paths), seed=3)
    path = tmp_path / "flux_lora.safetensors"
    save_file(to_kohya(loras, clip), str(path))

    def image():
        return tiny_pipe("a photo of sks dog", height=64, width=64, num_inference_steps=1, guidance_scale=3.5,
                         max_sequence_length=16, generator=torch.Generator().manual_seed(0), output_type="np").images

    before = image()
    tiny_pipe.load_lora_weights(str(path), adapter_name="flux_test")
    try:
        modules = dict(transformer.named_modules())
        for module_path, weights in loras.items():
            layer = modules[module_path]
            got = layer.lora_B["flux_test"].weight @ layer.lora_A["flux_test"].weight * layer.scaling["flux_test"]
            assert torch.allclose(got, weights.delta(), atol=1e-5), module_path
        wrapped = [name for name, module in transformer.named_modules() if hasattr(module, "lora_A")]
        assert sorted(wrapped) == sorted(loras)  # nothing dropped, nothing extra
        te_wrapped = [name for name, module in tiny_pipe.text_encoder.named_modules() if hasattr(module, "lora_A")]
        assert sorted(te_wrapped) == sorted(clip_paths)
        te_modules = dict(tiny_pipe.text_encoder.named_modules())
        for module_path, weights in clip.items():
            layer = te_modules[module_path]
            got = layer.lora_B["flux_test"].weight @ layer.lora_A["flux_test"].weight * layer.scaling["flux_test"]
            assert torch.allclose(got, weights.delta(), atol=1e-5), module_path
        assert not (image() == before).all()
    finally:
        tiny_pipe.unload_lora_weights()


def test_a_peft_lora_written_in_kohya_form_gives_a_fresh_pipeline_the_same_transformer_output(tiny_pipe, tmp_path):
    import copy

    from diffusers import FluxTransformer2DModel
    from peft import LoraConfig
    from safetensors.torch import save_file

    from engine.families.flux1.lora_names import loras_from_peft

    transformer = copy.deepcopy(tiny_pipe.transformer)
    targets = [p for p in default_targets(2, 2) if not p.startswith("single_transformer_blocks.")
               or p.endswith(("proj_out", "norm.linear"))]  # linear1: diffusers' width limit, see above
    transformer.add_adapter(LoraConfig(r=4, lora_alpha=2, target_modules=targets, init_lora_weights=False))
    trained = loras_from_peft(transformer)
    assert sorted(trained) == sorted(targets)

    path = tmp_path / "peft_flux.safetensors"
    save_file(to_kohya(trained), str(path))
    fresh = copy.deepcopy(tiny_pipe)
    fresh.load_lora_weights(str(path))

    generator = torch.Generator().manual_seed(0)
    inputs = dict(hidden_states=torch.randn(1, 16, 64, generator=generator),
                  encoder_hidden_states=torch.randn(1, 8, 32, generator=generator),
                  pooled_projections=torch.randn(1, 32, generator=generator), timestep=torch.tensor([0.5]),
                  img_ids=torch.zeros(16, 3), txt_ids=torch.zeros(8, 3), guidance=torch.tensor([3.5]))
    with torch.no_grad():
        expected = transformer(**inputs).sample
        got = fresh.transformer(**inputs).sample
        base = tiny_pipe.transformer(**inputs).sample
    assert isinstance(fresh.transformer, FluxTransformer2DModel)
    assert not torch.allclose(expected, base, atol=1e-4)  # the LoRA does change the output
    assert torch.allclose(got, expected, atol=1e-4)


# BFL's FLUX.1 layer names (flux/model.py, flux/modules/layers.py): the weights a ComfyUI Flux model holds.
_BFL_DOUBLE = ("img_mod.lin", "img_attn.qkv", "img_attn.proj", "img_mlp.0", "img_mlp.2",
               "txt_mod.lin", "txt_attn.qkv", "txt_attn.proj", "txt_mlp.0", "txt_mlp.2")
_BFL_SINGLE = ("linear1", "linear2", "modulation.lin")


def _comfyui_flux_lora_keys(num_double: int, num_single: int) -> dict[str, str]:
    """A faithful copy of ComfyUI's rule (comfy/lora.py model_lora_keys_unet) for a BFL-layout Flux:
    each `diffusion_model.<path>.weight` of the model is reachable as `lora_unet_<path with _>`."""
    weights = [f"double_blocks.{i}.{name}.weight" for i in range(num_double) for name in _BFL_DOUBLE]
    weights += [f"single_blocks.{i}.{name}.weight" for i in range(num_single) for name in _BFL_SINGLE]
    return {"lora_unet_" + w[: -len(".weight")].replace(".", "_"): "diffusion_model." + w for w in weights}


def test_comfyui_flux_key_rule_places_every_module_and_fused_shapes_match_bfl_layers(tiny_pipe):
    transformer = tiny_pipe.transformer
    inner = transformer.inner_dim
    loras = _random_loras(_linear_widths(transformer, default_targets(2, 2)))
    state = to_kohya(loras)
    known = _comfyui_flux_lora_keys(2, 2)
    names = {key.split(".")[0] for key in state}
    assert names <= set(known), sorted(names - set(known))
    assert names == set(known)  # sd-scripts' default targets: every BFL linear of every block
    # The fused layers' ΔW must have the BFL weight's shape (out × in) for ComfyUI to add it.
    assert state["lora_unet_double_blocks_1_img_attn_qkv.lora_up.weight"].shape[0] == 3 * inner
    assert state["lora_unet_single_blocks_1_linear1.lora_up.weight"].shape[0] == 3 * inner + 4 * inner
    assert state["lora_unet_single_blocks_1_linear2.lora_down.weight"].shape[1] == inner + 4 * inner
