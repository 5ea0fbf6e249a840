"""Built-in tiny Stable-Diffusion-shaped models: real diffusers pipelines, small enough for a CPU.

Each model has the structure of its family (the same component classes, block types, attention
layout and conditioning as SD 1.x, SD 2.x v-prediction or SDXL) with small widths and seeded random
weights. They let the demo, the tests and CPU users run every code path with no download. The VAE
downsamples by 4 (not 8), so a 64 px image becomes a 16×16 latent and a training step is fast.

A model is built on first use into the cache (`<cache root>/models/<name>`) through a temporary
folder renamed into place, so a crash never leaves a half-written model, and reused afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.models.tokenizer import END_TOKEN, MAX_LENGTH, clip_vocab_and_merges, write_clip_tokenizer

# Bump when a builder changes, so cached folders built by older code are rebuilt.
BUILDER_VERSION = 1
STAMP_FILE = "tui_lora_builtin.json"


@dataclass(frozen=True)
class BuiltinSpec:
    name: str
    family: str  # "sd1" | "sd2-v" | "sdxl"
    seed: int
    description: str


_SPECS = {
    spec.name: spec
    for spec in (
        BuiltinSpec("builtin-tiny-sd1", "sd1", 1001, "SD 1.x-shaped (CLIP-L style text encoder, epsilon)"),
        BuiltinSpec("builtin-tiny-sd2-v", "sd2-v", 1002, "SD 2.x-shaped (OpenCLIP style text encoder, v-prediction)"),
        BuiltinSpec("builtin-tiny-sdxl", "sdxl", 1003, "SDXL-shaped (two text encoders, size conditioning)"),
        BuiltinSpec("builtin-tiny-flux1", "flux1", 1004, "FLUX.1 [dev]-shaped (CLIP-L + T5, flow matching)"),
    )
}

BUILTIN_MODELS: tuple[str, ...] = tuple(_SPECS)


def builtin_family(name: str) -> str:
    """The family a built-in model belongs to (known without building it)."""
    return _SPECS[name].family


def default_cache_root() -> Path:
    """tui-lora's cache folder: `$TUI_LORA_CACHE`, else `$XDG_CACHE_HOME/tui-lora`, else `~/.cache/tui-lora`."""
    override = os.environ.get("TUI_LORA_CACHE")
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "tui-lora"


def builtin_model_dir(name: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where a built-in model lives (built or not). `cache_dir` replaces the cache root."""
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_root()
    return root / "models" / name


def ensure_builtin_model(name: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the diffusers folder of a built-in model, building it first if needed."""
    if name not in _SPECS:
        raise KeyError(f"unknown built-in model {name!r}; known: {', '.join(BUILTIN_MODELS)}")
    if _SPECS[name].family == "flux1":  # its own builder: two tokenizers of different kinds
        from engine.families.flux1.tiny import ensure_tiny_flux_model

        return ensure_tiny_flux_model(cache_dir)
    target = builtin_model_dir(name, cache_dir)
    expected = _stamp(name)
    if _read_stamp(target) == expected:
        return target

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    os.chmod(staging, 0o755)  # mkdtemp makes it private; the model folder is an ordinary one
    try:
        build_pipeline(name).save_pretrained(str(staging), safe_serialization=True)
        _finish_tokenizers(name, staging)
        _nest_text_encoder_keys(staging / "text_encoder")
        (staging / STAMP_FILE).write_text(json.dumps(expected, indent=2) + "\n", encoding="utf-8")
        _move_into_place(staging, target, expected)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _stamp(name: str) -> dict[str, Any]:
    import transformers

    # The transformers version is part of the stamp: 5.6 changed CLIPTextModel's saved key names,
    # so a folder written by one side of that change may not load on the other.
    return {
        "name": name,
        "builder_version": BUILDER_VERSION,
        "seed": _SPECS[name].seed,
        "transformers": transformers.__version__,
    }


def _read_stamp(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / STAMP_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _move_into_place(staging: Path, target: Path, expected: dict[str, Any]) -> None:
    """Rename the finished build onto `target`; a concurrent builder's finished copy wins ties."""
    if target.exists():
        if _read_stamp(target) == expected:
            return  # another process finished first
        # rename() may replace an empty folder, so move the old build onto a fresh one, then delete it
        stale = Path(tempfile.mkdtemp(prefix=f".{target.name}-stale-", dir=target.parent))
        os.replace(target, stale)
        shutil.rmtree(stale, ignore_errors=True)
    try:
        os.replace(staging, target)
    except OSError:
        if _read_stamp(target) != expected:
            raise


def _finish_tokenizers(name: str, folder: Path) -> None:
    # save_pretrained wrote tokenizer.json; add vocab.json/merges.txt and the 77-token length.
    write_clip_tokenizer(folder / "tokenizer", pad_token=END_TOKEN)
    if name != "builtin-tiny-sd1":
        second = "tokenizer_2" if name == "builtin-tiny-sdxl" else "tokenizer"
        write_clip_tokenizer(folder / second, pad_token="!")


def _nest_text_encoder_keys(folder: Path) -> None:
    """Save CLIPTextModel weights under `text_model.…`, the layout of real SD repos.

    transformers ≥ 5.6 saves a flattened CLIPTextModel (no `text_model.` prefix) that older
    versions cannot read; it still loads the nested layout, so that is what we write.
    """
    from safetensors.torch import load_file, save_file

    weights = folder / "model.safetensors"
    tensors = load_file(str(weights))
    if all(key.startswith("text_model.") for key in tensors):
        return
    nested = {key if key.startswith("text_model.") else f"text_model.{key}": value for key, value in tensors.items()}
    save_file(nested, str(weights), metadata={"format": "pt"})


# ----------------------------------------------------------------------------- builders


def build_pipeline(name: str):
    """Build the in-memory diffusers pipeline of a built-in model (deterministic for a name)."""
    import torch

    spec = _SPECS[name]
    if spec.family == "flux1":
        from engine.families.flux1.tiny import build_flux_pipeline

        return build_flux_pipeline()
    with torch.random.fork_rng(devices=[]):
        if spec.family == "sd1":
            return _build_sd1(spec.seed)
        if spec.family == "sd2-v":
            return _build_sd2_v(spec.seed)
        return _build_sdxl(spec.seed)


def _text_config(*, hidden: int, act: str, pad_token: str, projection: int, layers: int = 4):
    from transformers import CLIPTextConfig

    vocab, _ = clip_vocab_and_merges()
    return CLIPTextConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        intermediate_size=hidden * 4,
        projection_dim=projection,
        num_hidden_layers=layers,
        num_attention_heads=4,
        max_position_embeddings=MAX_LENGTH,
        hidden_act=act,
        pad_token_id=vocab[pad_token],
        bos_token_id=vocab["<|startoftext|>"],
        eos_token_id=vocab[END_TOKEN],
    )


def _vae(scaling_factor: float, force_upcast: bool):
    from diffusers import AutoencoderKL

    # Three blocks: two downsamplings, so latents are 1/4 of the image side.
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(32, 32, 64),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=16,
        sample_size=64,
        scaling_factor=scaling_factor,
        force_upcast=force_upcast,
    )


def _scheduler(prediction_type: str):
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        prediction_type=prediction_type,
        steps_offset=1,
        timestep_spacing="leading",
    )


def _sd_pipeline(unet, vae, text_encoder, tokenizer, scheduler):
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


# The UNet layout both SD 1.x- and SD 2.x-shaped tiny models share (the text side differs).
_SD_UNET = dict(
    sample_size=16,
    in_channels=4,
    out_channels=4,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    block_out_channels=(32, 64, 64),
    layers_per_block=2,
    norm_num_groups=16,
)


def _build_sd1(seed: int):
    import torch
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel

    from engine.models.tokenizer import build_clip_tokenizer

    torch.manual_seed(seed)
    # CLIP-L style: quick_gelu activation, pads with the end token.
    text_encoder = CLIPTextModel(_text_config(hidden=32, act="quick_gelu", pad_token=END_TOKEN, projection=32))
    unet = UNet2DConditionModel(**_SD_UNET, cross_attention_dim=32, attention_head_dim=4)
    vae = _vae(scaling_factor=0.18215, force_upcast=False)
    return _sd_pipeline(unet, vae, text_encoder, build_clip_tokenizer(END_TOKEN), _scheduler("epsilon"))


def _build_sd2_v(seed: int):
    import torch
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel

    from engine.models.tokenizer import build_clip_tokenizer

    torch.manual_seed(seed)
    # OpenCLIP as diffusers/transformers represent SD 2.x: CLIPTextModel with plain gelu, pads with "!".
    text_encoder = CLIPTextModel(_text_config(hidden=48, act="gelu", pad_token="!", projection=48))
    unet = UNet2DConditionModel(
        **_SD_UNET,
        cross_attention_dim=48,
        attention_head_dim=(2, 4, 4),
        use_linear_projection=True,
        upcast_attention=True,
    )
    vae = _vae(scaling_factor=0.18215, force_upcast=False)
    return _sd_pipeline(unet, vae, text_encoder, build_clip_tokenizer("!"), _scheduler("v_prediction"))


def _build_sdxl(seed: int):
    import torch
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    from engine.models.tokenizer import build_clip_tokenizer

    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(_text_config(hidden=32, act="quick_gelu", pad_token=END_TOKEN, projection=32))
    text_encoder_2 = CLIPTextModelWithProjection(_text_config(hidden=64, act="gelu", pad_token="!", projection=64))
    time_embed_dim = 8
    unet = UNet2DConditionModel(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(32, 64, 64),
        layers_per_block=2,
        transformer_layers_per_block=(1, 1, 2),
        norm_num_groups=16,
        cross_attention_dim=32 + 64,  # both encoders' hidden states, concatenated
        attention_head_dim=(2, 4, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=time_embed_dim,
        # pooled text embedding + six size/crop numbers, each embedded
        projection_class_embeddings_input_dim=64 + 6 * time_embed_dim,
    )
    vae = _vae(scaling_factor=0.13025, force_upcast=True)
    return StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=build_clip_tokenizer(END_TOKEN),
        tokenizer_2=build_clip_tokenizer("!"),
        unet=unet,
        scheduler=_scheduler("epsilon"),
        force_zeros_for_empty_prompt=True,
    )
