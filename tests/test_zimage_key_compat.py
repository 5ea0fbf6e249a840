"""Our Z-Image LoRA files read by ComfyUI's key handling, every key accounted for, at tiny and real size.

ComfyUI cannot run here (it needs its whole runtime), so the helpers below are faithful copies of
the logic that decides which keys load where, written from Comfy-Org/ComfyUI:

* `comfy/utils.py` `z_image_to_diffusers` (@ 09708eae709a992a5684bed3595ce4d07e705b4e): diffusers
  names → ComfyUI's native Z-Image (Lumina2 NextDiT) weights; q/k/v are row slices (offset 0, dim,
  2·dim; length dim) of the fused `attention.qkv`, `to_out.0` is `attention.out`, the feed-forward
  keeps its names; the refiners count `n_refiner_layers` each.
* `comfy/lora.py` (@ 17358c8f73b581a0d22facc3c385822f09b8bfb1) `model_lora_keys_unet`: the generic
  entries (`lora_unet_…`, `diffusion_model.<path>`) and the `Lumina2` branch, which answers
  `diffusion_model.<diffusers name>`, `transformer.<…>`, `lycoris_…` and the bare name; `load_lora`
  (`.alpha`, then each adapter's `load`, then "lora key not loaded" for what is left);
  `calculate_weight` (a patch with an offset narrows the weight first).
* `comfy/weight_adapter/lora.py` (@ 6f98b150e065f1ffc788558574a887835068bd40) `LoRAAdapter.load`:
  `<x>.lora_up/down.weight`, `<x>_lora.up/down.weight`, `<x>.lora_B/lora_A.weight`, … ; the patch is
  `up @ down` reshaped to the (narrowed) weight, × alpha / rows of down.

The model shapes are real: the tiny transformer's weights and, at full size, the published
Z-Image-Turbo config built on the meta device.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from engine.families.zimage import reference as ref  # noqa: E402
from engine.families.zimage.lora_io import default_targets, weights_from_state, zimage_state_dict  # noqa: E402
from engine.families.zimage.tiny import TRANSFORMER_CONFIG  # noqa: E402


# ----------------------------------------------------------------------------- ComfyUI (faithful copy)

def comfyui_z_image_to_diffusers(config: dict, output_prefix: str = "") -> dict:
    """`z_image_to_diffusers`: diffusers key → native key, or (native key, (dim, start, length))."""
    n_layers, hidden = config.get("n_layers", 0), config.get("dim", 0)
    n_refiner = config.get("n_refiner_layers", 2)
    key_map: dict = {}

    def add_block(prefix_from: str, prefix_to: str, adaln: bool = True) -> None:
        for end in ("weight", "bias"):
            qkv = f"{prefix_to}.attention.qkv.{end}"
            for index, name in enumerate(("to_q", "to_k", "to_v")):
                key_map[f"{prefix_from}.attention.{name}.{end}"] = (qkv, (0, index * hidden, hidden))
        block = {"attention.norm_q.weight": "attention.q_norm.weight", "attention.norm_k.weight": "attention.k_norm.weight",
                 "attention.to_out.0.weight": "attention.out.weight", "attention.to_out.0.bias": "attention.out.bias",
                 **{f"{n}.weight": f"{n}.weight" for n in ("attention_norm1", "attention_norm2", "feed_forward.w1",
                                                          "feed_forward.w2", "feed_forward.w3", "ffn_norm1", "ffn_norm2")}}
        if adaln:
            block.update({"adaLN_modulation.0.weight": "adaLN_modulation.0.weight",
                          "adaLN_modulation.0.bias": "adaLN_modulation.0.bias"})
        for key, value in block.items():
            key_map[f"{prefix_from}.{key}"] = f"{prefix_to}.{value}"

    for i in range(n_layers):
        add_block(f"layers.{i}", f"{output_prefix}layers.{i}")
    for i in range(n_refiner):
        add_block(f"context_refiner.{i}", f"{output_prefix}context_refiner.{i}")
    for i in range(n_refiner):
        add_block(f"noise_refiner.{i}", f"{output_prefix}noise_refiner.{i}")
    for native, diffusers in (("final_layer.linear.weight", "all_final_layer.2-1.linear.weight"),
                              ("final_layer.linear.bias", "all_final_layer.2-1.linear.bias"),
                              ("final_layer.adaLN_modulation.1.weight", "all_final_layer.2-1.adaLN_modulation.1.weight"),
                              ("final_layer.adaLN_modulation.1.bias", "all_final_layer.2-1.adaLN_modulation.1.bias"),
                              ("x_embedder.weight", "all_x_embedder.2-1.weight"), ("x_embedder.bias", "all_x_embedder.2-1.bias"),
                              ("x_pad_token", "x_pad_token"), ("cap_embedder.0.weight", "cap_embedder.0.weight"),
                              ("cap_embedder.1.weight", "cap_embedder.1.weight"), ("cap_embedder.1.bias", "cap_embedder.1.bias"),
                              ("cap_pad_token", "cap_pad_token"), ("t_embedder.mlp.0.weight", "t_embedder.mlp.0.weight"),
                              ("t_embedder.mlp.0.bias", "t_embedder.mlp.0.bias"), ("t_embedder.mlp.2.weight", "t_embedder.mlp.2.weight"),
                              ("t_embedder.mlp.2.bias", "t_embedder.mlp.2.bias")):
        key_map[diffusers] = f"{output_prefix}{native}"
    return key_map


def comfyui_native_shapes(diffusers_shapes: dict[str, tuple[int, ...]], config: dict) -> dict[str, tuple[int, ...]]:
    """The weights ComfyUI's Z-Image model holds (`diffusion_model.` keys), folded from a diffusers
    transformer's shapes with the map above: a fused weight is as long as its slices reach."""
    rows: dict[str, int] = {}
    rest: dict[str, tuple[int, ...]] = {}
    for key, target in comfyui_z_image_to_diffusers(config, "diffusion_model.").items():
        if key not in diffusers_shapes:
            continue
        shape = diffusers_shapes[key]
        if isinstance(target, tuple):
            name, (_, start, length) = target
            assert shape[0] == length, f"{key}: {shape[0]} rows, the map slices {length}"
            rows[name] = max(rows.get(name, 0), start + length)
            rest[name] = shape[1:]
        else:
            rest[target] = shape
    return {name: ((rows[name], *rest[name]) if name in rows else rest[name]) for name in rest}


def comfyui_lumina2_key_map(native: dict[str, tuple[int, ...]], config: dict) -> dict:
    """`model_lora_keys_unet` for a Lumina2 (Z-Image) model: the generic entries, then its branch.
    (Its `unet_to_diffusers` step adds nothing: a NextDiT config has no UNet block counts.)"""
    key_map: dict = {}
    for key in native:
        if key.endswith(".weight"):
            key_map["lora_unet_" + key[len("diffusion_model."):-len(".weight")].replace(".", "_")] = key
            key_map[key[:-len(".weight")]] = key
        else:
            key_map[key] = key
    for key, target in comfyui_z_image_to_diffusers(config, "diffusion_model.").items():
        if key.endswith(".weight"):
            lora_key = key[:-len(".weight")]
            for alias in (f"diffusion_model.{lora_key}", f"transformer.{lora_key}",
                          "lycoris_" + lora_key.replace(".", "_"), lora_key):
                key_map[alias] = target
    return key_map


_ADAPTER_FORMS = ((".lora_up.weight", ".lora_down.weight"), ("_lora.up.weight", "_lora.down.weight"),
                  (".lora_B.weight", ".lora_A.weight"), (".lora.up.weight", ".lora.down.weight"),
                  (".lora_B", ".lora_A"), (".lora_linear_layer.up.weight", ".lora_linear_layer.down.weight"),
                  (".lora_B.default.weight", ".lora_A.default.weight"))


def comfyui_load_lora(lora: dict, key_map: dict) -> tuple[dict, list[str]]:
    """`load_lora` with `LoRAAdapter.load`: (target → (up, down, alpha)), and the keys left unloaded."""
    patches, loaded = {}, set()
    for name, target in key_map.items():
        alpha = None
        if f"{name}.alpha" in lora:
            alpha = lora[f"{name}.alpha"].item()
            loaded.add(f"{name}.alpha")
        for up_form, down_form in _ADAPTER_FORMS:
            if name + up_form in lora:
                patches[target if isinstance(target, tuple) else (target, None)] = (
                    lora[name + up_form], lora[name + down_form], alpha)
                loaded.update((name + up_form, name + down_form))
                break
    return patches, [key for key in lora if key not in loaded]


def comfyui_apply(weight: torch.Tensor, offset, up, down, alpha) -> torch.Tensor:
    """`calculate_weight` with a "lora" patch: narrow by the offset, add (up @ down) × alpha / rank."""
    target = weight.narrow(offset[0], offset[1], offset[2]) if offset is not None else weight
    scale = alpha / down.shape[0] if alpha is not None else 1.0
    target += (torch.mm(up.flatten(start_dim=1).float(), down.flatten(start_dim=1).float()) * scale).reshape(target.shape)
    return weight


# ----------------------------------------------------------------------------- our files

def random_weights(transformer, rank: int = 4, seed: int = 0) -> dict:
    """The neutral structure for every default target, with non-zero up matrices and alpha ≠ rank."""
    generator = torch.Generator().manual_seed(seed)
    modules = dict(transformer.named_modules())
    weights = {}
    for path in default_targets(transformer):
        linear = modules[path]
        weights[path] = {"lora_down.weight": torch.randn(rank, linear.in_features, generator=generator) * 0.1,
                         "lora_up.weight": torch.randn(linear.out_features, rank, generator=generator) * 0.1,
                         "alpha": torch.tensor(rank / 2.0)}
    return {"unet": weights}


def _check_every_key_loads(transformer, config: dict) -> tuple[dict, dict]:
    weights = random_weights(transformer)
    state = zimage_state_dict(weights)
    diffusers_shapes = {key: tuple(value.shape) for key, value in transformer.state_dict().items()}
    native = comfyui_native_shapes(diffusers_shapes, config)
    patches, unloaded = comfyui_load_lora(state, comfyui_lumina2_key_map(native, config))
    assert unloaded == [], f"ComfyUI would log 'lora key not loaded' for {unloaded[:5]}"
    assert len(patches) == len(weights["unet"]) == len(state) // 3
    for (target, offset), (up, down, _) in patches.items():
        assert target in native, f"{target} is no weight of ComfyUI's Z-Image model"
        rows = offset[2] if offset is not None else native[target][0]
        assert (up.shape[0], down.shape[1]) == (rows, native[target][1]), f"{target}: LoRA does not fit the weight"
    return state, patches


def test_every_key_of_a_tiny_file_loads_in_comfyui_and_patches_the_same_weights(model_cache):
    from diffusers import ZImageTransformer2DModel

    torch.manual_seed(0)
    transformer = ZImageTransformer2DModel(**TRANSFORMER_CONFIG)
    config = dict(transformer.config)
    state, patches = _check_every_key_loads(transformer, config)
    # Indices above 0 are exercised in every block list.
    assert {"diffusion_model.layers.1.attention.to_v.lora_A.weight", "diffusion_model.noise_refiner.1.feed_forward.w2.alpha",
            "diffusion_model.context_refiner.1.attention.to_out.0.lora_B.weight"} <= set(state)
    # The patched native weights equal diffusers' weights plus the same LoRA, slice by slice.
    diffusers_state = {k: v.float().clone() for k, v in transformer.state_dict().items()}
    modules = weights_from_state(state)
    key_map = comfyui_z_image_to_diffusers(config, "diffusion_model.")
    native = {}
    for key, target in key_map.items():
        if key in diffusers_state and key.endswith(".weight"):
            name = target[0] if isinstance(target, tuple) else target
            native.setdefault(name, []).append((target[1] if isinstance(target, tuple) else None, diffusers_state[key]))
    fused = {name: torch.cat([t for _, t in sorted(parts, key=lambda p: p[0][1] if p[0] else 0)])
             for name, parts in native.items()}
    for (target, offset), (up, down, alpha) in patches.items():
        comfyui_apply(fused[target], offset, up, down, alpha)
    for path, tensors in modules.items():
        expected = diffusers_state[f"{path}.weight"] + (tensors["lora_up.weight"] @ tensors["lora_down.weight"]) * (
            float(tensors["alpha"]) / tensors["lora_down.weight"].shape[0])
        target = key_map[f"{path}.weight"]
        if isinstance(target, tuple):
            got = fused[target[0]].narrow(*target[1])
        else:
            got = fused[target]
        torch.testing.assert_close(got, expected)


def test_every_key_of_a_real_size_file_loads_in_comfyui():
    from accelerate import init_empty_weights
    from diffusers import ZImageTransformer2DModel

    config = {k: v for k, v in ref.TRANSFORMER_CONFIG.items() if not k.startswith("_")}
    with init_empty_weights():
        transformer = ZImageTransformer2DModel(**config)
    assert len(default_targets(transformer)) == (30 + 2 + 2) * 7
    _check_every_key_loads(transformer, config)
