"""LoRA files: Kohya key names, sd-scripts metadata and hashes, atomic save, reading, diffusers loading."""

from __future__ import annotations

import copy
import errno
import hashlib
import json
import logging
import os
import struct
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_save
from safetensors.torch import save_file

from engine import families
from engine.lorafile import hashes, metadata as meta
from engine.lorafile.io import read_lora_file, save_lora_file, to_state_dict
from engine.lorafile.names import SDXL_BASE_UNET_CONFIG, KohyaNames, UnknownKeyError
from engine.problems import ProblemError
from tests.helpers import LogRecords

torch.set_num_threads(1)

diffusers = pytest.importorskip("diffusers")
transformers = pytest.importorskip("transformers")

# -- tiny models -------------------------------------------------------------------------------------

SD1_UNET = dict(
    sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=32, norm_num_groups=8, attention_head_dim=4,
)
SDXL_UNET = dict(
    sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=2,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    transformer_layers_per_block=(1, 2), cross_attention_dim=64, norm_num_groups=8, attention_head_dim=(2, 4),
    use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
    projection_class_embeddings_input_dim=32 + 6 * 8,
)
# The real SDXL base UNet config (stabilityai/stable-diffusion-xl-base-1.0, unet/config.json).
REAL_SDXL_UNET = {
    "act_fn": "silu", "addition_embed_type": "text_time", "addition_embed_type_num_heads": 64,
    "addition_time_embed_dim": 256, "attention_head_dim": [5, 10, 20], "block_out_channels": [320, 640, 1280],
    "center_input_sample": False, "class_embed_type": None, "class_embeddings_concat": False,
    "conv_in_kernel": 3, "conv_out_kernel": 3, "cross_attention_dim": 2048, "cross_attention_norm": None,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "downsample_padding": 1, "dual_cross_attention": False, "encoder_hid_dim": None,
    "encoder_hid_dim_type": None, "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": 4,
    "layers_per_block": 2, "mid_block_only_cross_attention": None, "mid_block_scale_factor": 1,
    "mid_block_type": "UNetMidBlock2DCrossAttn", "norm_eps": 1e-05, "norm_num_groups": 32,
    "num_attention_heads": None, "num_class_embeds": None, "only_cross_attention": False, "out_channels": 4,
    "projection_class_embeddings_input_dim": 2816, "resnet_out_scale_factor": 1.0,
    "resnet_skip_time_act": False, "resnet_time_scale_shift": "default", "sample_size": 128,
    "time_cond_proj_dim": None, "time_embedding_act_fn": None, "time_embedding_dim": None,
    "time_embedding_type": "positional", "timestep_post_act": None, "transformer_layers_per_block": [1, 2, 10],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"], "upcast_attention": None,
    "use_linear_projection": True,
}

UNET_TARGET_BLOCKS = ("Transformer2DModel", "ResnetBlock2D", "Downsample2D", "Upsample2D")


def make_unet(config: dict):
    torch.manual_seed(0)
    return diffusers.UNet2DConditionModel(**config).eval()


def make_clip(with_projection: bool = False):
    torch.manual_seed(1)
    config = transformers.CLIPTextConfig(
        hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2, vocab_size=64,
        projection_dim=32, bos_token_id=0, eos_token_id=1, pad_token_id=1,
    )
    cls = transformers.CLIPTextModelWithProjection if with_projection else transformers.CLIPTextModel
    return cls(config).eval()


def unet_targets(unet) -> dict[str, torch.nn.Module]:
    """Linear/Conv2d layers inside the blocks Kohya's LoRA/LoCon wrap, by module path."""
    found = {}
    for name, module in unet.named_modules():
        if type(module).__name__ in UNET_TARGET_BLOCKS:
            for child_name, child in module.named_modules():
                if isinstance(child, (torch.nn.Linear, torch.nn.Conv2d)):
                    found[f"{name}.{child_name}"] = child
    return found


def clip_targets(clip) -> dict[str, torch.nn.Module]:
    return {name: module for name, module in clip.named_modules()
            if isinstance(module, torch.nn.Linear) and (".self_attn." in name or ".mlp." in name)}


def random_lora(module: torch.nn.Module, rank: int, alpha: float, gen: torch.Generator) -> dict[str, torch.Tensor]:
    if isinstance(module, torch.nn.Conv2d):
        down = torch.randn(rank, module.in_channels, *module.kernel_size, generator=gen) * 0.2
        up = torch.randn(module.out_channels, rank, 1, 1, generator=gen) * 0.2
    else:
        down = torch.randn(rank, module.in_features, generator=gen) * 0.2
        up = torch.randn(module.out_features, rank, generator=gen) * 0.2
    return {"lora_down.weight": down, "lora_up.weight": up, "alpha": torch.tensor(float(alpha))}


def delta_weight(tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    down, up = tensors["lora_down.weight"].float(), tensors["lora_up.weight"].float()
    scale = tensors["alpha"].item() / down.shape[0]
    if down.dim() == 2:
        return up @ down * scale
    return torch.einsum("or,rihw->oihw", up[:, :, 0, 0], down) * scale


def merged_copy(model, modules: dict[str, dict[str, torch.Tensor]]):
    merged = copy.deepcopy(model)
    layers = dict(merged.named_modules())
    with torch.no_grad():
        for path, tensors in modules.items():
            layers[path].weight += delta_weight(tensors)
    return merged


def lora_weights(targets: dict[str, torch.nn.Module], rank=2, alpha=3.0, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return {path: random_lora(module, rank, alpha, gen) for path, module in targets.items()}


def sd1_facts(**overrides):
    facts = dict(
        family=families.for_file("sd1", False), v_parameterization=False, network_module="networks.lora", network_dim=8, network_alpha=1.0,
        network_args={}, network_dropout=None, resolution=(512, 512), num_epochs=2, epoch=1, steps=10,
        max_train_steps=20, learning_rate=1e-4, unet_lr=None, text_encoder_lr=5e-5,
        optimizer="bitsandbytes.optim.adamw.AdamW8bit", lr_scheduler="cosine", lr_warmup_steps=2, seed=42,
        mixed_precision="fp16", training_comment=None, output_name="my_lora",
        tag_frequency={"10_mychar woman": {"mychar": 3, "smile": 1}}, num_train_images=30, num_reg_images=0,
        training_started_at=1700000000.5, training_finished_at=1700000100.25,
    )
    facts.update(overrides)
    return facts


# -- names -------------------------------------------------------------------------------------------

def test_sd1_names_are_diffusers_paths_with_underscores_and_round_trip():
    unet, clip = make_unet(SD1_UNET), make_clip()
    names = KohyaNames("sd1")
    assert names.prefix("unet", "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q") == \
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"
    for path in unet_targets(unet):
        assert names.parse(names.prefix("unet", path)) == ("unet", path)
    te_paths = list(clip_targets(clip))
    assert te_paths
    for path in te_paths:
        prefix = names.prefix("text_encoder", path)
        assert prefix.startswith("lora_te_text_model_encoder_layers_")
        component, parsed = names.parse(prefix)
        assert component == "text_encoder" and parsed.removeprefix("text_model.") == path.removeprefix("text_model.")


def test_text_encoder_names_keep_text_model_whatever_the_transformers_version():
    names = KohyaNames("sd1")
    with_prefix = names.prefix("text_encoder", "text_model.encoder.layers.0.self_attn.q_proj")
    without_prefix = names.prefix("text_encoder", "encoder.layers.0.self_attn.q_proj")
    assert with_prefix == without_prefix == "lora_te_text_model_encoder_layers_0_self_attn_q_proj"


def test_sdxl_text_encoders_use_te1_and_te2():
    names = KohyaNames("sdxl", SDXL_UNET)
    assert names.prefix("text_encoder", "encoder.layers.1.mlp.fc1") == "lora_te1_text_model_encoder_layers_1_mlp_fc1"
    assert names.prefix("text_encoder_2", "text_model.encoder.layers.1.self_attn.out_proj") == \
        "lora_te2_text_model_encoder_layers_1_self_attn_out_proj"
    with pytest.raises(ValueError):
        KohyaNames("sd1").prefix("text_encoder_2", "encoder.layers.0.mlp.fc1")


def test_sdxl_tiny_unet_names_follow_ldm_numbering_from_its_config():
    unet = make_unet(SDXL_UNET)
    names = KohyaNames("sdxl", unet.config)
    expected = {
        # level 0 (no attention): two resnets at input_blocks 1, 2; its downsampler is block 3.
        "down_blocks.0.resnets.0.conv1": "lora_unet_input_blocks_1_0_in_layers_2",
        "down_blocks.0.resnets.1.time_emb_proj": "lora_unet_input_blocks_2_0_emb_layers_1",
        "down_blocks.0.downsamplers.0.conv": "lora_unet_input_blocks_3_0_op",
        # level 1: resnet + transformer (2 layers deep) at input_blocks 4 and 5, no downsampler.
        "down_blocks.1.resnets.0.conv_shortcut": "lora_unet_input_blocks_4_0_skip_connection",
        "down_blocks.1.attentions.0.transformer_blocks.1.attn2.to_k":
            "lora_unet_input_blocks_4_1_transformer_blocks_1_attn2_to_k",
        "down_blocks.1.attentions.1.proj_out": "lora_unet_input_blocks_5_1_proj_out",
        "mid_block.resnets.1.conv2": "lora_unet_middle_block_2_out_layers_3",
        "mid_block.attentions.0.transformer_blocks.0.ff.net.0.proj":
            "lora_unet_middle_block_1_transformer_blocks_0_ff_net_0_proj",
        # up level 0: three resnet+transformer blocks, the last one holds the upsampler at slot 2.
        "up_blocks.0.attentions.2.transformer_blocks.0.attn1.to_out.0":
            "lora_unet_output_blocks_2_1_transformer_blocks_0_attn1_to_out_0",
        "up_blocks.0.upsamplers.0.conv": "lora_unet_output_blocks_2_2_conv",
        "up_blocks.1.resnets.2.conv1": "lora_unet_output_blocks_5_0_in_layers_2",
        "add_embedding.linear_1": "lora_unet_label_emb_0_0",
    }
    modules = dict(unet.named_modules())
    for path, kohya in expected.items():
        assert path in modules, path
        assert names.prefix("unet", path) == kohya
    prefixes = [names.prefix("unet", p) for p in unet_targets(unet)]
    assert len(set(prefixes)) == len(prefixes)
    for path in unet_targets(unet):
        assert names.parse(names.prefix("unet", path)) == ("unet", path)


def real_sdxl_unet_target_paths(config: dict) -> list[str]:
    """Transformer-block linears of the real SDXL UNet, enumerated from its config (nothing built)."""
    def transformer(prefix: str, depth: int) -> list[str]:
        paths = [f"{prefix}.proj_in", f"{prefix}.proj_out"]
        for b in range(depth):
            for attn in ("attn1", "attn2"):
                paths += [f"{prefix}.transformer_blocks.{b}.{attn}.{p}" for p in ("to_q", "to_k", "to_v", "to_out.0")]
            paths += [f"{prefix}.transformer_blocks.{b}.ff.net.0.proj", f"{prefix}.transformer_blocks.{b}.ff.net.2"]
        return paths

    depth = config["transformer_layers_per_block"]
    paths = []
    for level, kind in enumerate(config["down_block_types"]):
        if "Attn" in kind:
            for j in range(config["layers_per_block"]):
                paths += transformer(f"down_blocks.{level}.attentions.{j}", depth[level])
    paths += transformer("mid_block.attentions.0", depth[-1])
    for level, kind in enumerate(config["up_block_types"]):
        if "Attn" in kind:
            for j in range(config["layers_per_block"] + 1):
                paths += transformer(f"up_blocks.{level}.attentions.{j}", list(reversed(depth))[level])
    return paths


def test_real_sdxl_config_gives_the_names_kohya_files_use():
    names = KohyaNames("sdxl", REAL_SDXL_UNET)
    paths = real_sdxl_unet_target_paths(REAL_SDXL_UNET)
    prefixes = {names.prefix("unet", p) for p in paths}
    # sd-scripts reports "create LoRA for U-Net: 722 modules" for SDXL.
    assert len(paths) == len(prefixes) == 722
    for known in ("lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q",
                  "lora_unet_middle_block_1_transformer_blocks_0_ff_net_2",
                  "lora_unet_output_blocks_0_1_proj_in",
                  "lora_unet_input_blocks_8_1_transformer_blocks_9_attn2_to_out_0",
                  "lora_unet_output_blocks_5_1_transformer_blocks_1_ff_net_0_proj"):
        assert known in prefixes
    assert not any("output_blocks_6" in p or "input_blocks_1_1" in p for p in prefixes)
    assert names.prefix("unet", "up_blocks.1.upsamplers.0.conv") == "lora_unet_output_blocks_5_2_conv"
    assert names.prefix("unet", "down_blocks.1.downsamplers.0.conv") == "lora_unet_input_blocks_6_0_op"
    for path in paths:
        assert names.parse(names.prefix("unet", path)) == ("unet", path)
    # The default reader layout is the real SDXL base.
    assert KohyaNames("sd1").parse("lora_unet_output_blocks_0_1_proj_in") == ("unet", "up_blocks.0.attentions.0.proj_in")
    default = KohyaNames("sdxl", SDXL_BASE_UNET_CONFIG)
    assert {default.prefix("unet", p) for p in paths} == prefixes


def test_unknown_module_names_are_rejected():
    names = KohyaNames("sd1")
    with pytest.raises(UnknownKeyError):
        names.parse("lora_unet_down_blocks_0_attentions_0_bogus_layer")
    with pytest.raises(UnknownKeyError):
        names.parse("lora_vae_encoder_conv_in")
    with pytest.raises(UnknownKeyError):
        KohyaNames("sdxl", SDXL_UNET).prefix("unet", "down_blocks.7.resnets.0.conv1")


# -- metadata ----------------------------------------------------------------------------------------

def test_metadata_uses_sd_scripts_string_forms():
    md = meta.build_metadata(
        sd1_facts(network_args={"conv_dim": 4, "conv_alpha": 1, "algo": "locon"}, network_module="lycoris.kohya"),
        extra={"scale_weight_norms": 1.0, "ss_gradient_checkpointing": True, "min_snr_gamma": None},
    )
    assert all(isinstance(v, str) for v in md.values())
    assert md["ss_network_module"] == "lycoris.kohya"
    assert md["ss_network_dim"] == "8" and md["ss_network_alpha"] == "1.0"
    assert json.loads(md["ss_network_args"]) == {"conv_dim": "4", "conv_alpha": "1", "algo": "locon"}
    assert md["ss_network_dropout"] == "None" and md["ss_unet_lr"] == "None" and md["ss_training_comment"] == "None"
    assert md["ss_v2"] == "False" and md["ss_base_model_version"] == "sd_v1"
    assert md["ss_resolution"] == "(512, 512)"
    assert md["ss_learning_rate"] == "0.0001" and md["ss_text_encoder_lr"] == "5e-05"
    assert md["ss_training_started_at"] == "1700000000.5" and md["ss_training_finished_at"] == "1700000100.25"
    assert md["ss_epoch"] == "1" and md["ss_steps"] == "10" and md["ss_num_epochs"] == "2"
    assert json.loads(md["ss_tag_frequency"]) == {"10_mychar woman": {"mychar": 3, "smile": 1}}
    assert md["ss_scale_weight_norms"] == "1.0" and md["ss_gradient_checkpointing"] == "True"
    assert md["ss_min_snr_gamma"] == "None"
    assert md["modelspec.sai_model_spec"] == "1.0.1"
    assert md["modelspec.architecture"] == "stable-diffusion-v1/lora"
    assert md["modelspec.implementation"] == "diffusers"
    assert md["modelspec.title"] == "my_lora" and md["modelspec.resolution"] == "512x512"
    assert md["modelspec.prediction_type"] == "epsilon"
    assert md["modelspec.date"] == __import__("datetime").datetime.fromtimestamp(1700000100).isoformat()
    assert "modelspec.author" not in md


def test_metadata_names_each_family():
    cases = {
        ("sd2", False): ("sd_v2", "True", "stable-diffusion-v2-512/lora", "diffusers", "epsilon"),
        ("sd2", True): ("sd_v2_v", "True", "stable-diffusion-v2-768-v/lora", "diffusers", "v"),
        ("sdxl", False): ("sdxl_base_v1-0", "False", "stable-diffusion-xl-v1-base/lora",
                          "https://github.com/Stability-AI/generative-models", "epsilon"),
    }
    for (family, v_pred), (version, v2, arch, impl, pred) in cases.items():
        md = meta.build_metadata(sd1_facts(family=families.for_file(family, v_pred), v_parameterization=v_pred, resolution=(1024, 768),
                                           title="Nice", author="me", tags="a,b"))
        assert (md["ss_base_model_version"], md["ss_v2"], md["modelspec.architecture"],
                md["modelspec.implementation"], md["modelspec.prediction_type"]) == (version, v2, arch, impl, pred)
        assert md["modelspec.resolution"] == "1024x768" and md["ss_resolution"] == "(1024, 768)"
        assert md["modelspec.title"] == "Nice" and md["modelspec.author"] == "me" and md["modelspec.tags"] == "a,b"
        assert "ss_network_args" not in md


def test_metadata_refuses_missing_facts_and_clashing_extras():
    facts = sd1_facts()
    del facts["optimizer"]
    with pytest.raises(ValueError, match="optimizer"):
        meta.build_metadata(facts)
    with pytest.raises(ValueError, match="ss_seed"):
        meta.build_metadata(sd1_facts(), extra={"seed": 3})


# -- hashes and saving -------------------------------------------------------------------------------

def big_weights() -> dict:
    gen = torch.Generator().manual_seed(3)
    return {"unet": {"down_blocks.0.attentions.0.proj_in": {
        "lora_down.weight": torch.randn(8, 40000, generator=gen), "lora_up.weight": torch.randn(32, 8, generator=gen),
        "alpha": torch.tensor(4.0)}}}


def test_saved_hashes_match_an_independent_computation(tmp_path):
    path = tmp_path / "big.safetensors"
    md = meta.build_metadata(sd1_facts())
    md["modelspec.title"] = "user edited title"  # not part of the hashes
    written = save_lora_file(path, big_weights(), family="sd1", metadata=md, save_dtype=torch.float32)
    raw = path.read_bytes()
    header_len = struct.unpack("<Q", raw[:8])[0]
    assert written["sshs_model_hash"] == hashlib.sha256(raw[8 + header_len:]).hexdigest()
    # legacy: 64 KiB at 1 MiB of the tensors saved with the ss_* metadata only
    with safe_open(str(path), framework="pt") as handle:
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
        stored = handle.metadata()
    ss_only = safetensors_save(tensors, {k: v for k, v in stored.items() if k.startswith("ss_")})
    assert len(ss_only) > 0x110000
    assert written["sshs_legacy_hash"] == hashlib.sha256(ss_only[0x100000:0x110000]).hexdigest()[:8]
    assert stored["sshs_model_hash"] == written["sshs_model_hash"]
    assert stored["modelspec.title"] == "user edited title"
    assert hashes.sshs_hashes(tensors, stored) == (written["sshs_model_hash"], written["sshs_legacy_hash"])


def test_save_converts_dtype_and_writes_kohya_keys(tmp_path):
    weights = {"unet": {"down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q": {
        "lora_down.weight": torch.randn(2, 32), "lora_up.weight": torch.randn(32, 2), "alpha": torch.tensor(1.0)}},
        "text_encoder": {"encoder.layers.0.self_attn.q_proj": {
            "hada_w1_a": torch.randn(32, 2), "hada_w1_b": torch.randn(2, 32), "hada_w2_a": torch.randn(32, 2),
            "hada_w2_b": torch.randn(2, 32), "alpha": torch.tensor(2.0)}}}
    path = tmp_path / "a.safetensors"
    save_lora_file(path, weights, family="sd1", metadata=meta.build_metadata(sd1_facts()), save_dtype=torch.float16)
    with safe_open(str(path), framework="pt") as handle:
        keys = set(handle.keys())
        assert all(handle.get_tensor(k).dtype == torch.float16 for k in keys)
        assert handle.get_tensor("lora_te_text_model_encoder_layers_0_self_attn_q_proj.alpha").dim() == 0
    assert "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_up.weight" in keys
    assert "lora_te_text_model_encoder_layers_0_self_attn_q_proj.hada_w2_b" in keys
    with pytest.raises(ValueError, match="suffix"):
        to_state_dict({"unet": {"conv_in": {"lora_dwn.weight": torch.zeros(1)}}}, family="sd1")


def test_failed_write_keeps_the_earlier_file_and_leaves_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "my_lora.safetensors"
    md = meta.build_metadata(sd1_facts())
    save_lora_file(path, big_weights(), family="sd1", metadata=md, save_dtype=torch.float16)
    good = path.read_bytes()

    def disk_full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(ProblemError) as caught:
        save_lora_file(path, big_weights(), family="sd1", metadata=md, save_dtype=torch.float32)
    assert "disk is full" in str(caught.value) and str(path) in str(caught.value)
    assert path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my_lora.safetensors"]


def test_ckpt_is_the_plain_state_dict_and_reads_back(tmp_path):
    weights = big_weights()
    path = tmp_path / "my_lora.ckpt"
    assert save_lora_file(path, weights, family="sd1", metadata={}, fmt="ckpt", save_dtype=torch.float16) == {}
    state = torch.load(path, weights_only=True)
    assert set(state) == {f"lora_unet_down_blocks_0_attentions_0_proj_in.{s}" for s in ("lora_down.weight", "lora_up.weight", "alpha")}
    back = read_lora_file(path)
    assert back.metadata == {} and back.weights["unet"]["down_blocks.0.attentions.0.proj_in"]["alpha"].item() == 4.0


# -- reading -----------------------------------------------------------------------------------------

def test_read_returns_what_was_saved_for_sdxl(tmp_path):
    unet, te1, te2 = make_unet(SDXL_UNET), make_clip(), make_clip(with_projection=True)
    weights = {"unet": lora_weights(unet_targets(unet)), "text_encoder": lora_weights(clip_targets(te1), seed=1),
               "text_encoder_2": lora_weights(clip_targets(te2), seed=2)}
    path = tmp_path / "xl.safetensors"
    save_lora_file(path, weights, family="sdxl", unet_config=unet.config,
                   metadata=meta.build_metadata(sd1_facts(family=families.for_file("sdxl", False))), save_dtype=torch.float32)
    module_names = {"unet": {n for n, _ in unet.named_modules()}, "text_encoder": {n for n, _ in te1.named_modules()},
                    "text_encoder_2": {n for n, _ in te2.named_modules()}}
    back = read_lora_file(path, unet_config=unet.config, module_names=module_names)
    assert back.family_guess == "sdxl"
    assert back.metadata["ss_base_model_version"] == "sdxl_base_v1-0"
    for component, modules in weights.items():
        assert back.weights[component].keys() == modules.keys()
        for module_path, tensors in modules.items():
            for suffix, tensor in tensors.items():
                assert torch.equal(back.weights[component][module_path][suffix], tensor)


def test_read_accepts_kohya_written_sd1_files_and_guesses_family(tmp_path):
    # As an older sd-scripts writes it: lora_te_ keys, ss_v2 only, no modelspec.
    state = {
        "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": torch.zeros(4, 768),
        "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight": torch.zeros(3072, 4),
        "lora_te_text_model_encoder_layers_0_mlp_fc1.alpha": torch.tensor(4.0),
        "lora_unet_up_blocks_3_attentions_2_transformer_blocks_0_attn2_to_out_0.lora_down.weight": torch.zeros(4, 320),
        "lora_unet_up_blocks_3_attentions_2_transformer_blocks_0_attn2_to_out_0.lora_up.weight": torch.zeros(320, 4),
        "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 320, 1, 1),
        "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": torch.zeros(320, 4, 1, 1),
    }
    path = tmp_path / "old.safetensors"
    save_file(state, str(path), {"ss_v2": "False", "ss_network_dim": "4"})
    back = read_lora_file(path)
    assert back.family_guess == "sd1"
    assert set(back.weights["text_encoder"]) == {"text_model.encoder.layers.0.mlp.fc1"}
    assert set(back.weights["unet"]) == {"up_blocks.3.attentions.2.transformer_blocks.0.attn2.to_out.0",
                                         "down_blocks.0.attentions.0.proj_in"}
    # Matching a CLIPTextModel that has no `text_model` child gives that model's spelling.
    clip = make_clip()
    names = {"text_encoder": {n for n, _ in clip.named_modules()}, "unet": set(back.weights["unet"])}
    matched = read_lora_file(path, module_names=names)
    expected_te = "text_model.encoder.layers.0.mlp.fc1" if hasattr(clip, "text_model") else "encoder.layers.0.mlp.fc1"
    assert set(matched.weights["text_encoder"]) == {expected_te}
    # SD 2.x's linear proj_in tells it apart when the metadata is silent.
    linear = {"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 320)}
    save_file(linear, str(tmp_path / "v2.safetensors"))
    assert read_lora_file(tmp_path / "v2.safetensors").family_guess == "sd2"


def test_read_reports_unknown_keys_missing_layers_and_broken_files(tmp_path):
    path = tmp_path / "odd.safetensors"
    save_file({"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(2, 2),
               "model.diffusion_model.input_blocks.0.0.weight": torch.zeros(2)}, str(path))
    with pytest.raises(ProblemError, match="not Kohya LoRA keys: model.diffusion_model"):
        read_lora_file(path)
    good = tmp_path / "good.safetensors"
    save_file({"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(2, 2)}, str(good))
    with pytest.raises(ProblemError, match="layers this model does not have"):
        read_lora_file(good, module_names={"unet": {"conv_in"}})
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(good.read_bytes()[:20])
    with pytest.raises(ProblemError, match="not a readable safetensors file"):
        read_lora_file(truncated)
    with pytest.raises(ProblemError, match="not found"):
        read_lora_file(tmp_path / "absent.safetensors")
    pickled = tmp_path / "evil.ckpt"
    torch.save({"x": torch.zeros(1), "obj": __import__("decimal").Decimal("1")}, pickled)
    with pytest.raises(ProblemError, match="for safety"):
        read_lora_file(pickled)


# -- diffusers loads what we write -------------------------------------------------------------------

def make_tokenizer(folder):
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    vocab.update({ch: len(vocab) for ch in letters})
    vocab.update({ch + "</w>": len(vocab) for ch in letters})
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return transformers.CLIPTokenizer.from_pretrained(str(folder), model_max_length=77)


def test_diffusers_loads_an_sd1_file_with_every_key_used_and_the_same_outputs(tmp_path):
    unet, clip = make_unet(SD1_UNET), make_clip()
    torch.manual_seed(2)
    vae = diffusers.AutoencoderKL(block_out_channels=(8,), down_block_types=("DownEncoderBlock2D",),
                                  up_block_types=("UpDecoderBlock2D",), latent_channels=4, norm_num_groups=8)
    pipe = diffusers.StableDiffusionPipeline(
        vae=vae, text_encoder=clip, tokenizer=make_tokenizer(tmp_path), unet=unet,
        scheduler=diffusers.DDPMScheduler(), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)
    unet_lora = lora_weights(unet_targets(unet), rank=2, alpha=3.0)  # LoCon: attention + resnet/sampler convs
    te_lora = lora_weights(clip_targets(clip), rank=2, alpha=1.0, seed=1)
    merged_unet, merged_clip = merged_copy(unet, unet_lora), merged_copy(clip, te_lora)
    path = tmp_path / "sd1.safetensors"
    save_lora_file(path, {"unet": unet_lora, "text_encoder": te_lora}, family="sd1",
                   metadata=meta.build_metadata(sd1_facts()), save_dtype=torch.float32)

    records = LogRecords(logging.WARNING)
    loggers = [logging.getLogger("diffusers"), logging.getLogger("peft")]
    for lg in loggers:
        lg.addHandler(records)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pipe.load_lora_weights(str(path), adapter_name="ours")
    finally:
        for lg in loggers:
            lg.removeHandler(records)
    complaints = [m for m in records.messages + [str(w.message) for w in caught]
                  if any(word in m.lower() for word in ("unexpected", "missing", "not been", "unused", "not found"))]
    assert complaints == []

    layers = dict(pipe.unet.named_modules())
    for module_path in unet_lora:
        assert "ours" in getattr(layers[module_path], "lora_A", {}), module_path
    sample = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(5))
    ids = torch.tensor([[0, 5, 9, 12, 1]])
    with torch.no_grad():
        hidden = pipe.text_encoder(ids)[0]
        expected_hidden = merged_clip(ids)[0]
        assert torch.allclose(hidden, expected_hidden, atol=1e-5)
        out = pipe.unet(sample, 10, encoder_hidden_states=expected_hidden).sample
        expected = merged_unet(sample, 10, encoder_hidden_states=expected_hidden).sample
    assert torch.allclose(out, expected, atol=1e-4)
    pipe.unload_lora_weights()
    with torch.no_grad():
        plain = pipe.unet(sample, 10, encoder_hidden_states=expected_hidden).sample
    assert (plain - expected).abs().max() > 1e-2  # the LoRA really changed the output


def test_diffusers_maps_our_sdxl_unet_names_back_to_the_same_layers(tmp_path):
    unet = make_unet(SDXL_UNET)
    unet_lora = lora_weights(unet_targets(unet), rank=2, alpha=1.5)
    merged = merged_copy(unet, unet_lora)
    path = tmp_path / "xl.safetensors"
    save_lora_file(path, {"unet": unet_lora}, family="sdxl", unet_config=unet.config,
                   metadata=meta.build_metadata(sd1_facts(family=families.for_file("sdxl", False))), save_dtype=torch.float32)
    loader = diffusers.StableDiffusionXLPipeline
    state, alphas = loader.lora_state_dict(str(path), unet_config=unet.config)
    loader.load_lora_into_unet(state, alphas, unet=unet, adapter_name="ours")
    layers = dict(unet.named_modules())
    for module_path in unet_lora:
        assert "ours" in getattr(layers[module_path], "lora_A", {}), module_path
    sample = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(5))
    context = torch.randn(1, 5, 64, generator=torch.Generator().manual_seed(6))
    added = {"text_embeds": torch.randn(1, 32), "time_ids": torch.randn(1, 6)}
    with torch.no_grad():
        out = unet(sample, 10, encoder_hidden_states=context, added_cond_kwargs=added).sample
        expected = merged(sample, 10, encoder_hidden_states=context, added_cond_kwargs=added).sample
    assert torch.allclose(out, expected, atol=1e-4)
