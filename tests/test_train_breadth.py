"""Engine breadth, end to end on the tiny SD1 model: LyCORIS files the loaders recognise, every
optimizer taking real steps, Kohya's regularisers, continuing from a LoRA, and the disk latent cache."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from engine.networks.inject import adapter_layers
from engine.problems import ProblemError
from engine.train.entry import run_config

pytestmark = pytest.mark.slow


def train(cfg, **kwargs):
    events: list[dict] = []
    result = run_config(cfg, on_event=events.append, **kwargs)
    assert result.status == "completed", (result.message, result.hint)
    return result, events


def metadata(path) -> dict[str, str]:
    with safe_open(str(path), "pt") as handle:
        return handle.metadata()


# ---- ComfyUI's key recognition, re-implemented --------------------------------------------------
# comfy/lora.py builds a map from LoRA key prefixes to model weights (model_lora_keys_unet /
# model_lora_keys_clip), then load_lora walks that map: for each known prefix it takes `.alpha` and
# lets each weight adapter claim its suffixes (LoRA: lora_up/lora_down/lora_mid; LoHa: hada_w1_a,
# hada_w1_b, hada_w2_a, hada_w2_b and the optional hada_t1/hada_t2; LoKr: lokr_w1 or lokr_w1_a/b,
# lokr_w2 or lokr_w2_a/b, lokr_t2). Any file key left unclaimed is logged "lora key not loaded".
# The UNet prefixes are `lora_unet_` + the diffusers weight names comfy/utils.py unet_to_diffusers
# lists for the model's UNet config, with dots as underscores; SD 1.x text-encoder prefixes are
# `lora_te_text_model_encoder_layers_<b>_<proj>` for the attention and MLP projections.

_COMFY_CLIP_PROJECTIONS = {
    "mlp.fc1": "mlp_fc1", "mlp.fc2": "mlp_fc2", "self_attn.k_proj": "self_attn_k_proj",
    "self_attn.q_proj": "self_attn_q_proj", "self_attn.v_proj": "self_attn_v_proj",
    "self_attn.out_proj": "self_attn_out_proj",
}
_TRANSFORMER_TOP = ("proj_in", "proj_out", "norm")
_TRANSFORMER_BLOCK = ("norm1", "norm2", "norm3", "attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0",
                      "attn2.to_q", "attn2.to_k", "attn2.to_v", "attn2.to_out.0", "ff.net.0.proj", "ff.net.2")
_RESNET = {"conv1": "in_layers.2", "time_emb_proj": "emb_layers.1", "conv2": "out_layers.3",
           "conv_shortcut": "skip_connection", "norm1": "in_layers.0", "norm2": "out_layers.0"}


def comfy_unet_config(config) -> dict:
    """The LDM-style UNet description ComfyUI's model detection derives for a diffusers SD UNet."""
    levels = len(config.block_out_channels)
    per_level = config.layers_per_block
    depth = config.transformer_layers_per_block
    depth = depth if isinstance(depth, int) else depth[0]
    down = [depth if "CrossAttn" in kind else 0 for kind in config.down_block_types for _ in range(per_level)]
    # ComfyUI lists the output side from the shallowest block up and pops from the end
    up = [depth if "CrossAttn" in kind else 0 for kind in config.up_block_types for _ in range(per_level + 1)]
    return {"num_res_blocks": [per_level] * levels, "channel_mult": [1] * levels, "transformer_depth": down,
            "transformer_depth_output": list(reversed(up)),
            "transformer_depth_middle": depth if "CrossAttn" in config.mid_block_type else -1}


def comfy_unet_to_diffusers(unet_config: dict) -> dict[str, str]:
    """diffusers weight name -> LDM weight name, as comfy/utils.py unet_to_diffusers maps them."""
    mapping: dict[str, str] = {}
    res_blocks = unet_config["num_res_blocks"]
    down_depths = list(unet_config["transformer_depth"])
    up_depths = list(unet_config["transformer_depth_output"])

    def transformer(diffusers: str, ldm: str, count: int) -> None:
        for name in _TRANSFORMER_TOP:
            mapping[f"{diffusers}.{name}.weight"] = f"{ldm}.{name}.weight"
        for t in range(count):
            for name in _TRANSFORMER_BLOCK:
                mapping[f"{diffusers}.transformer_blocks.{t}.{name}.weight"] = f"{ldm}.transformer_blocks.{t}.{name}.weight"

    def resnet(diffusers: str, ldm: str) -> None:
        for ours, theirs in _RESNET.items():
            mapping[f"{diffusers}.{ours}.weight"] = f"{ldm}.{theirs}.weight"

    levels = len(unet_config["channel_mult"])
    for level in range(levels):
        block = 1 + (res_blocks[level] + 1) * level
        for i in range(res_blocks[level]):
            resnet(f"down_blocks.{level}.resnets.{i}", f"input_blocks.{block}.0")
            count = down_depths.pop(0)
            if count > 0:
                transformer(f"down_blocks.{level}.attentions.{i}", f"input_blocks.{block}.1", count)
            block += 1
        mapping[f"down_blocks.{level}.downsamplers.0.conv.weight"] = f"input_blocks.{block}.0.op.weight"
    transformer("mid_block.attentions.0", "middle_block.1", max(0, unet_config["transformer_depth_middle"]))
    for i, ldm in enumerate((0, 2)):
        resnet(f"mid_block.resnets.{i}", f"middle_block.{ldm}")
    for level, per_level in enumerate(reversed(res_blocks)):
        block = (per_level + 1) * level
        for i in range(per_level + 1):
            resnet(f"up_blocks.{level}.resnets.{i}", f"output_blocks.{block}.0")
            slot = 1
            count = up_depths.pop()
            if count > 0:
                slot += 1
                transformer(f"up_blocks.{level}.attentions.{i}", f"output_blocks.{block}.1", count)
            if i == per_level:
                mapping[f"up_blocks.{level}.upsamplers.0.conv.weight"] = f"output_blocks.{block}.{slot}.conv.weight"
            block += 1
    for diffusers, ldm in (("conv_in.weight", "input_blocks.0.0.weight"), ("conv_out.weight", "out.2.weight"),
                           ("time_embedding.linear_1.weight", "time_embed.0.weight"),
                           ("time_embedding.linear_2.weight", "time_embed.2.weight")):
        mapping[diffusers] = ldm
    return mapping


def comfy_key_map(unet, text_encoder) -> dict[str, tuple[str, str]]:
    """LoRA key prefix -> (component, diffusers/transformers weight name in our tiny model)."""
    keys: dict[str, tuple[str, str]] = {}
    for diffusers in comfy_unet_to_diffusers(comfy_unet_config(unet.config)):
        keys["lora_unet_" + diffusers[: -len(".weight")].replace(".", "_")] = ("unet", diffusers)
    # ComfyUI's CLIP keeps transformers' `text_model.` level; CLIPTextModel lost it in transformers 5.6
    modules = dict(text_encoder.named_modules())
    for layer in range(32):
        for projection, lora_name in _COMFY_CLIP_PROJECTIONS.items():
            for path in (f"text_model.encoder.layers.{layer}.{projection}", f"encoder.layers.{layer}.{projection}"):
                if path in modules:
                    keys[f"lora_te_text_model_encoder_layers_{layer}_{lora_name}"] = ("text_encoder", path + ".weight")
    return keys


def comfy_claims(prefix: str, state: dict[str, torch.Tensor]) -> tuple[str, set[str]] | None:
    """(adapter kind, keys it loads) for one known prefix, as load_lora's adapters decide."""
    present = {suffix for suffix in (
        "lora_up.weight", "lora_down.weight", "lora_mid.weight", "hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b",
        "hada_t1", "hada_t2", "lokr_w1", "lokr_w2", "lokr_w1_a", "lokr_w1_b", "lokr_w2_a", "lokr_w2_b", "lokr_t2",
    ) if f"{prefix}.{suffix}" in state}
    if "lora_up.weight" in present:
        return "lora", {f"{prefix}.{s}" for s in present if s.startswith("lora_")}
    if "hada_w1_a" in present:
        wanted = {"hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b"} | ({"hada_t1", "hada_t2"} & present)
        return "loha", {f"{prefix}.{s}" for s in wanted}
    if present & {"lokr_w1", "lokr_w2", "lokr_w1_a", "lokr_w2_a"}:
        return "lokr", {f"{prefix}.{s}" for s in present if s.startswith("lokr_")}
    return None


def comfy_delta(kind: str, prefix: str, state: dict[str, torch.Tensor], weight_shape: torch.Size) -> torch.Tensor:
    """ΔW as ComfyUI's LoHa / LoKr calculate_weight forms it, reshaped onto the target weight."""
    get = lambda suffix: state.get(f"{prefix}.{suffix}")  # noqa: E731
    alpha = get("alpha")
    if kind == "loha":
        w1a, w1b, w2a, w2b = get("hada_w1_a"), get("hada_w1_b"), get("hada_w2_a"), get("hada_w2_b")
        scale = float(alpha) / w1b.shape[0] if alpha is not None else 1.0
        if get("hada_t1") is not None:
            m1 = torch.einsum("i j k l, j r, i p -> p r k l", get("hada_t1"), w1b, w1a)
            m2 = torch.einsum("i j k l, j r, i p -> p r k l", get("hada_t2"), w2b, w2a)
        else:
            m1, m2 = w1a @ w1b, w2a @ w2b
        return scale * (m1 * m2).reshape(weight_shape)
    dim = None
    w1 = get("lokr_w1")
    if w1 is None:
        dim = get("lokr_w1_b").shape[0]
        w1 = get("lokr_w1_a") @ get("lokr_w1_b")
    w2 = get("lokr_w2")
    if w2 is None:
        dim = get("lokr_w2_b").shape[0]
        if get("lokr_t2") is None:
            w2 = get("lokr_w2_a") @ get("lokr_w2_b")
        else:
            w2 = torch.einsum("i j k l, j r, i p -> p r k l", get("lokr_t2"), get("lokr_w2_b"), get("lokr_w2_a"))
    if w2.dim() == 4:
        w1 = w1[:, :, None, None]
    scale = float(alpha) / dim if alpha is not None and dim is not None else 1.0
    delta = torch.kron(w1, w2)
    assert delta.shape[0] == weight_shape[0], f"{prefix}: Kronecker rows {delta.shape[0]} vs weight {weight_shape}"
    return scale * delta.reshape(weight_shape)


@pytest.mark.parametrize("network_type", ["loha", "lokr"])
def test_lycoris_file_is_fully_recognised_by_comfyui_and_rebuilds_the_trained_deltas(tiny_config, network_type):
    cfg = tiny_config(network__type=network_type, network__rank=4, network__alpha=2.0, network__conv_rank=2,
                      network__conv_alpha=1.0, optimizer__learning_rate=1e-2, optimizer__text_encoder_lr=1e-2)
    result, _ = train(cfg)
    path = result.outputs[-1]
    state = {key: value.float() for key, value in load_file(str(path)).items()}
    base = result.trainer.model.base
    unet, text_encoder = base.unet, base.text_encoders[0]
    known = comfy_key_map(unet, text_encoder)

    loaded: set[str] = set()
    claimed_prefixes: dict[str, str] = {}
    for prefix in known:
        if f"{prefix}.alpha" in state:
            loaded.add(f"{prefix}.alpha")
        claim = comfy_claims(prefix, state)
        if claim is not None:
            kind, keys = claim
            assert kind == network_type
            loaded |= keys
            claimed_prefixes[prefix] = kind
    assert set(state) - loaded == set(), "keys ComfyUI would log as 'lora key not loaded'"
    assert any(k.startswith("lora_te_") for k in claimed_prefixes) and any("resnets" in k for k in claimed_prefixes)

    # Each recognised key names a real weight of the tiny model, and ComfyUI's ΔW is the trained one.
    layers = {"unet": adapter_layers(unet), "text_encoder": adapter_layers(text_encoder)}
    models = {"unet": unet, "text_encoder": text_encoder}
    compared = 0
    for prefix, kind in claimed_prefixes.items():
        component, weight_name = known[prefix]
        module_path = weight_name[: -len(".weight")]
        layer = layers[component][module_path]
        weight = models[component].get_submodule(module_path).get_base_layer().weight
        delta = comfy_delta(kind, prefix, state, weight.shape)
        trained = layer.get_delta_weight("default").float().reshape(weight.shape)
        torch.testing.assert_close(delta, trained, rtol=1e-4, atol=1e-7)
        compared += 1
    assert compared == len(layers["unet"]) + len(layers["text_encoder"])

    # conv_rank/conv_alpha apply to the wide (3x3) convolutions, rank/alpha to the rest
    wide_seen = 0
    for prefix, (component, weight_name) in ((p, known[p]) for p in claimed_prefixes):
        module = models[component].get_submodule(weight_name[: -len(".weight")]).get_base_layer()
        wide = isinstance(module, torch.nn.Conv2d) and module.kernel_size != (1, 1)
        wide_seen += wide
        if network_type == "loha":
            assert state[f"{prefix}.hada_w1_b"].shape[0] == (2 if wide else 4)
            assert float(state[f"{prefix}.alpha"]) == (1.0 if wide else 2.0)
    assert wide_seen > 0
    meta = metadata(path)
    assert meta["ss_network_module"] == "lycoris.kohya"
    args = json.loads(meta["ss_network_args"])
    assert args["algo"] == network_type and args["conv_dim"] == "2" and args["conv_alpha"] == "1.0"


# ---- optimizers ---------------------------------------------------------------------------------

OPTIMIZERS = [
    ("DAdaptation", [], "constant"), ("DAdaptAdamPreprint", [], "constant"), ("DAdaptAdam", [], "constant"),
    ("DAdaptLion", [], "constant"), ("Lion", [], "constant"), ("Lion8bit", ["min_8bit_size=16"], "constant"),
    ("SGDNesterov", [], "constant"), ("PagedAdamW8bit", ["min_8bit_size=16"], "constant"), ("Prodigy", [], "constant"),
    ("AdamW8bit", ["min_8bit_size=16"], "constant"), ("Adafactor", [], "constant"), ("Adafactor", [], "adafactor"),
    ("AdamW", ["weight_decay=0.1", "betas=0.8,0.95"], "cosine"),
]


@pytest.mark.parametrize("name, extra_args, scheduler", OPTIMIZERS, ids=[f"{o[0]}-{o[2]}" for o in OPTIMIZERS])
def test_every_optimizer_trains_the_lora_in_a_real_run(tiny_config, name, extra_args, scheduler):
    lr = 1.0 if name.startswith(("DAdapt", "Prodigy")) else 1e-3
    cfg = tiny_config(optimizer__name=name, optimizer__extra_args=extra_args, optimizer__scheduler=scheduler,
                      optimizer__learning_rate=lr, optimizer__unet_lr=None, optimizer__text_encoder_lr=None)
    result, events = train(cfg)
    steps = [e for e in events if e["type"] == "step"]
    assert len(steps) == 2
    # lora_up starts at zero: any non-zero value is an update the optimizer made
    state = load_file(str(result.outputs[-1]))
    ups = [v for k, v in state.items() if k.endswith("lora_up.weight")]
    assert ups and all(v.abs().sum() > 0 for v in ups)
    optimizer = result.trainer.optimizer
    inner = getattr(optimizer, "optimizer", optimizer)
    assert all(len(inner.state[p]) > 0 for g in inner.param_groups for p in g["params"][:3])
    assert all(lr > 0 for lr in steps[-1]["lr"].values())
    assert metadata(result.outputs[-1])["ss_optimizer"].endswith(")")


def test_bad_optimizer_args_are_refused_before_anything_is_loaded_or_written(tiny_config, tmp_path):
    from engine.runs import list_runs

    cfg = tiny_config(optimizer__name="AdamW", optimizer__extra_args=["betas=0.9", "weight_decy=0.1"])
    with pytest.raises(ProblemError) as info:
        run_config(cfg)
    fields = {p.field for p in info.value.errors}
    assert fields == {"optimizer.extra_args"}
    messages = " ".join(p.message for p in info.value.errors)
    assert "betas" in messages and "weight_decy" in messages
    assert "weight_decay" in " ".join(p.hint for p in info.value.errors)  # did-you-mean
    assert not (tmp_path / "out").exists() and list_runs() == []


def test_adafactor_schedule_with_a_manual_step_size_is_refused_before_loading(tiny_config, tmp_path):
    cfg = tiny_config(optimizer__name="Adafactor", optimizer__scheduler="adafactor",
                      optimizer__extra_args=["relative_step=false"])
    with pytest.raises(ProblemError) as info:
        run_config(cfg)
    assert info.value.errors[0].field == "optimizer.extra_args"
    assert not (tmp_path / "out").exists()


# ---- regularisers -------------------------------------------------------------------------------

def _unet_probe(unet):
    g = torch.Generator().manual_seed(3)
    return (torch.randn(2, unet.config.in_channels, 16, 16, generator=g), torch.tensor([10, 500]),
            torch.randn(2, 77, unet.config.cross_attention_dim, generator=g))


@pytest.mark.parametrize("setting", ["network__dropout", "network__rank_dropout", "network__module_dropout"])
def test_dropouts_change_training_and_act_only_in_training_mode(tiny_config, setting):
    common = dict(optimizer__learning_rate=1e-2, optimizer__text_encoder_lr=0.0)
    plain, _ = train(tiny_config(folders__output_name="plain", **common))
    dropped, _ = train(tiny_config(folders__output_name="dropped", **{setting: 0.5}, **common))
    a, b = load_file(str(plain.outputs[-1])), load_file(str(dropped.outputs[-1]))
    assert any(not torch.equal(a[k], b[k]) for k in a if k.endswith("weight"))

    unet = dropped.trainer.model.base.unet
    inputs = _unet_probe(unet)
    with torch.no_grad():
        unet.train()
        first, second = unet(*inputs).sample, unet(*inputs).sample
        unet.eval()
        third, fourth = unet(*inputs).sample, unet(*inputs).sample
    assert not torch.equal(first, second)  # a fresh draw every forward in training
    assert torch.equal(third, fourth)  # and none at inference
    if setting == "network__rank_dropout":
        meta = json.loads(metadata(dropped.outputs[-1])["ss_network_args"])
        assert meta["rank_dropout"] == "0.5"


def test_scale_weight_norms_caps_every_module_and_reports_it_each_step(tiny_config):
    limit = 0.02
    cfg = tiny_config(network__scale_weight_norms=limit, optimizer__learning_rate=5e-2, training__epochs=2)
    result, events = train(cfg)
    steps = [e for e in events if e["type"] == "step"]
    assert steps and all({"keys_scaled", "mean", "max"} <= set(e["max_norm"]) for e in steps)
    assert any(e["max_norm"]["keys_scaled"] > 0 for e in steps)
    assert all(e["max_norm"]["max"] <= limit * (1 + 1e-4) for e in steps)
    assert all(0 < e["max_norm"]["mean"] <= e["max_norm"]["max"] for e in steps[1:])
    state = load_file(str(result.outputs[-1]))
    norms = []
    for key, down in state.items():
        if key.endswith("lora_down.weight"):
            prefix = key[: -len(".lora_down.weight")]
            up = state[f"{prefix}.lora_up.weight"].flatten(1)
            scale = float(state[f"{prefix}.alpha"]) / down.shape[0]
            norms.append(float((up @ down.flatten(1)).norm()) * scale)
    assert max(norms) <= limit * (1 + 1e-4)
    assert metadata(result.outputs[-1])["ss_scale_weight_norms"] == str(limit)


def test_without_scale_weight_norms_steps_carry_no_norm_stats(tiny_config):
    _, events = train(tiny_config())
    assert all("max_norm" not in e for e in events if e["type"] == "step")


# ---- continuing from a LoRA ---------------------------------------------------------------------

FROZEN = dict(optimizer__learning_rate=1e-30, optimizer__unet_lr=None, optimizer__text_encoder_lr=None)


def test_continuing_starts_from_the_files_weights(tiny_config, tmp_path):
    first, _ = train(tiny_config(folders__output_name="first", optimizer__learning_rate=1e-2))
    source = load_file(str(first.outputs[-1]))
    # a learning rate of 1e-30 moves no float32 weight: the result is the starting point itself
    continued, events = train(tiny_config(folders__output_name="second", network__weights=str(first.outputs[-1]),
                                          **FROZEN))
    again = load_file(str(continued.outputs[-1]))
    assert set(again) == set(source)
    assert all(torch.equal(again[k], source[k]) for k in source)
    fresh, _ = train(tiny_config(folders__output_name="fresh", **FROZEN))
    assert any(not torch.equal(load_file(str(fresh.outputs[-1]))[k], source[k]) for k in source)
    assert not [e for e in events if e["type"] == "warning" and e.get("field") == "network.weights"]


def _kohya_layout_file(path: Path, unet, text_encoder, *, rank: int, alpha: float) -> dict[str, torch.Tensor]:
    """A file as sd-scripts' networks/lora.py saves it: fp16, no metadata, Kohya names, alpha ≠ rank."""
    from engine.networks.inject import select_targets

    g = torch.Generator().manual_seed(5)
    state: dict[str, torch.Tensor] = {}

    def add(prefix: str, module) -> None:
        if isinstance(module, torch.nn.Conv2d):
            down = torch.randn(rank, module.in_channels, *module.kernel_size, generator=g) * 0.1
            up = torch.randn(module.out_channels, rank, 1, 1, generator=g) * 0.1
        else:
            down = torch.randn(rank, module.in_features, generator=g) * 0.1
            up = torch.randn(module.out_features, rank, generator=g) * 0.1
        state[f"{prefix}.lora_down.weight"] = down.half()
        state[f"{prefix}.lora_up.weight"] = up.half()
        state[f"{prefix}.alpha"] = torch.tensor(alpha).half()

    for path_in_unet in select_targets(unet, "unet", "lora"):
        add("lora_unet_" + path_in_unet.replace(".", "_"), unet.get_submodule(path_in_unet))
    for path_in_te in select_targets(text_encoder, "text_encoder", "lora"):
        name = path_in_te if path_in_te.startswith("text_model.") else "text_model." + path_in_te
        add("lora_te_" + name.replace(".", "_"), text_encoder.get_submodule(path_in_te))
    save_file(state, str(path))
    return state


def test_kohya_layout_file_continues_with_its_rank_and_alpha(tiny_config, tmp_path):
    from engine.families.load import load_base_model

    base = load_base_model("builtin-tiny-sd1")
    source_path = tmp_path / "kohya.safetensors"
    source = _kohya_layout_file(source_path, base.unet, base.text_encoders[0], rank=6, alpha=3.0)
    cfg = tiny_config(network__weights=str(source_path), network__dim_from_weights=True, network__rank=2,
                      network__alpha=2.0, **FROZEN)
    result, _ = train(cfg)
    written = load_file(str(result.outputs[-1]))
    meta = metadata(result.outputs[-1])
    assert meta["ss_network_dim"] == "6" and meta["ss_network_alpha"] == "3.0"
    assert set(written) == set(source)
    assert all(torch.equal(written[k], source[k].float()) for k in source)


def test_rank_mismatch_without_dim_from_weights_is_a_clear_error(tiny_config, tmp_path):
    first, _ = train(tiny_config(folders__output_name="first", network__rank=4))
    result = run_config(tiny_config(folders__output_name="second", network__rank=8,
                                    network__weights=str(first.outputs[-1])))
    assert result.status == "failed"
    assert result.message.startswith("network.weights:") and "shape" in result.message
    assert "dim_from_weights" in result.hint
    assert not (tmp_path / "out" / "second.safetensors").exists()


def test_a_lora_for_another_base_family_is_refused(tiny_config, tmp_path):
    # SDXL files name their text encoders lora_te1_/lora_te2_ and the UNet by LDM blocks
    sdxl_file = tmp_path / "sdxl_lora.safetensors"
    g = torch.Generator().manual_seed(0)
    save_file({
        "lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": torch.randn(4, 32, generator=g),
        "lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight": torch.zeros(32, 4),
        "lora_te1_text_model_encoder_layers_0_self_attn_q_proj.alpha": torch.tensor(4.0),
    }, str(sdxl_file), metadata={"ss_base_model_version": "sdxl_base_v1-0"})
    result = run_config(tiny_config(network__weights=str(sdxl_file)))
    assert result.status == "failed"
    assert result.message.startswith("network.weights:") and "SDXL" in result.message and "SD 1.x" in result.message


def test_network_type_of_the_file_must_match(tiny_config):
    first, _ = train(tiny_config(folders__output_name="first"))
    result = run_config(tiny_config(folders__output_name="second", network__type="loha", network__conv_rank=2,
                                    network__weights=str(first.outputs[-1]), network__dim_from_weights=True))
    assert result.status == "failed" and result.message.startswith("network.weights:")
    assert "lora" in result.message and "loha" in result.message


# ---- disk latent cache --------------------------------------------------------------------------

def _cache_counts(events) -> tuple[int, int]:
    final = [e for e in events if e["type"] == "caching"][-1]
    assert final["done"] == final["total"]
    logged = [e for e in events if e["type"] == "log" and "latent cache" in e.get("message", "")]
    assert logged and logged[-1]["reused"] == final["reused"]
    return final["reused"], final["encoded"]


def test_disk_latent_cache_is_reused_and_invalidated_by_what_changes_a_latent(tiny_config, small_data):
    disk = dict(training__cache_latents_to_disk=True)
    first, events = train(tiny_config(folders__output_name="a", **disk))
    assert _cache_counts(events) == (0, 2)
    second, events = train(tiny_config(folders__output_name="b", **disk))
    assert _cache_counts(events) == (2, 0)
    for key, latent in first.trainer.encoder.memory.items():
        assert torch.equal(latent, second.trainer.encoder.memory[key])

    _, events = train(tiny_config(folders__output_name="c", augment__flip=True, **disk))
    assert _cache_counts(events) == (2, 2)  # the unflipped latents are reused, the mirrored ones are new

    changed = next(small_data.glob("2_red*/img.png"))
    from PIL import Image

    image = Image.open(changed).convert("RGB")
    image.putpixel((3, 3), (0, 255, 0))
    image.save(changed)
    _, events = train(tiny_config(folders__output_name="d", **disk))
    assert _cache_counts(events) == (1, 1)

    # another bucket size: every latent has another shape
    _, events = train(tiny_config(folders__output_name="e", training__max_resolution=[96, 96],
                                  buckets__max_resolution=192, **disk))
    assert _cache_counts(events) == (0, 2)


def test_disk_latent_cache_misses_for_another_vae(tiny_config, tmp_path):
    from engine.families.builtin import ensure_builtin_model

    folder = tmp_path / "other-vae-model"
    shutil.copytree(ensure_builtin_model("builtin-tiny-sd1"), folder)
    weights = folder / "vae" / "diffusion_pytorch_model.safetensors"
    state = load_file(str(weights))
    state["encoder.conv_in.weight"] = state["encoder.conv_in.weight"] * 1.5
    save_file(state, str(weights))
    disk = dict(training__cache_latents_to_disk=True)
    first, events = train(tiny_config(folders__output_name="a", **disk))
    assert _cache_counts(events) == (0, 2)
    # a custom model takes SD sizes by default: keep the tiny model's
    sizes = dict(training__max_resolution=[64, 64], buckets__min_resolution=64, buckets__max_resolution=128)
    second, events = train(tiny_config(folders__output_name="b", model__quick_pick="custom", model__path=str(folder),
                                       **sizes, **disk))
    assert _cache_counts(events) == (0, 2)
    assert not torch.equal(first.trainer.encoder.memory[(0, False)], second.trainer.encoder.memory[(0, False)])


# ---- engine overhead ----------------------------------------------------------------------------

def test_a_frozen_text_encoder_encodes_each_caption_once(tiny_config):
    from tests.test_train_options import forward_inputs

    with forward_inputs("CLIPTextModel") as calls:
        result, events = train(tiny_config(optimizer__text_encoder_lr=0.0, training__epochs=3, training__batch_size=1))
    captions = {item.caption for item in result.trainer.plan.dataset.items}
    assert len([e for e in events if e["type"] == "step"]) == 12
    assert sum(call[0].shape[0] for call in calls) == len(captions) == 2
    with forward_inputs("CLIPTextModel") as calls:
        train(tiny_config(folders__output_name="trained_te", training__epochs=3, training__batch_size=1))
    assert len(calls) == 12  # a trained encoder changes every step: encoded every time


def test_conditioning_cache_keeps_captions_within_its_byte_budget():
    from engine.diffusion.text import Conditioning, ConditioningCache

    encoded: list[list[str]] = []

    def encode(captions):
        encoded.append(list(captions))
        return Conditioning(torch.stack([torch.full((3, 4), float(len(c))) for c in captions]))

    cache = ConditioningCache(budget_bytes=2 * 3 * 4 * 4)  # room for two captions' float32 [3, 4] states
    first = cache.lookup(["a", "bb", "a"], encode)
    assert first.hidden[:, 0, 0].tolist() == [1.0, 2.0, 1.0] and encoded == [["a", "bb"]]
    second = cache.lookup(["ccc", "a"], encode)
    assert second.hidden[:, 0, 0].tolist() == [3.0, 1.0] and encoded[-1] == ["ccc"]
    cache.lookup(["ccc", "bb"], encode)
    assert encoded[-1] == ["ccc"] and len(encoded) == 3  # over budget: encoded again; "bb" is kept
    assert cache.used_bytes == cache.budget_bytes
