"""SD 3.5 LoRA files written and read back (both key forms), the facts, settings rules and size counts."""

from __future__ import annotations

import pytest

from engine.families.sd35 import reference as ref
from engine.families.sd35 import settings as sd35_settings
from engine.families.sd35 import sizes


def test_variants_are_told_apart_by_structure_as_sd_scripts_does():
    large, medium = ref.reference_config("5-large")["denoiser"], ref.reference_config("5-medium")["denoiser"]
    assert (ref.variant_of_config(large), ref.variant_of_config(medium)) == ("5-large", "5-medium")
    assert ref.variant_of_config({**large, "qk_norm": None}) == "medium"  # SD 3 Medium: no QK norm
    sai = ["model.diffusion_model.joint_blocks.0.context_block.attn.ln_k.weight", "x.joint_blocks.0.x_block.attn.qkv.weight"]
    assert ref.variant_of_sai_keys(sai) == "5-large"
    assert ref.variant_of_sai_keys(sai + ["joint_blocks.3.x_block.attn2.ln_k.weight"]) == "5-medium"
    assert ref.variant_of_sai_keys(sai[1:]) == "medium"
    assert ref.is_sai_transformer(sai + ["joint_blocks.0.context_block.attn.qkv.weight"])
    assert not ref.is_sai_transformer(["double_blocks.0.img_attn.qkv.weight"])


def test_metadata_names_the_variant_as_sd_scripts_writes_it_with_every_sd35_option():
    meta = ref.lora_metadata("5-medium", {"weighting_scheme": "logit_normal", "t5xxl_max_token_length": 154})
    assert meta["ss_base_model_version"] == "5-medium"
    assert meta["modelspec.architecture"] == "stable-diffusion-3-5-medium/lora"
    assert meta["modelspec.implementation"] == "diffusers"
    assert (meta["ss_weighting_scheme"], meta["ss_logit_mean"], meta["ss_mode_scale"]) == ("logit_normal", "0.0", "1.29")
    assert meta["ss_t5xxl_max_token_length"] == "154"
    assert ref.lora_architecture("5-large") == "stable-diffusion-3-5-large/lora"
    with pytest.raises(ValueError, match="weighting_schem"):
        ref.lora_metadata("5-large", {"weighting_schem": "mode"})


def test_sd35_settings_carry_sd_scripts_names_and_defaults():
    by_key = {s.key: s for s in sd35_settings.SD35_SETTINGS}
    assert by_key["sd35.weighting_scheme"].default == "uniform"  # add_dit_training_arguments' default
    assert (by_key["sd35.logit_mean"].default, by_key["sd35.logit_std"].default, by_key["sd35.mode_scale"].default) == (0.0, 1.0, 1.29)
    assert by_key["sd35.training_shift"].default == 1.0
    assert by_key["sd35.t5xxl_max_token_length"].default == 256
    # the GUI's fields named t5xxl_max_token_length / apply_t5_attn_mask are FLUX.1's (flux.*): not claimed here
    shared_with_flux = {"t5xxl_max_token_length", "apply_t5_attn_mask"}
    for name in ref.TRAINING_OPTIONS:
        assert by_key[f"sd35.{name}"].kohya == (None if name in shared_with_flux else name)
    assert set(by_key["sd35.weighting_scheme"].choices) >= {"sigma_sqrt", "logit_normal", "mode", "cosmap", "none", "uniform"}


def test_rules_refuse_what_sd35_cannot_use_and_note_sd35_options_elsewhere():
    defaults = {"training.noise_offset": 0.0, "training.ip_noise_gamma": 0.0}
    refused = sd35_settings.sd35_rules({"model.family": "sd35", "training.noise_offset": 0.05, "network.type": "loha",
                                        "training.min_timestep": 500, "training.max_timestep": 100}, defaults)
    fields = {p.field for p in refused}
    assert {"training.noise_offset", "network.type", "training.max_timestep"} <= fields
    assert all(p.is_error for p in refused)
    noted = sd35_settings.sd35_rules({"model.family": "sdxl", "sd35.weighting_scheme": "mode"}, defaults)
    assert [p.field for p in noted] == ["sd35.weighting_scheme"] and not noted[0].is_error
    assert sd35_settings.sd35_rules({"model.family": "sd35", "sd35.weighting_scheme": "mode"}, defaults) == []


def test_the_sd35_options_are_disabled_with_the_reason_for_another_family():
    by_key = {s.key: s for s in sd35_settings.SD35_SETTINGS}
    assert by_key["sd35.logit_std"].applies({"model.family": "sd35", "sd35.weighting_scheme": "uniform"}) is not None
    assert by_key["sd35.logit_std"].applies({"model.family": "sd35", "sd35.weighting_scheme": "logit_normal"}) is None
    assert "SD 3.5" in by_key["sd35.training_shift"].applies({"model.family": "flux1"})


def test_file_size_counts_fused_qkv_as_written():
    large = ref.reference_config("5-large")["denoiser"]
    kohya, modules = sizes.file_numbers(large, 16)
    diffusers, layers = sizes.file_numbers(large, 16, {"sd35.lora_format": "diffusers"})
    assert layers == len(sizes.lora_layers(large)) and modules < layers  # q/k/v: one module instead of three
    assert kohya > diffusers  # the block-diagonal up of a fused qkv stores its zeros too
    medium = ref.reference_config("5-medium")["denoiser"]
    # 5 per half (modulation, qkv, proj, fc1, fc2); the last text half has 2; attn2 qkv+proj in 13 blocks
    assert len(sizes.file_modules(medium)) == 24 * 10 - 3 + 13 * 2


torch = pytest.importorskip("torch")


def _weights(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)

    def lora(fan_in, fan_out, rank=4):
        return {"lora_down.weight": torch.randn(rank, fan_in, generator=generator),
                "lora_up.weight": torch.randn(fan_out, rank, generator=generator), "alpha": torch.tensor(2.0)}

    unet = {f"transformer_blocks.{i}.{part}": lora(8, 8) for i in range(2)
            for part in ("attn.to_q", "attn.to_k", "attn.to_v", "attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj",
                         "attn2.to_q", "attn2.to_k", "attn2.to_v")}
    unet["transformer_blocks.1.norm1_context.linear"] = lora(8, 16)
    unet["transformer_blocks.0.ff.net.0.proj"] = lora(8, 32)
    clip_g = {"text_model.encoder.layers.1.self_attn.out_proj": lora(6, 6)}
    return {"unet": unet, "text_encoder_2": clip_g}


@pytest.mark.parametrize("key_format", ["kohya", "diffusers"])
def test_a_file_reads_back_as_the_same_change_on_every_layer(tmp_path, key_format):
    from engine.families.sd35.lora_io import read_sd35_lora, save_sd35_lora
    from engine.families.sd35.lora_names import LoraWeights

    weights = _weights()
    path = tmp_path / "lora.safetensors"
    written = save_sd35_lora(path, weights, metadata={"ss_network_dim": "4"}, save_dtype=torch.float32, num_blocks=2,
                             key_format=key_format)
    back = read_sd35_lora(path, num_blocks=2)
    assert back.family_guess == "sd35" and back.metadata["ss_network_dim"] == written["ss_network_dim"]
    assert set(back.weights) == {"unet", "text_encoder_2"}
    for component, modules in weights.items():
        assert set(back.weights[component]) == set(modules)
        for path_, tensors in modules.items():
            ours = LoraWeights(tensors["lora_down.weight"], tensors["lora_up.weight"], float(tensors["alpha"])).delta()
            got = back.weights[component][path_]
            read = LoraWeights(got["lora_down.weight"], got["lora_up.weight"], float(got["alpha"])).delta()
            assert torch.allclose(ours, read, atol=1e-5), path_


def test_the_last_blocks_text_modulation_is_stored_shift_first_as_sai_orders_it():
    from engine.families.sd35.lora_io import sd35_state_dict

    weights = _weights()
    state = sd35_state_dict(weights, num_blocks=2)
    ours = weights["unet"]["transformer_blocks.1.norm1_context.linear"]["lora_up.weight"]
    stored = state["lora_unet_joint_blocks_1_context_block_adaLN_modulation_1.lora_up.weight"]
    assert torch.equal(stored[:8], ours[8:]) and torch.equal(stored[8:], ours[:8])
    # not the last block: as it is
    later = sd35_state_dict(weights, num_blocks=5)
    assert torch.equal(later["lora_unet_joint_blocks_1_context_block_adaLN_modulation_1.lora_up.weight"], ours)
    assert "lora_unet_joint_blocks_0_x_block_attn2_qkv.lora_down.weight" in state
    assert float(state["lora_unet_joint_blocks_0_x_block_attn_qkv.alpha"]) == 6.0  # alpha × 3 for 3·rank rows


def test_files_that_are_not_sd35_loras_are_refused_by_name(tmp_path):
    from safetensors.torch import save_file

    from engine.families.sd35.lora_io import read_sd35_lora
    from engine.problems import ProblemError

    flux = tmp_path / "flux.safetensors"
    save_file({"lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight": torch.zeros(1, 4),
               "lora_unet_double_blocks_0_img_attn_qkv.lora_up.weight": torch.zeros(12, 1)}, str(flux))
    with pytest.raises(ProblemError, match="not an SD 3.5 LoRA"):
        read_sd35_lora(flux)
    t5 = tmp_path / "t5.safetensors"
    save_file({"lora_te3_encoder_block_0_layer_0_SelfAttention_q.lora_down.weight": torch.zeros(1, 4),
               "lora_te3_encoder_block_0_layer_0_SelfAttention_q.lora_up.weight": torch.zeros(4, 1)}, str(t5))
    with pytest.raises(ProblemError, match="T5"):
        read_sd35_lora(t5)
    with pytest.raises(ProblemError, match="not found"):
        read_sd35_lora(tmp_path / "missing.safetensors")


def test_sizes_match_diffusers_sd3_transformer_at_real_size():
    from diffusers import SD3Transformer2DModel

    from engine.families.sd35.lora_names import default_targets

    for variant in ("5-large", "5-medium"):
        config = ref.reference_config(variant)["denoiser"]
        with torch.device("meta"):
            model = SD3Transformer2DModel.from_config(config)
        real = sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers())
        assert sizes.parameters(config) == real
        modules = dict(model.named_modules())
        shapes = sorted((modules[p].in_features, modules[p].out_features) for p in default_targets(model))
        assert shapes == sorted((a, b) for a, b, _, _ in sizes.lora_layers(config))
