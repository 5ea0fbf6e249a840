# ruff: noqa: F811  (the tiny-model fixtures of test_networks are imported and used by name)
"""LyCORIS' LoKr/LoHa options (issue 17): factor, full matrices, decompose_both, Tucker form, rank dropout scale.

Shapes and scales follow LyCORIS' LokrModule.__init__ / get_weight (lycoris/modules/lokr.py) and
LohaModule's rank dropout; files are checked with the loaders' ΔW formula (ComfyUI / A1111).
"""

from __future__ import annotations

import copy
import json

import pytest

torch = pytest.importorskip("torch")

from engine.config import dump_run_yaml  # noqa: E402
from engine.networks.adapter_tensors import export_network, import_network  # noqa: E402
from engine.networks.inject import adapter_layers  # noqa: E402
from engine.problems import ProblemError  # noqa: E402

from .helpers import errors_of, load_text  # noqa: E402
from .test_networks import (  # noqa: E402,F401
    adapted,
    base_unet,
    loader_delta,
    peft_delta,
    randomize_network,
    run_unet,
    unet,
)

TO_K = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_k"  # Linear 32 → 32
CONV = "down_blocks.0.resnets.0.conv1"  # Conv2d 32 → 32, 3×3


def _rebuilds_exactly(model):
    tensors = export_network(model, "unet")
    for path, layer in adapter_layers(model).items():
        rebuilt = loader_delta(tensors[path], layer.get_base_layer().weight.shape)
        assert torch.allclose(rebuilt, peft_delta(layer), rtol=1e-5, atol=1e-7), path
    return tensors


def test_lokr_factor_sets_the_small_kronecker_factor(unet):
    """LyCORIS factorization(32, 2) = (2, 16): w1 is 2×2, w2 (rank 2) 16×16; -1 gives the even split 4 × 8."""
    randomize_network(adapted(unet, "lokr", rank=2, alpha=1.0, lokr_factor=2))
    module = _rebuilds_exactly(unet)[TO_K]
    assert module["lokr_w1"].shape == (2, 2)
    assert module["lokr_w2_a"].shape == (16, 2) and module["lokr_w2_b"].shape == (2, 16)


def test_lokr_automatic_factor_takes_the_most_even_split(unet):
    module = export_network(adapted(unet, "lokr", rank=2, alpha=1.0), "unet")[TO_K]
    assert module["lokr_w1"].shape == (4, 4) and module["lokr_w2_a"].shape == (8, 2)


def test_lokr_full_matrix_keeps_both_factors_full_at_scale_one(base_unet):
    trained = adapted(copy.deepcopy(base_unet), "lokr", rank=2, alpha=1.0, conv_rank=2, conv_alpha=1.0,
                      lokr_full_matrix=True)
    randomize_network(trained)
    tensors = _rebuilds_exactly(trained)
    assert all(set(module) == {"lokr_w1", "lokr_w2", "alpha"} for module in tensors.values())
    assert all(layer.scaling["default"] == 1.0 for layer in adapter_layers(trained).values())
    assert tensors[CONV]["lokr_w2"].shape == (8, 8, 3, 3)
    # read back into a fresh network of the same settings: the same outputs
    fresh = adapted(copy.deepcopy(base_unet), "lokr", rank=2, alpha=1.0, conv_rank=2, conv_alpha=1.0,
                    lokr_full_matrix=True)
    assert import_network(fresh, "unet", tensors) == []
    assert torch.allclose(run_unet(fresh), run_unet(trained), atol=1e-5)


def test_lokr_decompose_both_makes_the_small_factor_low_rank_too(unet):
    """With factor 8 the small factor is 8×8; rank 2 < 8 / 2, so LyCORIS stores it as w1_a @ w1_b."""
    randomize_network(adapted(unet, "lokr", rank=2, alpha=1.0, lokr_factor=8, lokr_decompose_both=True))
    module = _rebuilds_exactly(unet)[TO_K]
    assert module["lokr_w1_a"].shape == (8, 2) and module["lokr_w1_b"].shape == (2, 8) and "lokr_w1" not in module


def test_a_lokr_factor_of_zero_is_refused(unet):
    with pytest.raises(ProblemError, match="lokr_factor"):
        adapted(unet, "lokr", lokr_factor=0)


@pytest.mark.parametrize("network_type", ["loha", "lokr"])
@pytest.mark.parametrize("scale", [False, True])
def test_rank_dropout_scale_rescales_the_kept_rows_only_when_on(unet, network_type, scale):
    """LyCORIS get_weight: drop = rand(rows) > p; with rank_dropout_scale drop /= drop.mean()."""
    randomize_network(adapted(unet, network_type, rank=2, rank_dropout=0.5, rank_dropout_scale=scale))
    layer = adapter_layers(unet)["down_blocks.0.attentions.0.transformer_blocks.0.ff.net.2"]
    with torch.no_grad():
        clean = layer.get_delta_weight("default")
        torch.manual_seed(3)
        dropped = layer.get_delta_weight("default", apply_rank_dropout=True)
    kept = dropped.abs().amax(dim=1) > 0
    assert kept.any() and not kept.all()
    factor = clean.shape[0] / int(kept.sum()) if scale else 1.0
    assert torch.allclose(dropped[kept], clean[kept] * factor, rtol=1e-5)


def test_lycoris_options_round_trip_and_bad_values_are_refused(tmp_path):
    text = """
        folders: {images: imgs}
        network: {type: lokr, lokr_factor: 8, lokr_full_matrix: true, lokr_decompose_both: true,
                  use_tucker: true, rank_dropout: 0.1, rank_dropout_scale: true}
    """
    cfg, problems = load_text(tmp_path, text)
    again, _ = load_text(tmp_path, dump_run_yaml(cfg))
    n = again.network
    assert (n.lokr_factor, n.lokr_full_matrix, n.lokr_decompose_both, n.use_tucker, n.rank_dropout_scale) == (
        8, True, True, True, True)
    for body, field in {"lokr_factor: 0": "network.lokr_factor", "lokr_factor: -2": "network.lokr_factor",
                        "lokr_factor: 2.5": "network.lokr_factor", "use_tucker: maybe": "network.use_tucker",
                        "rank_dropout_scale: 3": "network.rank_dropout_scale"}.items():
        errors = errors_of(tmp_path, f"folders: {{images: imgs}}\nnetwork:\n  type: lokr\n  {body}\n")
        assert any(e.startswith(field) for e in errors), (body, errors)


def test_kohya_import_maps_lokr_and_loha_options_and_full_size_dim():
    from engine.config.kohya_import import convert_kohya_settings

    lokr = convert_kohya_settings({"train_data_dir": "imgs", "LoRA_type": "LyCORIS/LoKr", "network_dim": 100000,
                                   "network_alpha": 1, "conv_dim": 100000, "conv_alpha": 1, "factor": 8,
                                   "use_cp": True, "decompose_both": True, "rank_dropout": 0.1,
                                   "rank_dropout_scale": True})
    n = lokr.config.network
    assert (n.type, n.lokr_factor, n.lokr_full_matrix, n.lokr_decompose_both, n.use_tucker, n.rank_dropout_scale) == (
        "lokr", 8, True, True, True, True)
    notes = {note.field: note.message for note in lokr.notes}
    assert "full" in notes["network_dim"] and not {"factor", "use_cp", "decompose_both", "rank_dropout_scale"} & set(notes)
    assert not any(note.field.startswith("network.") for note in lokr.notes if "fix" in note.hint)

    loha = convert_kohya_settings({"train_data_dir": "imgs", "LoRA_type": "LyCORIS/LoHa", "network_dim": 8,
                                   "use_tucker": True, "factor": 4})
    assert loha.config.network.use_tucker and loha.config.network.lokr_factor == -1  # factor is LoKr's only
    assert not {"factor", "use_tucker"} & {note.field for note in loha.notes}

    locon = convert_kohya_settings({"train_data_dir": "imgs", "LoRA_type": "LyCORIS/LoCon", "network_dim": 8,
                                    "conv_dim": 4, "use_tucker": True})
    assert any(note.field == "use_tucker" and "LoHa and LoKr" in note.message for note in locon.notes)
    assert not locon.config.network.use_tucker
    standard = convert_kohya_settings({"train_data_dir": "imgs", "LoRA_type": "Standard", "use_tucker": True, "factor": 8})
    assert not {"factor", "use_tucker"} & {note.field for note in standard.notes}  # Kohya ignores them there too


@pytest.mark.slow
def test_lokr_options_shape_the_trained_file_and_its_network_args(tiny_config):
    from safetensors import safe_open
    from safetensors.torch import load_file

    from engine.train.entry import run_config

    cfg = tiny_config(network__type="lokr", network__rank=2, network__alpha=1.0, network__conv_rank=2,
                      network__conv_alpha=1.0, network__lokr_factor=4, network__use_tucker=True,
                      network__rank_dropout=0.2, network__rank_dropout_scale=True,
                      optimizer__text_encoder_lr=0.0, training__max_train_steps=2)
    result = run_config(cfg, on_event=lambda event: None)
    assert result.status == "completed", (result.message, result.hint)
    state = load_file(str(result.outputs[-1]))
    assert any(key.endswith(".lokr_t2") for key in state)  # Tucker core on the 3×3 convolutions
    w1 = {key: value for key, value in state.items() if key.endswith(".lokr_w1")}
    assert w1 and all(max(value.shape) <= 4 for value in w1.values())  # factor 4 caps the small factor
    with safe_open(str(result.outputs[-1]), "pt") as handle:
        args = json.loads(handle.metadata()["ss_network_args"])
    assert args["algo"] == "lokr" and str(args["factor"]) == "4" and str(args["use_tucker"]).lower() == "true"
