# ruff: noqa: F811  (the tiny-model fixtures of test_networks are imported and used by name)
"""LyCORIS' train_norm (network.train_norm): norm-layer deltas trained, saved, loaded and read by ComfyUI.

LyCORIS (KohakuBlueleaf/LyCORIS @ f49d30d670591ec8841d241d79aaa8449b30a715, `lycoris/modules/norms.py`
NormModule, `lycoris/kohya.py` create_modules) gives every GroupNorm/LayerNorm inside the blocks it
adapts zero-initialised `w_norm` / `b_norm` offsets, applied as weight + w_norm, bias + b_norm.

ComfyUI cannot run here; `comfyui_norm_patches` below is a faithful copy of the norm branch of
`load_lora` in `comfy/lora.py` (comfyanonymous/ComfyUI @ 41444b5236c613ee5ff7d09aa620f94b702f30eb),
with the "diff" merge of `calculate_weight` (weight + strength · diff). Its key map is
`tests.test_families.ComfyModel` (comfy.lora.model_lora_keys_unet over ComfyUI's LDM UNet names).
"""

from __future__ import annotations

import copy
import json

import pytest

torch = pytest.importorskip("torch")

from engine.networks.adapter_tensors import export_network, import_network, infer_rank_alpha  # noqa: E402
from engine.networks.inject import apply_network, network_parameters  # noqa: E402
from engine.networks.norm_deltas import NormDelta, norm_deltas  # noqa: E402
from engine.problems import ProblemError  # noqa: E402

from .test_networks import adapted, base_text_encoder, base_unet, run_unet, text_encoder, unet, unet_inputs  # noqa: E402,F401

# The tiny UNet's norms inside the blocks LoCon/LoHa/LoKr adapt (ResNets and Transformer2DModels).
RESNET_NORM = "down_blocks.0.resnets.0.norm1"
ATTENTION_NORM = "down_blocks.0.attentions.0.norm"
BLOCK_NORM = "down_blocks.0.attentions.0.transformer_blocks.0.norm3"


def _train_steps(model, steps=3):
    optimizer = torch.optim.AdamW(network_parameters(model), lr=1e-2)
    sample, timesteps, context = unet_inputs()
    target = torch.randn_like(sample)
    losses = []
    for _ in range(steps):
        loss = torch.nn.functional.mse_loss(model(sample, timesteps, encoder_hidden_states=context).sample, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("network_type", ["locon", "loha", "lokr"])
def test_norm_deltas_cover_the_adapted_blocks_norms_and_train(unet, base_unet, network_type):
    adapted(unet, network_type, train_norm=True)
    deltas = norm_deltas(unet)
    assert {RESNET_NORM, ATTENTION_NORM, BLOCK_NORM} <= set(deltas)
    assert "conv_norm_out" not in deltas  # outside every adapted block, as in LyCORIS
    assert all(d.w_norm.abs().sum() == 0 and d.b_norm.abs().sum() == 0 for d in deltas.values())
    torch.testing.assert_close(run_unet(unet), run_unet(base_unet))  # zero deltas change nothing
    ids = {id(p) for p in network_parameters(unet)}
    assert all(id(d.w_norm) in ids and id(d.b_norm) in ids for d in deltas.values())  # the optimizer gets them
    before = unet.get_submodule(RESNET_NORM).weight.clone()
    _train_steps(unet)
    assert all(d.w_norm.abs().sum() > 0 and d.b_norm.abs().sum() > 0 for d in deltas.values())
    assert torch.equal(unet.get_submodule(RESNET_NORM).weight, before)  # the base stays frozen


def test_a_delta_shifts_the_norm_as_weight_plus_w_norm_and_bias_plus_b_norm(unet):
    adapted(unet, "lokr", train_norm=True)
    norm = unet.get_submodule(RESNET_NORM)
    delta = norm.norm_delta
    with torch.no_grad():
        delta.w_norm.uniform_(-0.5, 0.5)
        delta.b_norm.uniform_(-0.5, 0.5)
    x = torch.randn(2, norm.num_channels, 4, 4)
    wanted = torch.nn.functional.group_norm(x, norm.num_groups, norm.weight + delta.w_norm, norm.bias + delta.b_norm,
                                            norm.eps)
    torch.testing.assert_close(norm(x), wanted)


def test_without_train_norm_no_norm_is_touched(unet):
    adapted(unet, "lokr")
    assert not norm_deltas(unet)
    assert "forward" not in vars(unet.get_submodule(RESNET_NORM))  # the class's own forward: no cost
    assert not any(isinstance(m, NormDelta) for m in unet.modules())


@pytest.mark.parametrize("network_type", ["lora", "dylora"])
def test_train_norm_is_refused_where_no_lycoris_network_carries_it(unet, network_type):
    with pytest.raises(ProblemError) as caught:
        adapted(unet, network_type, train_norm=True)
    assert caught.value.problems[0].field == "network.train_norm"
    assert "locon, loha or lokr" in caught.value.problems[0].hint


def test_train_norm_is_refused_for_text_encoders_and_family_layouts(text_encoder, unet):
    with pytest.raises(ProblemError) as caught:
        apply_network(text_encoder, component="text_encoder", network_type="lokr", rank=4, alpha=2.0, train_norm=True)
    assert caught.value.problems[0].field == "network.train_norm"
    with pytest.raises(ProblemError) as caught:
        adapted(unet, "lokr", train_norm=True, targets=["down_blocks.0.attentions.0.proj_in"])
    assert "no norm keys" in caught.value.problems[0].message


def test_exported_deltas_load_back_and_a_run_without_train_norm_refuses_them(unet, base_unet):
    adapted(unet, "loha", train_norm=True)
    _train_steps(unet)
    tensors = export_network(unet, "unet")
    assert tensors[BLOCK_NORM].keys() == {"w_norm", "b_norm"}
    assert infer_rank_alpha(tensors, unet)[4] == "loha"  # the norm entries say nothing about the shape
    again = adapted(copy.deepcopy(base_unet), "loha", train_norm=True)
    import_network(again, "unet", tensors)
    for path, delta in norm_deltas(again).items():
        assert torch.equal(delta.w_norm, tensors[path]["w_norm"]) and torch.equal(delta.b_norm, tensors[path]["b_norm"])
    unet.eval()
    torch.testing.assert_close(run_unet(again.eval()), run_unet(unet))
    without = adapted(copy.deepcopy(base_unet), "loha")
    with pytest.raises(ProblemError) as caught:
        import_network(without, "unet", tensors)
    assert caught.value.problems[0].field == "network.weights" and "network.train_norm" in caught.value.problems[0].hint


# ----------------------------------------------------------------------------- ComfyUI (faithful copy)

def comfyui_norm_patches(lora: dict, key_map: dict[str, str]) -> tuple[dict, set[str]]:
    """comfy/lora.py load_lora, the `w_norm` branch: for each LoRA prefix ComfyUI maps to a weight,
    `<prefix>.w_norm` patches that weight as a diff and `<prefix>.b_norm` the `.bias` beside it."""
    patches, loaded = {}, set()
    for prefix, target in key_map.items():
        w_norm, b_norm = lora.get(f"{prefix}.w_norm"), lora.get(f"{prefix}.b_norm")
        if w_norm is not None:
            loaded.add(f"{prefix}.w_norm")
            patches[target] = ("diff", (w_norm,))
            if b_norm is not None:
                loaded.add(f"{prefix}.b_norm")
                patches["{}.bias".format(target[: -len(".weight")])] = ("diff", (b_norm,))
    return patches, loaded


def comfyui_apply_diff(weight: torch.Tensor, diff: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
    """comfy/lora.py calculate_weight, patch type "diff": the shapes must agree, then weight + strength·diff."""
    assert weight.shape == diff.shape, "ComfyUI: WARNING SHAPE MISMATCH, weight not merged"
    return weight + strength * diff.to(weight.dtype)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_comfyui_loads_every_norm_key_and_rebuilds_the_trained_norms(tmp_path, family):
    from safetensors.torch import load_file

    from engine.lorafile.io import save_lora_file

    from .test_families import ComfyModel

    comfy = ComfyModel(family)
    unet = copy.deepcopy(comfy.pipe.unet)
    apply_network(unet, component="unet", network_type="lokr", rank=2, alpha=1.0, conv_rank=2, conv_alpha=1.0,
                  train_norm=True)
    with torch.no_grad():
        for delta in norm_deltas(unet).values():
            delta.w_norm.uniform_(-0.3, 0.3)
            delta.b_norm.uniform_(-0.3, 0.3)
    path = tmp_path / "norms.safetensors"
    save_lora_file(path, {"unet": export_network(unet, "unet")}, family=family, unet_config=unet.config,
                   metadata={}, save_dtype=torch.float32)
    lora = load_file(str(path))
    norm_keys = {key for key in lora if key.endswith((".w_norm", ".b_norm"))}
    assert len(norm_keys) == 2 * len(norm_deltas(unet))
    if family == "sdxl":  # the LDM names Kohya and ComfyUI use for SDXL
        assert "lora_unet_input_blocks_1_0_in_layers_0.w_norm" in lora
        assert "lora_unet_input_blocks_1_0_out_layers_0.b_norm" in lora
    patches, loaded = comfyui_norm_patches(lora, comfy.key_map)
    assert loaded == norm_keys  # every norm key lands on a weight or bias
    from_ldm = {f"diffusion_model.{ldm}": diffusers for diffusers, ldm in comfy.to_ldm.items()}
    for target, (kind, (diff,)) in patches.items():
        assert kind == "diff"
        merged = comfyui_apply_diff(comfy.state[target], diff)
        norm_path, _, leaf = from_ldm[target].rpartition(".")
        norm = unet.get_submodule(norm_path)
        trained = getattr(norm, leaf) + getattr(norm.norm_delta, "w_norm" if leaf == "weight" else "b_norm")
        torch.testing.assert_close(merged, trained.detach())


# ----------------------------------------------------------------------------- a real run

@pytest.mark.slow
def test_a_run_trains_saves_and_continues_its_norm_deltas(tiny_config):
    from safetensors import safe_open
    from safetensors.torch import load_file

    from engine.train.entry import run_config

    common = dict(network__type="lokr", network__rank=2, network__alpha=1.0, network__conv_rank=2,
                  network__conv_alpha=1.0, network__train_norm=True, optimizer__text_encoder_lr=0.0,
                  training__max_train_steps=2)
    first = run_config(tiny_config(**common), on_event=lambda event: None)
    assert first.status == "completed", (first.message, first.hint)
    state = load_file(str(first.outputs[-1]))
    w_norm = {key: value for key, value in state.items() if key.endswith(".w_norm")}
    assert "lora_unet_down_blocks_0_resnets_0_norm1.w_norm" in w_norm
    assert all(key[: -len("w_norm")] + "b_norm" in state for key in w_norm)
    assert not any(key.startswith("lora_te") for key in w_norm)
    assert any(value.abs().sum() > 0 for value in w_norm.values())  # the deltas trained
    with safe_open(str(first.outputs[-1]), "pt") as handle:
        assert str(json.loads(handle.metadata()["ss_network_args"])["train_norm"]).lower() == "true"

    second = run_config(tiny_config(folders__output_name="again", network__weights=str(first.outputs[-1]),
                                    **{**common, "training__max_train_steps": 1, "optimizer__learning_rate": 0.0}),
                        on_event=lambda event: None)
    assert second.status == "completed", (second.message, second.hint)
    continued = load_file(str(second.outputs[-1]))
    for key, value in w_norm.items():
        torch.testing.assert_close(continued[key], value)  # restored from the file (lr 0 keeps them)


# ----------------------------------------------------------------------------- settings

def test_train_norm_round_trips_and_validation_refuses_it_without_a_lycoris_type(tmp_path):
    from engine.config import dump_run_yaml

    from .helpers import errors_of, load_text

    cfg, _ = load_text(tmp_path, "folders: {images: imgs}\nnetwork: {type: loha, train_norm: true}\n")
    assert load_text(tmp_path, dump_run_yaml(cfg))[0].network.train_norm is True
    for network_type in ("locon", "loha", "lokr"):
        _, problems = load_text(tmp_path, f"folders: {{images: imgs}}\nnetwork: {{type: {network_type}, train_norm: true}}\n")
        assert not [p for p in problems if p.is_error and p.field == "network.train_norm"]
    for network_type in ("lora", "dylora"):
        errors = errors_of(tmp_path, f"folders: {{images: imgs}}\nnetwork: {{type: {network_type}, train_norm: true}}\n")
        assert any(e.startswith("network.train_norm") and "only for locon, loha and lokr" in e for e in errors), errors


def test_kohya_import_takes_train_norm_from_lycoris_types_only():
    from engine.config.kohya_import import convert_kohya_settings

    for lora_type, network_type in (("LyCORIS/LoCon", "locon"), ("LyCORIS/LoHa", "loha"), ("LyCORIS/LoKr", "lokr")):
        result = convert_kohya_settings({"train_data_dir": "imgs", "LoRA_type": lora_type, "train_norm": True})
        assert (result.config.network.type, result.config.network.train_norm) == (network_type, True)
    kohya_locon = convert_kohya_settings({"train_data_dir": "imgs", "LoRA_type": "Kohya LoCon", "conv_dim": 4,
                                          "train_norm": True})
    assert not kohya_locon.config.network.train_norm  # sd-scripts' networks.lora has no norm deltas
    assert any(note.field == "train_norm" and "not imported" in note.message for note in kohya_locon.notes)
