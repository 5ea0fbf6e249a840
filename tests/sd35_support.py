"""Test support for SD 3.5: the tiny model's weights in the layouts single-file users have.

diffusers only converts SAI/LDM files to its own layout (`convert_sd3_transformer_checkpoint_to_diffusers`,
`convert_ldm_vae_checkpoint`); these helpers go the other way, by the same tables, so the tiny
model can be written as an `sd3.5_large.safetensors`-style file (MMDiT under
`model.diffusion_model.`, VAE under `first_stage_model.`) and loaded back through diffusers.
"""

from __future__ import annotations

import torch

_BLOCK = {  # diffusers block path -> SAI block path (q/k/v handled apart: they fuse)
    "attn.to_out.0": "x_block.attn.proj", "attn.to_add_out": "context_block.attn.proj",
    "attn2.to_out.0": "x_block.attn2.proj", "norm1.linear": "x_block.adaLN_modulation.1",
    "norm1_context.linear": "context_block.adaLN_modulation.1",
    "ff.net.0.proj": "x_block.mlp.fc1", "ff.net.2": "x_block.mlp.fc2",
    "ff_context.net.0.proj": "context_block.mlp.fc1", "ff_context.net.2": "context_block.mlp.fc2",
    "attn.norm_q": "x_block.attn.ln_q", "attn.norm_k": "x_block.attn.ln_k",
    "attn.norm_added_q": "context_block.attn.ln_q", "attn.norm_added_k": "context_block.attn.ln_k",
    "attn2.norm_q": "x_block.attn2.ln_q", "attn2.norm_k": "x_block.attn2.ln_k",
}
_FUSED = {("attn.to_q", "attn.to_k", "attn.to_v"): "x_block.attn.qkv",
          ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"): "context_block.attn.qkv",
          ("attn2.to_q", "attn2.to_k", "attn2.to_v"): "x_block.attn2.qkv"}
_BASIC = {"pos_embed.pos_embed": "pos_embed", "pos_embed.proj.weight": "x_embedder.proj.weight",
          "pos_embed.proj.bias": "x_embedder.proj.bias", "context_embedder.weight": "context_embedder.weight",
          "context_embedder.bias": "context_embedder.bias", "proj_out.weight": "final_layer.linear.weight",
          "proj_out.bias": "final_layer.linear.bias"}
for _ours, _sai in (("timestep_embedder", "t_embedder"), ("text_embedder", "y_embedder")):
    for _i, _j in ((1, 0), (2, 2)):
        for _end in ("weight", "bias"):
            _BASIC[f"time_text_embed.{_ours}.linear_{_i}.{_end}"] = f"{_sai}.mlp.{_j}.{_end}"


def _swap(tensor: torch.Tensor) -> torch.Tensor:
    first, second = tensor.chunk(2, dim=0)
    return torch.cat([second, first], dim=0)


def sai_transformer_state(state: dict[str, torch.Tensor], num_layers: int, prefix: str = "model.diffusion_model.") -> dict:
    out = {prefix + sai: state[ours] for ours, sai in _BASIC.items()}
    out[prefix + "final_layer.adaLN_modulation.1.weight"] = _swap(state["norm_out.linear.weight"])
    out[prefix + "final_layer.adaLN_modulation.1.bias"] = _swap(state["norm_out.linear.bias"])
    for i in range(num_layers):
        for end in ("weight", "bias"):
            for parts, sai in _FUSED.items():
                keys = [f"transformer_blocks.{i}.{p}.{end}" for p in parts]
                if all(k in state for k in keys):
                    out[f"{prefix}joint_blocks.{i}.{sai}.{end}"] = torch.cat([state[k] for k in keys])
            for ours, sai in _BLOCK.items():
                key = f"transformer_blocks.{i}.{ours}.{end}"
                if key in state:
                    value = state[key]
                    if ours == "norm1_context.linear" and i == num_layers - 1:
                        value = _swap(value)  # the pre-only text modulation is stored shift first
                    out[f"{prefix}joint_blocks.{i}.{sai}.{end}"] = value
    return out


def ldm_vae_state(state: dict[str, torch.Tensor], blocks: int, prefix: str = "first_stage_model.") -> dict:
    """diffusers AutoencoderKL weights under the LDM names `convert_ldm_vae_checkpoint` reads."""
    out = {}
    for key, value in state.items():
        name = key.replace("conv_norm_out", "norm_out").replace("conv_shortcut", "nin_shortcut")
        for i in range(blocks):
            name = name.replace(f"encoder.down_blocks.{i}.resnets", f"encoder.down.{i}.block")
            name = name.replace(f"encoder.down_blocks.{i}.downsamplers.0", f"encoder.down.{i}.downsample")
            name = name.replace(f"decoder.up_blocks.{i}.resnets", f"decoder.up.{blocks - 1 - i}.block")
            name = name.replace(f"decoder.up_blocks.{i}.upsamplers.0", f"decoder.up.{blocks - 1 - i}.upsample")
        for i in range(2):
            name = name.replace(f"mid_block.resnets.{i}", f"mid.block_{i + 1}")
        if "mid_block.attentions.0" in name:
            name = (name.replace("mid_block.attentions.0", "mid.attn_1").replace("group_norm", "norm")
                    .replace("to_q", "q").replace("to_k", "k").replace("to_v", "v").replace("to_out.0", "proj_out"))
            if value.ndim == 2:
                value = value[:, :, None, None]  # LDM keeps the attention projections as 1×1 convolutions
        out[prefix + name] = value
    return out
