"""SD 2.x v-prediction and SDXL end to end: training, family checks, and files the ecosystem loads.

The tiny SD 2.x-v and SDXL models are trained once per module (UNet and text encoders); the tests
then reload the files in diffusers, and apply them the way ComfyUI (comfy/lora.py,
comfy/utils.py) and AUTOMATIC1111 (extensions-builtin/Lora/networks.py) do, re-implemented here
from their logic: every key must land on a real layer and give the trained model's outputs. The
Kohya scripts name SDXL layers as ComfyUI's LDM names (`lora_unet_` + the SGM UNet's module path),
so the ComfyUI check covers them too.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

from engine.config import RunConfig
from engine.families.builtin import ensure_builtin_model
from engine.problems import ProblemError
from engine.train.entry import run_config
from tests.helpers import load_lora_noting_complaints, write_small_concepts

pytestmark = pytest.mark.slow

FAMILY_SETTINGS = {
    "sd2-v": {"model.quick_pick": "custom", "model.path": "builtin-tiny-sd2-v", "model.family": "sd2-v"},
    "sdxl": {"model.quick_pick": "builtin-tiny-sdxl"},
}
SAMPLE = {"prompt": "red thing", "steps": 2, "seed": 5}


def _config(root, family, **overrides):
    values = {
        **FAMILY_SETTINGS[family], "folders.images": str(root / "images"), "folders.output": str(root / "out"),
        "folders.output_name": "lora", "network.rank": 4, "network.alpha": 2.0, "training.batch_size": 2,
        "training.seed": 11, "training.cpu_threads_per_process": 1, "buckets.step": 32, "optimizer.name": "AdamW",
        "optimizer.learning_rate": 1e-2, "optimizer.text_encoder_lr": 1e-2, "optimizer.scheduler": "constant",
        "optimizer.warmup_percent": 0.0, "training.save_precision": "float",
    }
    values.update({k.replace("__", "."): v for k, v in overrides.items()})
    return RunConfig.from_values(values)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, model_cache):
    """family -> finished run (with one sample rendered at the end), trained once per module."""
    runs = {}

    def get(family):
        if family not in runs:
            root = tmp_path_factory.mktemp(family)
            with pytest.MonkeyPatch.context() as env:  # the autouse isolation is per test; this outlives one
                env.setenv("XDG_STATE_HOME", str(root / "state"))
                env.setenv("TUI_LORA_CACHE", str(model_cache))
                write_small_concepts(root / "images")
                cfg = _config(root, family, sampling__prompts=[SAMPLE], sampling__sampler="euler")
                events = []
                result = run_config(cfg, on_event=events.append)
            assert result.status == "completed", (result.message, result.hint)
            runs[family] = (result, events)
        return runs[family]

    return get


# ----------------------------------------------------------------------------- family checks


@pytest.mark.parametrize("settings, field", [
    ({"model.quick_pick": "custom", "model.path": "builtin-tiny-sdxl", "model.family": "sd1"}, "model.family"),
    ({"model.quick_pick": "custom", "model.path": "builtin-tiny-sd2-v", "model.family": "sd2"}, "model.family"),
    ({"model.quick_pick": "custom", "model.path": "builtin-tiny-sd2-v", "model.family": "sd1"}, "model.family"),
    ({"model.quick_pick": "custom", "model.path": "builtin-tiny-sd1", "model.family": "sdxl"}, "model.family"),
])
def test_a_family_that_contradicts_the_model_stop_the_run_before_anything_is_written(tmp_path, settings, field):
    write_small_concepts(tmp_path / "images")
    cfg = _config(tmp_path, "sdxl", **{k.replace(".", "__"): v for k, v in settings.items()})
    with pytest.raises(ProblemError) as caught:
        run_config(cfg)
    assert field in {p.field for p in caught.value.errors}
    assert not (tmp_path / "out").exists()


def test_sdxl_pick_defaults_to_1024_px_and_2048_px_buckets():
    cfg = RunConfig.from_values({"model.quick_pick": "sdxl-base", "folders.images": "x"})
    assert (cfg.model.family, cfg.training.max_resolution, cfg.buckets.max_resolution) == ("sdxl", [1024, 1024], 2048)


def test_v_parameterization_trains_against_the_velocity():
    from diffusers import DDPMScheduler

    from engine.diffusion.loss import training_target

    scheduler = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                              prediction_type="v_prediction")
    latents, noise = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    timesteps = torch.tensor([10, 900])
    abar = scheduler.alphas_cumprod[timesteps].view(-1, 1, 1, 1)
    velocity = abar.sqrt() * noise - (1 - abar).sqrt() * latents  # v = α·ε − σ·x₀
    torch.testing.assert_close(training_target(scheduler, latents, noise, timesteps, True), velocity)
    assert torch.equal(training_target(scheduler, latents, noise, timesteps, False), noise)


def test_sd2_v_run_trains_for_velocity_and_writes_an_sd2_v_file(trained):
    result, _ = trained("sd2-v")
    base = result.trainer.model.base
    assert (base.family, base.noise_scheduler.config.prediction_type) == ("sd2-v", "v_prediction")
    with safe_open(str(result.outputs[-1]), "pt") as handle:
        meta, keys = handle.metadata(), list(handle.keys())
    assert (meta["ss_base_model_version"], meta["ss_v2"]) == ("sd_v2_v", "True")
    assert meta["modelspec.prediction_type"] == "v"
    assert any(k.startswith("lora_te_text_model_encoder_layers_") for k in keys)


def test_sdxl_file_has_both_text_encoders_and_ldm_unet_names(trained):
    result, _ = trained("sdxl")
    keys = load_file(str(result.outputs[-1])).keys()
    prefixes = {k.split(".")[0] for k in keys}
    assert any(p.startswith("lora_te1_text_model_encoder_layers_") for p in prefixes)
    assert any(p.startswith("lora_te2_text_model_encoder_layers_") for p in prefixes)
    unet = [p for p in prefixes if p.startswith("lora_unet_")]
    assert unet and all(re.match(r"lora_unet_(input_blocks|middle_block|output_blocks)_", p) for p in unet)


def test_sdxl_size_conditioning_comes_from_each_images_bucket_and_crop(tmp_path):
    from engine.plan import plan_run
    from engine.train.batches import Draw
    from engine.train.loop import Trainer

    write_small_concepts(tmp_path / "images")
    cfg = _config(tmp_path, "sdxl")
    plan = plan_run(cfg)
    trainer = Trainer(cfg, plan, seed=1)
    trainer.setup()
    trainer.cache_latents()
    trainer.prepare()
    seen = []
    trainer.unet.add_time_proj.register_forward_pre_hook(lambda module, args: seen.append(args[0].view(-1, 6)))
    blue = next(i for i, item in enumerate(plan.dataset.items) if "blue" in item.caption)
    red = 1 - blue
    trainer.train_step([Draw(blue, False), Draw(red, False)])
    # (original height, width, crop top, left, bucket height, width): the 96×64 image loses 16 px each side
    assert seen[0].tolist() == [[64, 96, 0, 16, 64, 64], [64, 64, 0, 0, 64, 64]]


def test_frozen_sdxl_text_encoders_encode_each_caption_once(tmp_path):
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    from engine.diffusion.text import encode_captions

    write_small_concepts(tmp_path / "images")
    cfg = _config(tmp_path, "sdxl", optimizer__text_encoder_lr=0.0, training__epochs=2)
    encoded: dict[str, int] = {"CLIPTextModel": 0, "CLIPTextModelWithProjection": 0}

    inner: set[int] = set()  # transformers nests a CLIPTextModel inside the WithProjection one

    def count(module, args):
        if type(module) in (CLIPTextModel, CLIPTextModelWithProjection) and id(module) not in inner:
            inner.update(id(child) for child in module.children())
            encoded[type(module).__name__] += args[0].shape[0]  # token ids: one row per caption

    handle = torch.nn.modules.module.register_module_forward_pre_hook(count)
    try:
        result = run_config(cfg)
    finally:
        handle.remove()
    assert result.status == "completed", result.message
    assert result.trainer.progress.step == 4  # 8 captions drawn
    assert encoded == {"CLIPTextModel": 2, "CLIPTextModelWithProjection": 2}  # two distinct captions
    trainer = result.trainer
    base = trainer.model.base
    captions = sorted(item.caption for item in trainer.plan.dataset.items)
    with torch.no_grad():
        fresh = encode_captions(base.tokenizers, base.text_encoders, captions, sdxl=True, clip_skip=1,
                                max_token_length=75, device=trainer.device)
    cached = trainer._conditioning(captions, train_text=False)
    torch.testing.assert_close(cached.hidden, fresh.hidden)
    torch.testing.assert_close(cached.pooled, fresh.pooled)


# ----------------------------------------------------------------------------- diffusers


def _load_in_diffusers(family, path):
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    folder = str(ensure_builtin_model(f"builtin-tiny-{family}"))
    pipe = (StableDiffusionXLPipeline if family == "sdxl" else StableDiffusionPipeline).from_pretrained(folder)
    complaints = load_lora_noting_complaints(pipe, path)
    assert not complaints, complaints
    return pipe


def _unet_output(unet, seed=0):
    g = torch.Generator().manual_seed(seed)
    config = unet.config
    latents = torch.randn(1, config.in_channels, 16, 16, generator=g)
    text = torch.randn(1, 77, config.cross_attention_dim, generator=g)
    added = None
    if config.addition_embed_type == "text_time":
        pooled = config.projection_class_embeddings_input_dim - 6 * config.addition_time_embed_dim
        added = {"text_embeds": torch.randn(1, pooled, generator=g), "time_ids": torch.tensor([[64., 96, 0, 16, 64, 64]])}
    with torch.no_grad():
        return unet(latents, torch.tensor([500]), text, added_cond_kwargs=added).sample


def _prompt_states(pipe, sdxl):
    with torch.no_grad():
        out = pipe.encode_prompt("red thing, simple", device="cpu", num_images_per_prompt=1,
                                 do_classifier_free_guidance=False)
    return [out[0], out[2]] if sdxl else [out[0]]


@pytest.mark.parametrize("family", ["sd2-v", "sdxl"])
def test_file_loads_in_diffusers_with_every_key_used_and_the_trained_outputs(trained, family):
    from engine.diffusion.samplers import build_sampler

    result, events = trained(family)
    base = result.trainer.model.base
    for module in (base.unet, *base.text_encoders):
        module.eval()
    pipe = _load_in_diffusers(family, result.outputs[-1])
    expected = _unet_output(base.unet)
    assert not torch.allclose(_unet_output(_fresh_unet(family)), expected, atol=1e-4)  # training changed it
    torch.testing.assert_close(_unet_output(pipe.unet), expected, atol=1e-5, rtol=1e-4)
    trained_states = _prompt_states(base.to_pipeline(), family == "sdxl")
    for loaded, wanted in zip(_prompt_states(pipe, family == "sdxl"), trained_states):
        torch.testing.assert_close(loaded, wanted, atol=1e-5, rtol=1e-4)

    # the sample rendered at the end of training is what the saved file draws
    (sample,) = [e for e in events if e["type"] == "sample"]
    pipe.scheduler = build_sampler("euler", pipe.scheduler.config, base.prediction_type)
    with torch.no_grad():
        image = pipe(prompt=SAMPLE["prompt"], num_inference_steps=2, guidance_scale=7.0, width=64, height=64,
                     generator=torch.Generator().manual_seed(SAMPLE["seed"])).images[0]
    drawn = np.asarray(Image.open(sample["paths"][0]), dtype=np.int16)
    assert np.abs(np.asarray(image, dtype=np.int16) - drawn).max() <= 2


def _fresh_unet(family):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel.from_pretrained(str(ensure_builtin_model(f"builtin-tiny-{family}")), subfolder="unet")


# ----------------------------------------------------------------------------- ComfyUI

# comfy/utils.py: LDM (ComfyUI's own) names <-> diffusers names of UNet parameters.
_COMFY_RESNET = {"in_layers.0": "norm1", "in_layers.2": "conv1", "emb_layers.1": "time_emb_proj",
                 "out_layers.0": "norm2", "out_layers.3": "conv2", "skip_connection": "conv_shortcut"}
_COMFY_ATTENTION = ("proj_in", "proj_out", "norm")
_COMFY_BLOCK_WEIGHTS = ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn2.to_q", "attn2.to_k", "attn2.to_v")
_COMFY_BLOCK_BOTH = ("norm1", "norm2", "norm3", "attn1.to_out.0", "attn2.to_out.0", "ff.net.0.proj", "ff.net.2")
_COMFY_BASIC = {"label_emb.0.0": "add_embedding.linear_1", "label_emb.0.2": "add_embedding.linear_2",
                "input_blocks.0.0": "conv_in", "out.0": "conv_norm_out", "out.2": "conv_out",
                "time_embed.0": "time_embedding.linear_1", "time_embed.2": "time_embedding.linear_2"}
# comfy/lora.py: the CLIP layers a LoRA may patch, and their names in LoRA keys.
_COMFY_CLIP = {"mlp.fc1": "mlp_fc1", "mlp.fc2": "mlp_fc2", "self_attn.k_proj": "self_attn_k_proj",
               "self_attn.q_proj": "self_attn_q_proj", "self_attn.v_proj": "self_attn_v_proj",
               "self_attn.out_proj": "self_attn_out_proj"}


def _per_level(value, levels):
    return [value] * levels if isinstance(value, int) else list(value)


def comfy_unet_config(config) -> dict:
    """The LDM-style UNet description ComfyUI detects for a model with this diffusers config."""
    down, up = config["down_block_types"], config["up_block_types"]
    levels = len(down)
    layers = _per_level(config["layers_per_block"], levels)
    depth = _per_level(config.get("transformer_layers_per_block", 1), levels)
    inputs = [depth[x] if "CrossAttn" in down[x] else 0 for x in range(levels) for _ in range(layers[x])]
    outputs = [depth[::-1][x] if "CrossAttn" in up[x] else 0 for x in range(levels) for _ in range(layers[::-1][x] + 1)]
    return {"num_res_blocks": layers, "channel_mult": [1] * levels, "transformer_depth": inputs,
            "transformer_depth_output": outputs[::-1], "transformer_depth_middle": depth[-1]}


def comfy_unet_to_diffusers(unet_config) -> dict[str, str]:
    """diffusers parameter name -> LDM parameter name, as comfy.utils.unet_to_diffusers builds it."""
    mapping: dict[str, str] = {}
    res = unet_config["num_res_blocks"]
    levels = len(unet_config["channel_mult"])
    depth_in = list(unet_config["transformer_depth"])
    depth_out = list(unet_config["transformer_depth_output"])

    def resnet(ours, theirs):
        for ldm, diffusers in _COMFY_RESNET.items():
            for leaf in ("weight", "bias"):
                mapping[f"{ours}.{diffusers}.{leaf}"] = f"{theirs}.{ldm}.{leaf}"

    def attention(ours, theirs, blocks):
        names = [f"{n}.{leaf}" for n in _COMFY_ATTENTION for leaf in ("weight", "bias")]
        names += [f"transformer_blocks.{t}.{n}.weight" for t in range(blocks) for n in _COMFY_BLOCK_WEIGHTS]
        names += [f"transformer_blocks.{t}.{n}.{leaf}" for t in range(blocks) for n in _COMFY_BLOCK_BOTH
                  for leaf in ("weight", "bias")]
        mapping.update({f"{ours}.{n}": f"{theirs}.{n}" for n in names})

    for x in range(levels):
        n = 1 + (res[x] + 1) * x
        for i in range(res[x]):
            resnet(f"down_blocks.{x}.resnets.{i}", f"input_blocks.{n}.0")
            if blocks := depth_in.pop(0):
                attention(f"down_blocks.{x}.attentions.{i}", f"input_blocks.{n}.1", blocks)
            n += 1
        for leaf in ("weight", "bias"):
            mapping[f"down_blocks.{x}.downsamplers.0.conv.{leaf}"] = f"input_blocks.{n}.0.op.{leaf}"
    attention("mid_block.attentions.0", "middle_block.1", unet_config["transformer_depth_middle"])
    resnet("mid_block.resnets.0", "middle_block.0")
    resnet("mid_block.resnets.1", "middle_block.2")
    res_up = res[::-1]
    for x in range(levels):
        n = (res_up[x] + 1) * x
        for i in range(res_up[x] + 1):
            resnet(f"up_blocks.{x}.resnets.{i}", f"output_blocks.{n}.0")
            slot = 1
            if blocks := depth_out.pop():
                slot = 2
                attention(f"up_blocks.{x}.attentions.{i}", f"output_blocks.{n}.1", blocks)
            if i == res_up[x]:
                for leaf in ("weight", "bias"):
                    mapping[f"up_blocks.{x}.upsamplers.0.conv.{leaf}"] = f"output_blocks.{n}.{slot}.conv.{leaf}"
            n += 1
    for ldm, diffusers in _COMFY_BASIC.items():
        for leaf in ("weight", "bias"):
            mapping[f"{diffusers}.{leaf}"] = f"{ldm}.{leaf}"
    return mapping


def _hf_clip_state(encoder) -> dict[str, torch.Tensor]:
    """A CLIP text model's weights under `text_model.` (ComfyUI's and older transformers' layout)."""
    return {k if k.startswith(("text_model.", "text_projection")) else f"text_model.{k}": v
            for k, v in encoder.state_dict().items()}


class ComfyModel:
    """The weights ComfyUI holds for a base model, in its own names, plus its LoRA key map."""

    def __init__(self, family):
        from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

        folder = str(ensure_builtin_model(f"builtin-tiny-{family}"))
        self.pipe = (StableDiffusionXLPipeline if family == "sdxl" else StableDiffusionPipeline).from_pretrained(folder)
        self.to_ldm = comfy_unet_to_diffusers(comfy_unet_config(dict(self.pipe.unet.config)))
        unet_state = self.pipe.unet.state_dict()
        assert set(unet_state) <= set(self.to_ldm)  # the description covers every weight
        self.state = {f"diffusion_model.{self.to_ldm[k]}": v.clone() for k, v in unet_state.items()}
        towers = ["clip_l", "clip_g"] if family == "sdxl" else ["clip_h"]
        self.encoders = [self.pipe.text_encoder] + ([self.pipe.text_encoder_2] if family == "sdxl" else [])
        for tower, encoder in zip(towers, self.encoders):
            self.state.update({f"{tower}.transformer.{k}": v.clone() for k, v in _hf_clip_state(encoder).items()})
        self.key_map = self._unet_keys() | self._clip_keys()

    def _unet_keys(self) -> dict[str, str]:  # comfy.lora.model_lora_keys_unet
        keys = {}
        for key in self.state:
            if key.startswith("diffusion_model.") and key.endswith(".weight"):
                keys["lora_unet_" + key[len("diffusion_model."):-len(".weight")].replace(".", "_")] = key
        for diffusers, ldm in self.to_ldm.items():
            if diffusers.endswith(".weight"):
                keys["lora_unet_" + diffusers[:-len(".weight")].replace(".", "_")] = f"diffusion_model.{ldm}"
        return keys

    def _clip_keys(self) -> dict[str, str]:  # comfy.lora.model_lora_keys_clip
        keys, clip_l = {}, False
        for b in range(32):
            for hf, name in _COMFY_CLIP.items():
                if (k := f"clip_h.transformer.text_model.encoder.layers.{b}.{hf}.weight") in self.state:
                    keys[f"lora_te_text_model_encoder_layers_{b}_{name}"] = k
                if (k := f"clip_l.transformer.text_model.encoder.layers.{b}.{hf}.weight") in self.state:
                    keys[f"lora_te_text_model_encoder_layers_{b}_{name}"] = k
                    keys[f"lora_te1_text_model_encoder_layers_{b}_{name}"] = k
                    clip_l = True
                if (k := f"clip_g.transformer.text_model.encoder.layers.{b}.{hf}.weight") in self.state and clip_l:
                    keys[f"lora_te2_text_model_encoder_layers_{b}_{name}"] = k
        return keys

    def load_lora(self, lora: dict[str, torch.Tensor]) -> tuple[dict, list[str]]:
        """comfy.lora.load_lora for LoRA-type keys: (patches by weight name, keys it did not load)."""
        patches, loaded = {}, set()
        for prefix, target in self.key_map.items():
            alpha = lora.get(f"{prefix}.alpha")
            if alpha is not None:
                loaded.add(f"{prefix}.alpha")
            if f"{prefix}.lora_up.weight" in lora:
                up, down = lora[f"{prefix}.lora_up.weight"], lora[f"{prefix}.lora_down.weight"]
                patches[target] = (up, down, None if alpha is None else alpha.item())
                loaded |= {f"{prefix}.lora_up.weight", f"{prefix}.lora_down.weight"}
        return patches, [k for k in lora if k not in loaded]

    def patched_modules(self, patches):
        """The UNet and text encoders with the patches merged as ComfyUI merges them."""
        state = {k: v.clone() for k, v in self.state.items()}
        for target, (up, down, alpha) in patches.items():
            assert target in state, target
            weight = state[target]
            scale = alpha / down.shape[0] if alpha is not None else 1.0
            state[target] = weight + scale * (up.flatten(1) @ down.flatten(1)).reshape(weight.shape)
        from_ldm = {f"diffusion_model.{ldm}": diffusers for diffusers, ldm in self.to_ldm.items()}
        unet_state = {from_ldm[k]: v for k, v in state.items() if k.startswith("diffusion_model.")}
        unet = _fresh_unet("sdxl" if len(self.encoders) == 2 else "sd2-v")
        unet.load_state_dict(unet_state)
        towers = ["clip_l", "clip_g"] if len(self.encoders) == 2 else ["clip_h"]
        for tower, encoder in zip(towers, self.encoders):
            prefix = f"{tower}.transformer."
            own = {k for k in encoder.state_dict()}
            weights = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            encoder.load_state_dict({(k if k in own else k[len("text_model."):]): v for k, v in weights.items()})
        return unet.eval()


@pytest.mark.parametrize("family", ["sd2-v", "sdxl"])
def test_comfyui_naming_is_the_ldm_naming_diffusers_converts_from(family):
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    comfy = ComfyModel(family)
    checkpoint = {f"model.{k}": v for k, v in comfy.state.items() if k.startswith("diffusion_model.")}
    converted = convert_ldm_unet_checkpoint(checkpoint, dict(comfy.pipe.unet.config))
    original = comfy.pipe.unet.state_dict()
    assert converted.keys() == original.keys()
    assert all(torch.equal(converted[k], original[k]) for k in original)


@pytest.mark.parametrize("family", ["sd2-v", "sdxl"])
def test_comfyui_loads_every_key_onto_the_layers_that_give_the_trained_outputs(trained, family):
    result, _ = trained(family)
    comfy = ComfyModel(family)
    patches, not_loaded = comfy.load_lora(load_file(str(result.outputs[-1])))
    assert not_loaded == []
    unet = comfy.patched_modules(patches)
    base = result.trainer.model.base
    base.unet.eval()
    torch.testing.assert_close(_unet_output(unet), _unet_output(base.unet), atol=1e-5, rtol=1e-4)
    for loaded, wanted in zip(_prompt_states(comfy.pipe, family == "sdxl"),
                              _prompt_states(base.to_pipeline(), family == "sdxl")):
        torch.testing.assert_close(loaded, wanted, atol=1e-5, rtol=1e-4)


# ----------------------------------------------------------------------------- AUTOMATIC1111

# extensions-builtin/Lora/networks.py: diffusers-style names -> the webui's module names.
_A1111_RESNET = {"conv1": "in_layers_2", "conv2": "out_layers_3", "time_emb_proj": "emb_layers_1",
                 "conv_shortcut": "skip_connection"}


def a1111_compvis_name(key: str, is_sd2: bool) -> str:
    """convert_diffusers_name_to_compvis: the webui's conversion of one LoRA module name."""
    def block_suffix(kind, rest):
        return _A1111_RESNET.get(rest, rest) if kind == "resnets" else rest

    rules = [
        (r"lora_unet_conv_in(.*)", lambda m: f"diffusion_model_input_blocks_0_0{m[1]}"),
        (r"lora_unet_conv_out(.*)", lambda m: f"diffusion_model_out_2{m[1]}"),
        (r"lora_unet_time_embedding_linear_(\d+)(.*)", lambda m: f"diffusion_model_time_embed_{int(m[1]) * 2 - 2}{m[2]}"),
        (r"lora_unet_down_blocks_(\d+)_(attentions|resnets)_(\d+)_(.+)", lambda m:
            f"diffusion_model_input_blocks_{1 + int(m[1]) * 3 + int(m[3])}_{1 if m[2] == 'attentions' else 0}_"
            f"{block_suffix(m[2], m[4])}"),
        (r"lora_unet_mid_block_(attentions|resnets)_(\d+)_(.+)", lambda m:
            f"diffusion_model_middle_block_{1 if m[1] == 'attentions' else int(m[2]) * 2}_{block_suffix(m[1], m[3])}"),
        (r"lora_unet_up_blocks_(\d+)_(attentions|resnets)_(\d+)_(.+)", lambda m:
            f"diffusion_model_output_blocks_{int(m[1]) * 3 + int(m[3])}_{1 if m[2] == 'attentions' else 0}_"
            f"{block_suffix(m[2], m[4])}"),
        (r"lora_unet_down_blocks_(\d+)_downsamplers_0_conv", lambda m: f"diffusion_model_input_blocks_{3 + int(m[1]) * 3}_0_op"),
        (r"lora_unet_up_blocks_(\d+)_upsamplers_0_conv", lambda m:
            f"diffusion_model_output_blocks_{2 + int(m[1]) * 3}_{2 if int(m[1]) > 0 else 1}_conv"),
    ]
    for pattern, build in rules:
        if m := re.match(pattern, key):
            return build(m)
    if m := re.match(r"lora_te_text_model_encoder_layers_(\d+)_(.+)", key):
        return f"model_transformer_resblocks_{m[1]}_{_open_clip_part(m[2])}" if is_sd2 \
            else f"transformer_text_model_encoder_layers_{m[1]}_{m[2]}"
    if m := re.match(r"lora_te2_text_model_encoder_layers_(\d+)_(.+)", key):
        return f"1_model_transformer_resblocks_{m[1]}_{_open_clip_part(m[2])}"
    return key


def _open_clip_part(part: str) -> str:
    if "mlp_fc1" in part:
        return part.replace("mlp_fc1", "mlp_c_fc")
    if "mlp_fc2" in part:
        return part.replace("mlp_fc2", "mlp_c_proj")
    return part.replace("self_attn", "attn")


def _open_clip_modules(prefix: str, encoder) -> dict[str, tuple]:
    """OpenCLIP's resblock modules (as the webui names them) -> weight shape."""
    width = encoder.config.hidden_size
    modules: dict[str, tuple | None] = {f"{prefix}model_transformer_resblocks": None}  # the ModuleList
    for i in range(encoder.config.num_hidden_layers):
        block = f"{prefix}model_transformer_resblocks_{i}_"
        modules[block + "attn"] = (3 * width, width)  # nn.MultiheadAttention: fused in_proj
        modules[block + "attn_out_proj"] = (width, width)
        modules[block + "mlp_c_fc"] = (encoder.config.intermediate_size, width)
        modules[block + "mlp_c_proj"] = (width, encoder.config.intermediate_size)
    return modules


def a1111_layers(family) -> dict[str, tuple]:
    """network_layer_mapping of the webui's own model (LDM UNet, its text towers) -> weight shape."""
    comfy = ComfyModel(family)
    layers = {}
    for key, value in comfy.state.items():
        stem, _, leaf = key.rpartition(".")
        if key.startswith("diffusion_model.") and leaf == "weight":
            layers[stem.replace(".", "_")] = tuple(value.shape)
    encoders = comfy.encoders
    if family == "sdxl":  # embedder 0 wraps transformers' CLIP, embedder 1 OpenCLIP
        for key, value in _hf_clip_state(encoders[0]).items():
            if key.endswith(".weight"):
                layers["0_transformer_" + key[:-len(".weight")].replace(".", "_")] = tuple(value.shape)
        layers.update(_open_clip_modules("1_", encoders[1]))
    else:  # SD 2.x: OpenCLIP alone
        layers.update(_open_clip_modules("", encoders[0]))
    return layers


def a1111_resolve(key: str, layers: dict, is_sd2: bool) -> str | None:
    """load_network's lookup of one LoRA module name, with its fallbacks; the layer name or None."""
    name = a1111_compvis_name(key, is_sd2)
    if name in layers:
        return name
    if (m := re.match(r"(.*)_([qkv]_proj)$", name)) and m[1] in layers:
        return m[1]
    if "lora_unet" in key and (name := key.replace("lora_unet", "diffusion_model")) in layers:
        return name
    if "lora_te1_text_model" in key:
        for replacement in ("0_transformer_text_model", "transformer_text_model"):
            if (name := key.replace("lora_te1_text_model", replacement)) in layers:
                return name
    return None


@pytest.mark.parametrize("family", ["sd2-v", "sdxl"])
def test_automatic1111_finds_a_layer_of_the_right_shape_for_every_key(trained, family):
    result, _ = trained(family)
    lora = load_file(str(result.outputs[-1]))
    layers = a1111_layers(family)
    is_sd2 = "model_transformer_resblocks" in layers  # the webui's own test
    modules = {}
    for key in lora:
        prefix = key.split(".", 1)[0]
        modules.setdefault(prefix, a1111_resolve(prefix, layers, is_sd2))
    assert not [k for k, v in modules.items() if v is None]
    fused: dict[str, set] = {}
    for prefix, layer in modules.items():
        up, down = lora[f"{prefix}.lora_up.weight"], lora[f"{prefix}.lora_down.weight"]
        shape = (up.shape[0], *down.shape[1:])
        if layers[layer][0] == 3 * shape[0] and layer.endswith("_attn"):  # q/k/v of a MultiheadAttention
            fused.setdefault(layer, set()).add(prefix.rsplit("_", 2)[-2])
            assert (3 * shape[0], *shape[1:]) == layers[layer]
        else:
            assert int(np.prod(shape)) == int(np.prod(layers[layer])), (prefix, layer)
    # the webui patches a MultiheadAttention only when q, k, v and out all come with the file
    assert fused and all(parts == {"q", "k", "v"} for parts in fused.values())
    assert all(f"{layer}_out_proj" in modules.values() for layer in fused)
