"""Our Kohya FLUX.1 LoRA files read by ComfyUI's and sd-scripts' key handling, every key accounted for.

Neither program can run here (ComfyUI needs its whole runtime, sd-scripts its BFL model code), so
the helpers below are faithful copies of the logic that decides which keys load where, written
from the sources named on each helper; everything else (the model shapes, our file) is real:

* ComfyUI (comfyanonymous/ComfyUI @ 41444b5236c613ee5ff7d09aa620f94b702f30eb, `comfy/lora.py`
  `model_lora_keys_unet`, `model_lora_keys_clip`, `load_lora`, `calculate_weight`; `comfy/utils.py`
  `flux_to_diffusers`): its Flux model holds BFL-layout weights, each `diffusion_model.<path>.weight`
  answers to `lora_unet_<path with _>`; CLIP-L's layers answer to `lora_te1_text_model_…`. A key
  no target claims is logged "lora key not loaded"; the patch is `up @ down` reshaped to the weight's
  shape, times alpha / (rows of down).
* sd-scripts (kohya-ss/sd-scripts @ 0087a46e14c8e568982cbe3a5d9b9c561b175abf, `networks/lora_flux.py`
  `create_network_from_weights`, `LoRANetwork.__init__`/`create_modules`, `LoRAModule`): rank and
  alpha per module come from the file; a module is made for each Linear inside BFL's
  DoubleStreamBlock/SingleStreamBlock (and CLIPAttention/CLIPMLP) whose name the file holds; the
  file is then loaded with `load_state_dict(strict=False)`, which reports unexpected keys and fails
  on any shape mismatch.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from engine.families.flux1.lora_names import LoraWeights, default_targets, loras_from_peft, to_kohya  # noqa: E402
from engine.families.flux1.reference import REFERENCE_CONFIGS  # noqa: E402

CLIP_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]


# ----------------------------------------------------------------------------- ComfyUI (faithful copy)

def comfyui_flux_weight_shapes(diffusers_shapes: dict[str, tuple[int, ...]], hidden: int) -> dict[str, tuple[int, int]]:
    """The BFL block weights ComfyUI's Flux model holds, folded from a diffusers transformer's weight
    shapes with `flux_to_diffusers`' table: q/k/v (and a single block's MLP input) are row slices of
    one fused weight at offsets 0, h, 2h (3h for the MLP, 4h rows long)."""
    fused_parts = {"attn.to_q": 0, "attn.to_k": 1, "attn.to_v": 2}
    double_fused = {**{k: ("img_attn.qkv", i) for k, i in fused_parts.items()},
                    "attn.add_q_proj": ("txt_attn.qkv", 0), "attn.add_k_proj": ("txt_attn.qkv", 1),
                    "attn.add_v_proj": ("txt_attn.qkv", 2)}
    double_plain = {"attn.to_out.0": "img_attn.proj", "norm1.linear": "img_mod.lin",
                    "norm1_context.linear": "txt_mod.lin", "attn.to_add_out": "txt_attn.proj",
                    "ff.net.0.proj": "img_mlp.0", "ff.net.2": "img_mlp.2",
                    "ff_context.net.0.proj": "txt_mlp.0", "ff_context.net.2": "txt_mlp.2"}
    single_fused = {**{k: ("linear1", i) for k, i in fused_parts.items()}, "proj_mlp": ("linear1", 3)}
    single_plain = {"norm.linear": "modulation.lin", "proj_out": "linear2"}
    rows: dict[str, int] = {}
    cols: dict[str, int] = {}
    for key, shape in diffusers_shapes.items():
        if not key.endswith(".weight") or len(shape) != 2:
            continue
        pieces = key[: -len(".weight")].split(".", 2)
        if len(pieces) < 3:
            continue
        head, index, rest = pieces
        if head == "transformer_blocks":
            fused, plain, target = double_fused, double_plain, f"double_blocks.{index}"
        elif head == "single_transformer_blocks":
            fused, plain, target = single_fused, single_plain, f"single_blocks.{index}"
        else:
            continue
        if rest in fused:
            name, part = fused[rest]
            start, length = part * hidden, (4 * hidden if part == 3 else hidden)
            assert shape[0] == length, f"{key}: {shape[0]} rows, the table slices {length}"
            path, end = f"diffusion_model.{target}.{name}.weight", start + length
        elif rest in plain:
            path, end = f"diffusion_model.{target}.{plain[rest]}.weight", shape[0]
        else:
            continue
        rows[path] = max(rows.get(path, 0), end)
        cols[path] = shape[1]
    return {path: (rows[path], cols[path]) for path in rows}


def comfyui_unet_key_map(weights) -> dict[str, str]:
    """`model_lora_keys_unet`: `lora_unet_<path, dots as underscores>` → `diffusion_model.<path>.weight`."""
    return {"lora_unet_" + k[len("diffusion_model."):-len(".weight")].replace(".", "_"): k
            for k in weights if k.startswith("diffusion_model.") and k.endswith(".weight")}


_COMFY_CLIP_MAP = {"mlp.fc1": "mlp_fc1", "mlp.fc2": "mlp_fc2", "self_attn.k_proj": "self_attn_k_proj",
                   "self_attn.q_proj": "self_attn_q_proj", "self_attn.v_proj": "self_attn_v_proj",
                   "self_attn.out_proj": "self_attn_out_proj"}


def comfyui_clip_key_map(clip_weights) -> dict[str, str]:
    """`model_lora_keys_clip` for a CLIP-L at `clip_l.transformer.`: layers 0–31, six linears each."""
    found = {}
    for layer in range(32):
        for part, kohya in _COMFY_CLIP_MAP.items():
            weight = f"clip_l.transformer.text_model.encoder.layers.{layer}.{part}.weight"
            if weight in clip_weights:
                found[f"lora_te_text_model_encoder_layers_{layer}_{kohya}"] = weight
                found[f"lora_te1_text_model_encoder_layers_{layer}_{kohya}"] = weight
    return found


def comfyui_load_lora(lora: dict, key_map: dict[str, str]) -> tuple[dict[str, tuple], list[str]]:
    """`load_lora`, plain LoRA branch: (target → (up, down, alpha)), and the keys it leaves unloaded."""
    patches, loaded = {}, set()
    for name, target in key_map.items():
        alpha = None
        if f"{name}.alpha" in lora:
            alpha = lora[f"{name}.alpha"].item()
            loaded.add(f"{name}.alpha")
        up, down = f"{name}.lora_up.weight", f"{name}.lora_down.weight"
        if up in lora:
            patches[target] = (lora[up], lora[down], alpha)
            loaded.update((up, down))
    return patches, [key for key in lora if key not in loaded]


def comfyui_lora_diff(weight_shape: tuple[int, ...], up, down, alpha) -> torch.Tensor:
    """`calculate_weight`'s "lora" patch: (up @ down) reshaped to the weight, × alpha / rows of down."""
    scale = alpha / down.shape[0] if alpha is not None else 1.0
    return torch.mm(up.flatten(start_dim=1).float(), down.flatten(start_dim=1).float()).reshape(weight_shape) * scale


# ----------------------------------------------------------------------------- sd-scripts (faithful copy)

def bfl_block_linears(config: dict) -> dict[str, tuple[int, int]]:
    """(in, out) of every Linear inside BFL's DoubleStreamBlock / SingleStreamBlock modules (BFL
    flux/modules/layers.py, the model sd-scripts trains): Modulation.lin, SelfAttention.qkv/proj,
    the MLPs, and a single block's linear1/linear2."""
    h = config["num_attention_heads"] * config["attention_head_dim"]
    mlp = int(h * 4.0)  # Flux's mlp_ratio
    stream = {"mod.lin": (h, 6 * h), "attn.qkv": (h, 3 * h), "attn.proj": (h, h), "mlp.0": (h, mlp), "mlp.2": (mlp, h)}
    linears = {}
    for i in range(config["num_layers"]):
        for side in ("img", "txt"):
            linears.update({f"double_blocks.{i}.{side}_{name}": shape for name, shape in stream.items()})
    for i in range(config["num_single_layers"]):
        linears.update({f"single_blocks.{i}.linear1": (h, 3 * h + mlp), f"single_blocks.{i}.linear2": (h + mlp, h),
                        f"single_blocks.{i}.modulation.lin": (h, 3 * h)})
    return linears


def clip_linears(clip) -> dict[str, tuple[int, int]]:
    """(in, out) of the Linears inside a real CLIPTextModel's CLIPAttention/CLIPSdpaAttention/CLIPMLP,
    by the path sd-scripts sees (transformers 4: under `text_model.`; 5.6+ dropped that level)."""
    found = {}
    for name, module in clip.named_modules():
        if type(module).__name__ in ("CLIPAttention", "CLIPSdpaAttention", "CLIPMLP"):
            for child, linear in module.named_children():
                linear = getattr(linear, "base_layer", linear)  # under a peft LoRA wrapper
                if isinstance(linear, torch.nn.Linear):
                    path = f"{name}.{child}"
                    found[path if path.startswith("text_model.") else "text_model." + path] = (
                        linear.in_features, linear.out_features)
    return found


def sd_scripts_load(weights_sd: dict, unet_linears: dict, te_linears: dict) -> tuple[list, list, list, dict]:
    """`create_network_from_weights` + `load_state_dict(strict=False)`: (unexpected keys, missing keys,
    shape mismatches, the network's modules by name → (in, out, dim, alpha))."""
    modules_dim, modules_alpha = {}, {}
    for key, value in weights_sd.items():
        if "." not in key:
            continue
        name = key.split(".")[0]
        if "alpha" in key:
            modules_alpha[name] = value
        elif "lora_down" in key:
            modules_dim[name] = value.size()[0]
    network = {}
    for prefix, linears in (("lora_unet", unet_linears), ("lora_te1", te_linears)):
        for path, (fan_in, fan_out) in linears.items():
            name = f"{prefix}.{path}".replace(".", "_")
            if name in modules_dim:
                network[name] = (fan_in, fan_out, modules_dim[name], modules_alpha[name])
    expected = {}
    for name, (fan_in, fan_out, dim, _) in network.items():
        expected.update({f"{name}.lora_down.weight": (dim, fan_in), f"{name}.lora_up.weight": (fan_out, dim),
                         f"{name}.alpha": ()})
    unexpected = [key for key in weights_sd if key not in expected]
    missing = [key for key in expected if key not in weights_sd]
    mismatched = [key for key, shape in expected.items() if key in weights_sd and tuple(weights_sd[key].shape) != shape]
    return unexpected, missing, mismatched, network


def sd_scripts_merged_delta(weights_sd: dict, name: str) -> torch.Tensor:
    """`LoRAInfModule.merge_to` for a Linear: up @ down × alpha / dim."""
    down, up = weights_sd[f"{name}.lora_down.weight"].float(), weights_sd[f"{name}.lora_up.weight"].float()
    return (up @ down) * (float(weights_sd[f"{name}.alpha"]) / down.shape[0])


# ----------------------------------------------------------------------------- our files


@pytest.fixture(scope="module")
def tiny_trained(model_cache):
    """The tiny Flux transformer and CLIP-L with random peft LoRAs on sd-scripts' default targets,
    and the Kohya state dict our writer makes of them."""
    from diffusers import FluxTransformer2DModel
    from peft import LoraConfig
    from transformers import CLIPTextModel

    from engine.families.flux1.tiny import ensure_tiny_flux_model

    folder = ensure_tiny_flux_model(model_cache)
    transformer = FluxTransformer2DModel.from_pretrained(str(folder / "transformer"))
    clip = CLIPTextModel.from_pretrained(str(folder / "text_encoder"))
    torch.manual_seed(0)
    targets = default_targets(len(transformer.transformer_blocks), len(transformer.single_transformer_blocks))
    transformer.add_adapter(LoraConfig(r=4, lora_alpha=2, target_modules=targets, init_lora_weights=False))
    clip.add_adapter(LoraConfig(r=4, lora_alpha=2, target_modules=CLIP_TARGETS, init_lora_weights=False))
    loras, clip_loras = loras_from_peft(transformer), loras_from_peft(clip)
    state = to_kohya(loras, clip_loras)
    return transformer, clip, loras, clip_loras, state


def _weight_shapes(module) -> dict[str, tuple[int, ...]]:
    # the base weights only (peft's lora_A/B children are not model weights)
    return {key.replace(".base_layer", ""): tuple(value.shape) for key, value in module.state_dict().items()
            if "lora_" not in key}


def _clip_weights(clip) -> dict[str, tuple[int, ...]]:
    shapes = _weight_shapes(clip)
    return {"clip_l.transformer." + (k if k.startswith("text_model.") else "text_model." + k): s for k, s in shapes.items()}


def _real_size_state(rank: int = 1):
    """Our file for FLUX.1 [dev]'s real layer sizes (rank-1 LoRAs, zeros: only names and shapes matter),
    its transformer's weight shapes from diffusers (built on the meta device: no memory), and CLIP-L's."""
    from diffusers import FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel

    config = dict(REFERENCE_CONFIGS["transformer"], guidance_embeds=True)
    with torch.device("meta"):
        transformer = FluxTransformer2DModel(**config)
        clip = CLIPTextModel(CLIPTextConfig(**{k: v for k, v in REFERENCE_CONFIGS["text_encoders"][0].items()
                                               if not k.startswith("_")}))
    modules = dict(transformer.named_modules())
    targets = default_targets(config["num_layers"], config["num_single_layers"])
    loras = {path: LoraWeights(torch.zeros(rank, modules[path].in_features), torch.zeros(modules[path].out_features, rank), 1.0)
             for path in targets}
    te_modules = dict(clip.named_modules())
    te_paths = [name for name in te_modules if name.rsplit(".", 1)[-1] in CLIP_TARGETS]
    clip_loras = {path: LoraWeights(torch.zeros(rank, te_modules[path].in_features),
                                    torch.zeros(te_modules[path].out_features, rank), 1.0) for path in te_paths}
    return to_kohya(loras, clip_loras), transformer, clip, config


# ----------------------------------------------------------------------------- ComfyUI


def test_comfyui_loads_every_key_of_a_tiny_flux_file_onto_bfl_weights_with_the_trained_change(tiny_trained):
    transformer, clip, loras, clip_loras, state = tiny_trained
    weights = comfyui_flux_weight_shapes(_weight_shapes(transformer), transformer.inner_dim)
    clip_weights = _clip_weights(clip)
    key_map = {**comfyui_unet_key_map(weights), **comfyui_clip_key_map(clip_weights)}
    patches, not_loaded = comfyui_load_lora(state, key_map)
    assert not_loaded == []
    assert len(patches) == len({key.split(".")[0] for key in state})
    shapes = {**weights, **clip_weights}
    deltas = {target: comfyui_lora_diff(shapes[target], *patch) for target, patch in patches.items()}
    # the fused BFL weights carry each diffusers layer's change in its rows (q, k, v, then the MLP)
    h = transformer.inner_dim
    qkv = deltas["diffusion_model.double_blocks.1.img_attn.qkv.weight"]
    for part, rows in (("to_q", slice(0, h)), ("to_k", slice(h, 2 * h)), ("to_v", slice(2 * h, 3 * h))):
        assert torch.allclose(qkv[rows], loras[f"transformer_blocks.1.attn.{part}"].delta(), atol=1e-5), part
    linear1 = deltas["diffusion_model.single_blocks.1.linear1.weight"]
    assert torch.allclose(linear1[3 * h:], loras["single_transformer_blocks.1.proj_mlp"].delta(), atol=1e-5)
    assert torch.allclose(deltas["diffusion_model.single_blocks.0.linear2.weight"],
                          loras["single_transformer_blocks.0.proj_out"].delta(), atol=1e-5)
    clip_delta = deltas["clip_l.transformer.text_model.encoder.layers.1.self_attn.out_proj.weight"]
    assert torch.allclose(clip_delta, clip_loras["encoder.layers.1.self_attn.out_proj"].delta(), atol=1e-5)


def test_comfyui_loads_every_key_of_a_real_size_flux1_file_onto_weights_of_its_shape():
    state, transformer, clip, config = _real_size_state()
    weights = comfyui_flux_weight_shapes(_weight_shapes(transformer), transformer.inner_dim)
    clip_weights = _clip_weights(clip)
    patches, not_loaded = comfyui_load_lora(state, {**comfyui_unet_key_map(weights), **comfyui_clip_key_map(clip_weights)})
    assert not_loaded == []
    shapes = {**weights, **clip_weights}
    for target, (up, down, _) in patches.items():
        assert (up.shape[0], down.shape[1]) == shapes[target] and up.shape[1] == down.shape[0], target
    assert weights["diffusion_model.single_blocks.37.linear1.weight"] == (21504, 3072)  # 3·3072 + 12288 rows
    assert len(patches) == 19 * 10 + 38 * 3 + 12 * 6


def test_comfyui_copy_reports_keys_no_weight_claims():
    # The helper can fail: a T5 module and a layer BFL does not have are left unloaded.
    weights = comfyui_flux_weight_shapes({"transformer_blocks.0.attn.to_out.0.weight": (8, 8)}, 8)
    stray = {"lora_unet_double_blocks_0_img_attn_norm.lora_down.weight": torch.zeros(1, 8),
             "lora_te2_encoder_block_0_layer_0_SelfAttention_q.lora_down.weight": torch.zeros(1, 8),
             "lora_unet_double_blocks_0_img_attn_proj.lora_down.weight": torch.zeros(1, 8),
             "lora_unet_double_blocks_0_img_attn_proj.lora_up.weight": torch.zeros(8, 1)}
    _, not_loaded = comfyui_load_lora(stray, comfyui_unet_key_map(weights))
    assert sorted(not_loaded) == sorted(list(stray)[:2])


# ----------------------------------------------------------------------------- sd-scripts


def test_sd_scripts_lora_flux_builds_a_module_for_every_key_of_a_tiny_file_and_merges_the_trained_change(tiny_trained):
    transformer, clip, loras, clip_loras, state = tiny_trained
    config = dict(transformer.config)
    unexpected, missing, mismatched, network = sd_scripts_load(state, bfl_block_linears(config), clip_linears(clip))
    assert (unexpected, missing, mismatched) == ([], [], [])
    # sd-scripts' default network: every Linear of every block (10 per double, 3 per single), CLIP's six per layer
    assert len(network) == len(bfl_block_linears(config)) + len(clip_linears(clip))
    h = transformer.inner_dim
    delta = sd_scripts_merged_delta(state, "lora_unet_single_blocks_0_linear1")
    parts = ["attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"]
    assert torch.allclose(delta, torch.cat([loras[f"single_transformer_blocks.0.{p}"].delta() for p in parts]), atol=1e-5)
    assert delta.shape == (3 * h + 4 * h, h)
    te = sd_scripts_merged_delta(state, "lora_te1_text_model_encoder_layers_0_mlp_fc1")
    assert torch.allclose(te, clip_loras["encoder.layers.0.mlp.fc1"].delta(), atol=1e-5)


def test_sd_scripts_lora_flux_accepts_every_key_of_a_real_size_flux1_file():
    state, _, clip, config = _real_size_state()
    unexpected, missing, mismatched, network = sd_scripts_load(state, bfl_block_linears(config), clip_linears(clip))
    assert (unexpected, missing, mismatched) == ([], [], [])
    assert len(network) == 19 * 10 + 38 * 3 + 12 * 6
    assert network["lora_unet_double_blocks_18_txt_mod_lin"][:2] == (3072, 18432)


def test_sd_scripts_copy_reports_unexpected_keys_and_shape_mismatches():
    linears = {"single_blocks.0.linear2": (40, 8)}
    good = {"lora_unet_single_blocks_0_linear2.lora_down.weight": torch.zeros(2, 40),
            "lora_unet_single_blocks_0_linear2.lora_up.weight": torch.zeros(8, 2),
            "lora_unet_single_blocks_0_linear2.alpha": torch.tensor(1.0)}
    assert sd_scripts_load(good, linears, {})[:3] == ([], [], [])
    wrong = dict(good, **{"lora_unet_single_blocks_0_linear2.lora_up.weight": torch.zeros(9, 2),
                          "lora_unet_single_blocks_0_norm.lora_down.weight": torch.zeros(2, 8),
                          "lora_unet_single_blocks_0_norm.alpha": torch.tensor(1.0)})
    unexpected, _, mismatched, _ = sd_scripts_load(wrong, linears, {})
    assert unexpected == ["lora_unet_single_blocks_0_norm.lora_down.weight", "lora_unet_single_blocks_0_norm.alpha"]
    assert mismatched == ["lora_unet_single_blocks_0_linear2.lora_up.weight"]
