"""The LoRA network layer on tiny real models: targets, trainability, scaling, regularisers, state."""

from __future__ import annotations

import copy
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from engine.networks.inject import (  # noqa: E402
    adapter_layers,
    apply_network,
    network_parameters,
    select_targets,
)
from engine.networks.regularizers import apply_max_norm  # noqa: E402
from engine.networks.adapter_tensors import export_network, import_network, infer_rank_alpha  # noqa: E402
from engine.problems import ProblemError  # noqa: E402

TYPES = ("lora", "locon", "loha", "lokr")


# ---- tiny models -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base_unet():
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    return UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=8,
    ).eval()


@pytest.fixture(scope="module")
def base_text_encoder():
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    torch.manual_seed(0)
    config = CLIPTextConfig(
        hidden_size=32,
        intermediate_size=48,
        num_attention_heads=4,
        num_hidden_layers=2,
        vocab_size=100,
        projection_dim=16,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    return CLIPTextModelWithProjection(config).eval()


@pytest.fixture
def unet(base_unet):
    return copy.deepcopy(base_unet)


@pytest.fixture
def text_encoder(base_text_encoder):
    return copy.deepcopy(base_text_encoder)


def unet_inputs():
    generator = torch.Generator().manual_seed(1)
    sample = torch.randn(2, 4, 8, 8, generator=generator)
    context = torch.randn(2, 5, 32, generator=generator)
    return sample, torch.tensor([10, 500]), context


def run_unet(model):
    sample, timesteps, context = unet_inputs()
    with torch.no_grad():
        return model(sample, timesteps, encoder_hidden_states=context).sample


def adapted(unet, network_type, **overrides):
    settings = dict(component="unet", network_type=network_type, rank=4, alpha=2.0, conv_rank=2, conv_alpha=1.0)
    settings.update(overrides)
    apply_network(unet, **settings)
    return unet


@torch.no_grad()
def randomize_network(model, seed=3):
    generator = torch.Generator().manual_seed(seed)
    for parameter in network_parameters(model):
        parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)


# ---- ΔW as ComfyUI / AUTOMATIC1111 rebuild it from the file's tensors --------------------------


def loader_delta(tensors, weight_shape):
    """ΔW from exported tensors by the loaders' formulas (comfy/weight_adapter, A1111 network_*.py)."""
    t = {key: value.double() for key, value in tensors.items()}
    alpha = t["alpha"].item() if "alpha" in t else None
    if "lora_down.weight" in t:
        down, up = t["lora_down.weight"], t["lora_up.weight"]
        delta = up.flatten(1) @ down.flatten(1)
        dim = down.shape[0]
    elif "hada_w1_a" in t:
        dim = t["hada_w1_b"].shape[0]
        if "hada_t1" in t:
            m1 = torch.einsum("i j k l, j r, i p -> p r k l", t["hada_t1"], t["hada_w1_b"], t["hada_w1_a"])
            m2 = torch.einsum("i j k l, j r, i p -> p r k l", t["hada_t2"], t["hada_w2_b"], t["hada_w2_a"])
        else:
            m1 = t["hada_w1_a"] @ t["hada_w1_b"]
            m2 = t["hada_w2_a"] @ t["hada_w2_b"]
        delta = m1 * m2
    else:
        dim = None
        if "lokr_w1" in t:
            w1 = t["lokr_w1"]
        else:
            dim = t["lokr_w1_b"].shape[0]
            w1 = t["lokr_w1_a"] @ t["lokr_w1_b"]
        if "lokr_w2" in t:
            w2 = t["lokr_w2"]
        else:
            dim = t["lokr_w2_b"].shape[0]
            if "lokr_t2" in t:
                w2 = torch.einsum("i j k l, j r, i p -> p r k l", t["lokr_t2"], t["lokr_w2_b"], t["lokr_w2_a"])
            else:
                w2 = t["lokr_w2_a"] @ t["lokr_w2_b"]
        if w2.ndim == 4:
            w1 = w1.unsqueeze(2).unsqueeze(2)
        delta = torch.kron(w1, w2.contiguous())
    scale = alpha / dim if alpha is not None and dim is not None else 1.0
    return delta.reshape(weight_shape) * scale


def peft_delta(layer):
    """ΔW as the peft layer adds it in its forward (peft's own formula, scale included)."""
    base = layer.get_base_layer()
    if hasattr(layer, "get_delta_weight"):
        return layer.get_delta_weight("default").double()
    down = layer.lora_A["default"].weight.double()
    up = layer.lora_B["default"].weight.double()
    return (up.flatten(1) @ down.flatten(1)).reshape(base.weight.shape) * layer.scaling["default"]


# ---- targets -----------------------------------------------------------------------------------


def test_lora_adapts_every_transformer_linear_and_projection_only(unet):
    paths = apply_network(unet, component="unet", network_type="lora", rank=4, alpha=4, conv_rank=4, conv_alpha=4)
    assert "down_blocks.0.attentions.0.proj_in" in paths  # 1x1 conv in SD1-style blocks
    assert "mid_block.attentions.0.transformer_blocks.0.attn2.to_k" in paths
    assert "up_blocks.1.attentions.1.transformer_blocks.0.ff.net.0.proj" in paths
    assert "up_blocks.1.attentions.1.transformer_blocks.0.attn1.to_out.0" in paths
    assert all(".attentions." in path for path in paths)
    # 4 Transformer2DModel blocks × (proj_in, proj_out, 2 × 4 attention projections, 2 ff linears)
    assert len(paths) == 4 * 12


def test_locon_adds_resnet_and_sampler_convs_but_never_conv_in_out_or_time_embedding(unet):
    adapted(unet, "locon")
    paths = set(adapter_layers(unet))
    for expected in (
        "down_blocks.0.resnets.0.conv1",
        "down_blocks.0.resnets.0.conv2",
        "down_blocks.0.resnets.0.time_emb_proj",
        "down_blocks.1.resnets.0.conv_shortcut",
        "down_blocks.0.downsamplers.0.conv",
        "up_blocks.0.upsamplers.0.conv",
        "mid_block.resnets.1.conv2",
        "down_blocks.0.attentions.0.proj_out",
    ):
        assert expected in paths
    assert not {"conv_in", "conv_out", "time_embedding.linear_1", "time_embedding.linear_2"} & paths
    assert not any(path.startswith(("conv_norm_out", "time_embedding")) for path in paths)


@pytest.mark.parametrize("network_type", ["loha", "lokr"])
def test_lycoris_types_use_the_locon_targets(unet, base_unet, network_type):
    paths = apply_network(unet, component="unet", network_type=network_type, rank=4, alpha=1, conv_rank=2, conv_alpha=1)
    assert set(paths) == set(select_targets(base_unet, "unet", "locon"))


def test_wide_convs_take_conv_rank_and_1x1_convs_take_rank(unet):
    layers = adapter_layers(adapted(unet, "locon", rank=4, alpha=2.0, conv_rank=2, conv_alpha=1.0))
    conv1 = layers["down_blocks.0.resnets.0.conv1"]
    assert conv1.lora_A["default"].weight.shape == (2, 32, 3, 3)
    assert conv1.lora_B["default"].weight.shape == (32, 2, 1, 1)
    assert conv1.scaling["default"] == pytest.approx(1.0 / 2)
    shortcut = layers["down_blocks.1.resnets.0.conv_shortcut"]
    assert shortcut.lora_A["default"].weight.shape == (4, 32, 1, 1)
    assert shortcut.scaling["default"] == pytest.approx(2.0 / 4)


def test_conv_rank_zero_leaves_wide_convs_out(unet):
    adapted(unet, "locon", conv_rank=0, conv_alpha=0.0)
    paths = set(adapter_layers(unet))
    assert "down_blocks.0.resnets.0.time_emb_proj" in paths
    assert "down_blocks.0.resnets.0.conv1" not in paths


def test_text_encoder_adapts_clip_attention_and_mlp_only(text_encoder):
    paths = apply_network(text_encoder, component="text_encoder_2", network_type="lora", rank=4, alpha=1)
    layer = next(name for name, _ in text_encoder.named_modules() if name.endswith("layers.0.self_attn.q_proj"))
    assert layer in paths
    suffixes = {path.rsplit(".", 2)[-2] + "." + path.rsplit(".", 1)[-1] for path in paths}
    attention = {f"self_attn.{name}" for name in ("q_proj", "k_proj", "v_proj", "out_proj")}
    assert suffixes == attention | {"mlp.fc1", "mlp.fc2"}
    assert len(paths) == 2 * 6
    assert not any("text_projection" in path for path in paths)


def test_sdxl_style_linear_projections_take_rank_and_extra_embeddings_stay_out():
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=(2, 4),
        norm_num_groups=8,
        use_linear_projection=True,
        transformer_layers_per_block=(1, 2),
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=8 * 6 + 32,
    )
    paths = apply_network(unet, component="unet", network_type="locon", rank=4, alpha=1, conv_rank=2, conv_alpha=1)
    proj_in = adapter_layers(unet)["down_blocks.1.attentions.0.proj_in"]
    assert proj_in.lora_A["default"].weight.shape == (4, 64)
    assert "down_blocks.1.attentions.0.transformer_blocks.1.attn2.to_v" in paths
    assert not any(path.startswith(("add_embedding", "time_embedding", "conv_in", "conv_out")) for path in paths)


def test_a_model_takes_one_network(unet):
    adapted(unet, "lora")
    with pytest.raises(ValueError):
        adapted(unet, "lora")


# ---- trainability and scaling -----------------------------------------------------------------


@pytest.mark.parametrize("network_type", TYPES)
def test_only_adapter_parameters_require_grad_and_receive_gradients(unet, network_type):
    adapted(unet, network_type)
    trainable = {id(p) for p in unet.parameters() if p.requires_grad}
    assert trainable == {id(p) for p in network_parameters(unet)} and trainable
    assert all(p.dtype == torch.float32 for p in network_parameters(unet))
    randomize_network(unet)
    sample, timesteps, context = unet_inputs()
    unet(sample, timesteps, encoder_hidden_states=context).sample.square().mean().backward()
    assert all(p.grad is None for p in unet.parameters() if not p.requires_grad)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in network_parameters(unet))


@pytest.mark.parametrize("network_type", TYPES)
def test_scaling_is_alpha_over_rank(unet, network_type):
    layers = adapter_layers(adapted(unet, network_type, rank=4, alpha=3.0, conv_rank=2, conv_alpha=5.0))
    for path, layer in layers.items():
        wide = getattr(layer.get_base_layer(), "kernel_size", (1, 1)) != (1, 1)
        # LyCORIS' LokrModule: a LoKr whose two factors are both full matrices works at scale 1.
        full = network_type == "lokr" and "default" in layer.lokr_w1 and "default" in layer.lokr_w2
        assert layer.scaling["default"] == pytest.approx(1.0 if full else 5.0 / 2 if wide else 3.0 / 4), path


def test_lora_output_adds_up_down_times_alpha_over_rank(unet):
    adapted(unet, "lora", rank=4, alpha=3.0)
    layer = adapter_layers(unet)["mid_block.attentions.0.transformer_blocks.0.attn1.to_q"]
    randomize_network(unet)
    x = torch.randn(2, 5, 64)
    down, up = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    with torch.no_grad():
        expected = layer.get_base_layer()(x) + x @ down.T @ up.T * (3.0 / 4)
        assert torch.allclose(layer(x), expected, atol=1e-5)


@pytest.mark.parametrize("network_type", TYPES)
def test_a_new_network_leaves_the_outputs_unchanged(unet, base_unet, network_type):
    adapted(unet, network_type)
    assert torch.allclose(run_unet(unet), run_unet(base_unet), atol=1e-6)


def test_bad_settings_are_reported_on_their_fields(unet):
    with pytest.raises(ProblemError) as caught:
        apply_network(
            unet, component="unet", network_type="dora", rank=0, alpha=-1, conv_rank=0, conv_alpha=0, dropout=1.0
        )
    fields = {problem.field for problem in caught.value.problems}
    assert fields == {"network.type", "network.rank", "network.alpha", "network.dropout"}
    assert not adapter_layers(unet)


# ---- dropouts ---------------------------------------------------------------------------------


def _probe(layer_path, unet, network_type, **dropouts):
    adapted(unet, network_type, **dropouts)
    randomize_network(unet)
    layer = adapter_layers(unet)[layer_path]
    x = torch.randn(3, 5, layer.get_base_layer().in_features)
    return layer, x


PROBE = "down_blocks.0.attentions.0.transformer_blocks.0.ff.net.2"


@pytest.mark.parametrize("network_type", TYPES)
def test_network_dropout_changes_training_outputs_but_not_eval_outputs(unet, network_type):
    layer, x = _probe(PROBE, unet, network_type, dropout=0.5)
    torch.manual_seed(0)
    with torch.no_grad():
        layer.eval()
        clean = layer(x)
        assert torch.equal(layer(x), clean)
        layer.train()
        first, second = layer(x), layer(x)
    assert not torch.allclose(first, second)
    assert not torch.allclose(first, clean)


def test_rank_dropout_zeroes_whole_ranks_per_sample_and_rescales_the_rest(unet):
    layer, x = _probe(PROBE, unet, "lora", rank_dropout=0.5)
    down = layer.lora_A["default"]
    torch.manual_seed(0)
    with torch.no_grad():
        plain = torch.nn.functional.linear(x, down.weight)
        down.train()
        dropped = down(x)
    ratio = dropped / plain  # [batch, tokens, rank]: 0 or 2, the same along the tokens
    assert torch.allclose(ratio, ratio[:, :1, :].expand_as(ratio), atol=1e-4)
    values = ratio[:, 0, :].flatten()
    assert set(torch.round(values, decimals=3).tolist()) == {0.0, 2.0}
    down.eval()
    with torch.no_grad():
        assert torch.equal(down(x), plain)


def test_rank_dropout_masks_channels_of_lora_convolutions(unet):
    adapted(unet, "locon", rank_dropout=0.5)
    randomize_network(unet)
    down = adapter_layers(unet)["down_blocks.0.resnets.0.conv1"].lora_A["default"]
    x = torch.randn(2, 32, 4, 4)
    torch.manual_seed(0)
    with torch.no_grad():
        plain = down.eval()(x)
        dropped = down.train()(x)
    kept = (dropped.abs().sum(dim=(2, 3)) > 0).float()  # [batch, rank]
    assert torch.allclose(dropped, plain * kept[:, :, None, None] * 2.0, atol=1e-5)


@pytest.mark.parametrize("network_type", TYPES)
def test_module_dropout_skips_the_whole_adapter_in_training_only(unet, network_type):
    layer, x = _probe(PROBE, unet, network_type, module_dropout=0.999)
    torch.manual_seed(0)
    with torch.no_grad():
        base = layer.get_base_layer()(x)
        layer.train()
        assert torch.allclose(layer(x), base, atol=1e-6)
        layer.eval()
        assert not torch.allclose(layer(x), base, atol=1e-4)


def test_module_dropout_skips_lora_convolutions_too(unet):
    adapted(unet, "locon", module_dropout=0.999)
    randomize_network(unet)
    layer = adapter_layers(unet)["down_blocks.0.resnets.0.conv1"]
    x = torch.randn(2, 32, 4, 4)
    torch.manual_seed(0)
    with torch.no_grad():
        base = layer.get_base_layer()(x)
        assert torch.allclose(layer.train()(x), base, atol=1e-6)
        assert not torch.allclose(layer.eval()(x), base, atol=1e-4)


@pytest.mark.parametrize("network_type", ["loha", "lokr"])
def test_lycoris_rank_dropout_uses_peft_options(unet, network_type):
    layer, x = _probe(PROBE, unet, network_type, rank=2, rank_dropout=0.5)
    assert layer.rank_dropout["default"] == 0.5
    torch.manual_seed(0)
    with torch.no_grad():
        clean = layer.eval()(x)
        dropped = layer.train()(x)
    base = layer.get_base_layer()(x)
    zeroed = ((dropped - base).abs().amax(dim=(0, 1)) < 1e-7)
    assert zeroed.any() and not zeroed.all()
    assert not torch.allclose(clean, dropped)


# ---- max-norm ---------------------------------------------------------------------------------


@pytest.mark.parametrize("network_type", TYPES)
def test_max_norm_caps_every_delta_norm_and_reports_what_it_did(unet, text_encoder, network_type):
    adapted(unet, network_type, rank=2 if network_type == "lokr" else 4)
    randomize_network(unet, seed=5)
    apply_network(text_encoder, component="text_encoder", network_type=network_type, rank=4, alpha=2.0)
    randomize_network(text_encoder, seed=6)
    models = [unet, text_encoder]
    layers = [layer for model in models for layer in adapter_layers(model).values()]
    before = torch.tensor([peft_delta(layer).norm().item() for layer in layers])
    cap = float(before.median())

    keys_scaled, mean_norm, max_norm = apply_max_norm(models, cap)

    after = torch.tensor([peft_delta(layer).norm().item() for layer in layers])
    assert keys_scaled == int((before > cap).sum()) > 0
    assert after.max() <= cap * (1 + 1e-4)
    assert max_norm == pytest.approx(float(after.max()), rel=1e-4)
    assert mean_norm == pytest.approx(float(after.mean()), rel=1e-4)
    untouched = before <= cap
    assert torch.allclose(after[untouched], before[untouched], rtol=1e-5)
    assert apply_max_norm(models, cap)[0] == 0


# ---- export / import ---------------------------------------------------------------------------


@pytest.mark.parametrize("network_type", TYPES)
def test_export_then_import_reproduces_the_trained_outputs(base_unet, network_type):
    trained = adapted(copy.deepcopy(base_unet), network_type, rank=2, alpha=3.0)
    randomize_network(trained)
    tensors = export_network(trained, "unet")

    fresh = adapted(copy.deepcopy(base_unet), network_type, rank=2, alpha=3.0)
    assert not torch.allclose(run_unet(fresh), run_unet(trained), atol=1e-4)
    assert import_network(fresh, "unet", tensors) == []
    assert torch.allclose(run_unet(fresh), run_unet(trained), atol=1e-5)


def test_lora_export_has_kohya_shapes_and_the_trained_alpha(unet):
    tensors = export_network(adapted(unet, "locon", rank=4, alpha=2.0, conv_rank=2, conv_alpha=1.0), "unet")
    conv = tensors["down_blocks.0.resnets.0.conv1"]
    assert conv["lora_down.weight"].shape == (2, 32, 3, 3)
    assert conv["lora_up.weight"].shape == (32, 2, 1, 1)
    assert conv["alpha"].ndim == 0 and conv["alpha"].item() == 1.0
    linear = tensors["down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k"]
    assert linear["lora_down.weight"].shape == (4, 32) and linear["lora_up.weight"].shape == (32, 4)
    assert linear["alpha"].item() == 2.0
    assert all(t.device.type == "cpu" and not t.requires_grad for m in tensors.values() for t in m.values())


@pytest.mark.parametrize(
    "network_type, rank, conv_rank, use_tucker",
    [
        ("lora", 4, 2, False),
        ("locon", 4, 2, False),
        ("loha", 4, 2, False),
        ("loha", 4, 2, True),
        ("lokr", 2, 2, False),  # w2 decomposed (rank below half its sides)
        ("lokr", 2, 2, True),  # Tucker core for the 3x3 convolutions
        ("lokr", 8, 8, False),  # both Kronecker factors full: scale folded into w1
    ],
)
def test_exported_tensors_rebuild_peft_delta_under_the_loaders_formula(unet, network_type, rank, conv_rank, use_tucker):
    adapted(unet, network_type, rank=rank, alpha=3.0, conv_rank=conv_rank, conv_alpha=1.5, use_tucker=use_tucker)
    randomize_network(unet)
    layers = adapter_layers(unet)
    tensors = export_network(unet, "unet")
    assert set(tensors) == set(layers)
    for path, layer in layers.items():
        expected = peft_delta(layer)
        rebuilt = loader_delta(tensors[path], layer.get_base_layer().weight.shape)
        assert torch.allclose(rebuilt, expected, rtol=1e-5, atol=1e-7), path
    if network_type == "lokr" and rank == 8:
        full = [m for m in tensors.values() if "lokr_w1" in m and "lokr_w2" in m]
        assert full and all(m["alpha"].item() == 8.0 for m in full)
    if use_tucker:
        core = "hada_t1" if network_type == "loha" else "lokr_t2"
        assert core in tensors["down_blocks.0.resnets.0.conv1"]


def test_import_takes_the_files_alpha(base_unet):
    trained = adapted(copy.deepcopy(base_unet), "lora", rank=4, alpha=1.0)
    randomize_network(trained)
    tensors = export_network(trained, "unet")
    for module in tensors.values():
        module["alpha"] = torch.tensor(4.0)
    fresh = adapted(copy.deepcopy(base_unet), "lora", rank=4, alpha=1.0)
    import_network(fresh, "unet", tensors)
    layer = adapter_layers(fresh)["mid_block.attentions.0.proj_in"]
    assert layer.scaling["default"] == 1.0
    assert export_network(fresh, "unet")["mid_block.attentions.0.proj_in"]["alpha"].item() == 4.0


def test_import_reports_missing_unknown_and_misshapen_modules(base_unet):
    tensors = export_network(adapted(copy.deepcopy(base_unet), "lora", rank=4, alpha=1.0), "unet")
    target = adapted(copy.deepcopy(base_unet), "lora", rank=4, alpha=1.0)
    broken = dict(tensors)
    del broken["mid_block.attentions.0.proj_in"]
    broken["conv_in"] = tensors["mid_block.attentions.0.proj_out"]
    key = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"
    broken[key] = {**tensors[key], "lora_down.weight": torch.zeros(8, 32)}
    before = run_unet(target)

    with pytest.raises(ProblemError) as caught:
        import_network(target, "unet", broken)

    messages = " | ".join(p.message for p in caught.value.problems)
    assert {p.field for p in caught.value.problems} == {"network.weights"}
    assert "conv_in" in messages and "mid_block.attentions.0.proj_in" in messages and key in messages
    assert torch.equal(run_unet(target), before)  # nothing written

    warnings = import_network(target, "unet", {k: v for k, v in broken.items() if k != key}, strict=False)
    assert len(warnings) == 2 and all(p.severity == "warning" for p in warnings)


def test_import_rejects_weights_of_another_network_type(base_unet):
    tensors = export_network(adapted(copy.deepcopy(base_unet), "loha", rank=4, alpha=1.0), "unet")
    with pytest.raises(ProblemError, match="hada_w1_a"):
        import_network(adapted(copy.deepcopy(base_unet), "locon", rank=4, alpha=1.0), "unet", tensors)


def test_text_encoder_weights_load_across_the_text_model_prefix(base_text_encoder):
    trained = copy.deepcopy(base_text_encoder)
    apply_network(trained, component="text_encoder", network_type="lora", rank=4, alpha=1.0)
    randomize_network(trained)
    tensors = export_network(trained, "text_encoder")
    toggled = {
        (path[len("text_model.") :] if path.startswith("text_model.") else f"text_model.{path}"): module
        for path, module in tensors.items()
    }
    fresh = copy.deepcopy(base_text_encoder)
    apply_network(fresh, component="text_encoder", network_type="lora", rank=4, alpha=1.0)
    import_network(fresh, "text_encoder", toggled)
    ids = torch.tensor([[0, 5, 6, 7, 1]])
    with torch.no_grad():
        assert torch.allclose(fresh(ids).text_embeds, trained(ids).text_embeds, atol=1e-6)


# ---- dim_from_weights --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "network_type, settings, expected",
    [
        ("lora", dict(rank=4, alpha=2.0), (4, 2.0, 0, 0.0, "lora")),
        ("locon", dict(rank=4, alpha=2.0, conv_rank=2, conv_alpha=1.0), (4, 2.0, 2, 1.0, "locon")),
        ("locon", dict(rank=4, alpha=2.0, conv_rank=0, conv_alpha=0.0), (4, 2.0, 0, 0.0, "locon")),
        ("loha", dict(rank=4, alpha=2.0, conv_rank=2, conv_alpha=1.0), (4, 2.0, 2, 1.0, "loha")),
        ("lokr", dict(rank=2, alpha=2.0, conv_rank=2, conv_alpha=1.0), (2, 2.0, 2, 1.0, "lokr")),
    ],
)
def test_infer_rank_alpha_reads_back_the_settings(unet, network_type, settings, expected):
    adapted(unet, network_type, **settings)
    tensors = export_network(unet, "unet")
    assert infer_rank_alpha(tensors, unet) == expected


def test_infer_rank_alpha_ignores_lokr_modules_whose_factors_are_both_full(unet):
    # rank 8 leaves most tiny LoKr modules fully stored (no rank in their shapes); the wide
    # feed-forward projections still decompose and carry the rank and alpha.
    tensors = export_network(adapted(unet, "lokr", rank=8, alpha=3.0, conv_rank=8, conv_alpha=3.0), "unet")
    assert any("lokr_w2_b" in module for module in tensors.values())
    rank, alpha, _, _, network_type = infer_rank_alpha(tensors, unet)
    assert (rank, alpha, network_type) == (8, 3.0, "lokr")


def test_infer_rank_alpha_without_a_model_reads_lora_shapes(unet):
    tensors = export_network(adapted(unet, "locon", rank=8, alpha=4.0, conv_rank=4, conv_alpha=2.0), "unet")
    assert infer_rank_alpha(tensors) == (8, 4.0, 4, 2.0, "locon")
    with pytest.raises(ProblemError):
        infer_rank_alpha({"x": {"something": torch.zeros(1)}})
