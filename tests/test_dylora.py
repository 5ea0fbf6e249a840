# ruff: noqa: F811  (the tiny-model fixtures of test_networks are imported and used by name)
"""DyLoRA (issue 17) trained as sd-scripts' networks/dylora.py DyLoRAModule.forward does, saved as a plain LoRA."""

from __future__ import annotations

import copy
import json
import math

import pytest

torch = pytest.importorskip("torch")

from engine.config import dump_run_yaml  # noqa: E402
from engine.networks.adapter_tensors import export_network, import_network  # noqa: E402
from engine.networks.inject import adapter_layers, network_parameters  # noqa: E402
from engine.problems import ProblemError  # noqa: E402

from .helpers import errors_of, load_text  # noqa: E402
from .test_networks import (  # noqa: E402,F401
    adapted,
    base_unet,
    loader_delta,
    randomize_network,
    run_unet,
    unet,
    unet_inputs,
)

RANK, UNIT = 4, 2


def _dylora(model):
    randomize_network(adapted(model, "dylora", rank=RANK, alpha=2.0, dylora_unit=UNIT))
    return model


def _trained_part(layer) -> int:
    """The index of the one part of lora_A that takes gradients in this forward."""
    flags = [p.requires_grad for p in layer.lora_A["default"].parts]
    assert flags.count(True) == 1 and flags == [p.requires_grad for p in layer.lora_B["default"].parts]
    return flags.index(True)


def _training_forward(model):
    model.train()
    sample, timesteps, context = unet_inputs()
    return model(sample, timesteps, encoder_hidden_states=context).sample


def test_each_training_forward_trains_one_unit_of_ranks_and_scales_by_root_rank_ratio(unet):
    """sd-scripts: b = randint(0, r-1) rounded down to a unit; ranks b..b+unit-1 train; the
    output is multiplied by sqrt(r / (b + unit))."""
    _dylora(unet)
    torch.manual_seed(0)
    _training_forward(unet).square().mean().backward()
    layers = adapter_layers(unet)
    seen = set()
    for path, layer in layers.items():
        part = _trained_part(layer)
        seen.add(part)
        grads = [p.grad is not None for p in layer.lora_A["default"].parts]
        assert grads == [index == part for index in range(RANK // UNIT)], path
        b = part * UNIT
        assert layer.lora_A["default"].draw_state.factor == pytest.approx(math.sqrt(RANK / (b + UNIT)))
    assert seen == {0, 1}  # both units get drawn across the layers

    layer = layers["down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"]
    x = torch.randn(2, 5, 32)
    down, up = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    with torch.no_grad():
        added = torch.nn.functional.linear(torch.nn.functional.linear(x, down), up) * layer.scaling["default"]
        base = layer.get_base_layer()(x)
        factor = layer.lora_A["default"].draw_state.factor
        assert torch.allclose(layer.train()(x), base + added * factor, atol=1e-6)
        assert torch.allclose(layer.eval()(x), base + added, atol=1e-6)  # eval: the plain LoRA of the file


def test_ranks_outside_the_drawn_unit_are_left_alone_by_the_optimizer(unet):
    _dylora(unet)
    optimizer = torch.optim.AdamW(network_parameters(unet), lr=1e-2, weight_decay=0.1)
    torch.manual_seed(1)
    for _ in range(3):
        before = {id(p): p.detach().clone() for p in network_parameters(unet)}
        _training_forward(unet).square().mean().backward()
        drawn = {path: _trained_part(layer) for path, layer in adapter_layers(unet).items()}
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        for path, layer in adapter_layers(unet).items():
            for module in (layer.lora_A["default"], layer.lora_B["default"]):
                for index, part in enumerate(module.parts):
                    assert torch.equal(part, before[id(part)]) == (index != drawn[path]), (path, index)


def test_dylora_file_is_a_plain_lora_and_reads_back(base_unet):
    trained = _dylora(copy.deepcopy(base_unet))
    tensors = export_network(trained, "unet")
    for path, layer in adapter_layers(trained).items():
        module = tensors[path]
        assert set(module) == {"lora_down.weight", "lora_up.weight", "alpha"}
        assert module["lora_down.weight"].shape[0] == RANK and module["lora_up.weight"].shape[1] == RANK
        up, down = layer.lora_B["default"].weight.flatten(1), layer.lora_A["default"].weight.flatten(1)
        expected = (up @ down * layer.scaling["default"]).reshape(layer.get_base_layer().weight.shape)
        rebuilt = loader_delta(module, expected.shape)
        assert torch.allclose(rebuilt, expected.double(), atol=1e-7)
    fresh = adapted(copy.deepcopy(base_unet), "dylora", rank=RANK, alpha=2.0, dylora_unit=UNIT)
    assert import_network(fresh, "unet", tensors) == []
    assert torch.allclose(run_unet(fresh), run_unet(trained), atol=1e-5)


def test_dylora_refuses_a_unit_that_does_not_divide_the_rank_and_dropouts(unet):
    with pytest.raises(ProblemError, match="multiple"):
        adapted(unet, "dylora", rank=4, dylora_unit=3)
    with pytest.raises(ProblemError, match="dropout"):
        adapted(unet, "dylora", rank=4, rank_dropout=0.1)


def test_dylora_settings_round_trip_and_bad_values_are_refused(tmp_path):
    cfg, _ = load_text(tmp_path, "folders: {images: imgs}\nnetwork: {type: dylora, rank: 8, dylora_unit: 4}\n")
    again, _ = load_text(tmp_path, dump_run_yaml(cfg))
    assert (again.network.type, again.network.dylora_unit) == ("dylora", 4)
    for body, field in {"rank: 8, dylora_unit: 3": "network.dylora_unit", "dylora_unit: 0": "network.dylora_unit",
                        "rank: 8, dropout: 0.1": "network.dropout",
                        "rank: 8, scale_weight_norms: 1": "network.scale_weight_norms"}.items():
        errors = errors_of(tmp_path, f"folders: {{images: imgs}}\nnetwork: {{type: dylora, {body}}}\n")
        assert any(e.startswith(field) for e in errors), (body, errors)


def test_kohya_import_trains_both_dyloras_and_explains_glora_and_ia3():
    from engine.config.kohya_import import convert_kohya_settings

    kohya = convert_kohya_settings({"train_data_dir": "imgs", "LoRA_type": "Kohya DyLoRA", "network_dim": 16,
                                    "network_alpha": 8, "unit": 4, "conv_dim": 8})
    assert (kohya.config.network.type, kohya.config.network.dylora_unit, kohya.config.network.rank) == ("dylora", 4, 16)
    notes = {note.field: note.message for note in kohya.notes}
    assert "unit" not in notes and "LoRA_type" not in notes and "convolutions" in notes["conv_dim"]
    lycoris = convert_kohya_settings({"train_data_dir": "imgs", "LoRA_type": "LyCORIS/DyLoRA", "network_dim": 8})
    assert lycoris.config.network.type == "dylora"
    assert any(n.field == "LoRA_type" and "sd-scripts' DyLoRA" in n.message for n in lycoris.notes)
    glora = convert_kohya_settings({"train_data_dir": "imgs", "LoRA_type": "LyCORIS/GLoRA", "network_dim": 8})
    assert glora.config.network.type == "locon"
    assert any(n.field == "LoRA_type" and "peft" in n.message for n in glora.notes)
    with pytest.raises(ProblemError) as refused:
        convert_kohya_settings({"train_data_dir": "imgs", "LoRA_type": "LyCORIS/iA3"})
    assert "ComfyUI" in str(refused.value.problems[0].message) and "LoKr" in refused.value.problems[0].message


@pytest.mark.slow
def test_a_dylora_run_writes_a_plain_lora_file_named_as_sd_scripts_does(tiny_config):
    from safetensors import safe_open
    from safetensors.torch import load_file

    from engine.train.entry import run_config

    cfg = tiny_config(network__type="dylora", network__rank=4, network__dylora_unit=2, training__max_train_steps=2)
    result = run_config(cfg, on_event=lambda event: None)
    assert result.status == "completed", (result.message, result.hint)
    state = load_file(str(result.outputs[-1]))
    assert {key.split(".", 1)[1] for key in state} == {"lora_down.weight", "lora_up.weight", "alpha"}
    assert all(value.shape[0] == 4 for key, value in state.items() if key.endswith("lora_down.weight"))
    assert any(key.startswith("lora_te") for key in state)
    with safe_open(str(result.outputs[-1]), "pt") as handle:
        meta = handle.metadata()
    assert meta["ss_network_module"] == "networks.dylora" and str(json.loads(meta["ss_network_args"])["unit"]) == "2"


@pytest.mark.slow
def test_a_stopped_dylora_run_resumes_to_the_uninterrupted_file(tiny_config, tmp_path):
    """The draws come from the run's seeded torch generator, whose state the saved state keeps."""
    from safetensors.torch import load_file

    from .test_resume import run_until

    settings = dict(network__type="dylora", network__rank=4, network__dylora_unit=1, training__batch_size=1,
                    training__epochs=1, training__save_state=True)
    whole, _ = run_until(tiny_config(**settings, folders__output=str(tmp_path / "whole")))
    cfg = tiny_config(**settings)
    first, _ = run_until(cfg, stop_after=2)
    assert first.status == "stopped"
    second, _ = run_until(cfg, resume="latest")
    assert second.status == "completed", second.message
    expected, resumed = load_file(str(whole.outputs[-1])), load_file(str(second.outputs[-1]))
    assert expected.keys() == resumed.keys()
    for key in expected:
        torch.testing.assert_close(resumed[key], expected[key], rtol=1e-5, atol=1e-6)
