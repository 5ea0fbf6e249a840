"""The SD-shaped built-in tiny models (SD 1.x, SD 2.x v-prediction, SDXL), shared by the SD families.

Each has the structure of its family (the same component classes, block types, attention layout
and conditioning) with small widths and seeded random weights, so the demo, the tests and CPU users
run every code path with no download. The VAE downsamples by 4 (not 8), so a 64 px image becomes a
16×16 latent and a training step is fast. Each SD family declares its model with `tiny_sd_model`;
the cache and build-in-place logic is generic (`engine.models.tiny`).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from engine.models.tiny import TinyModel
from engine.models.tokenizer import END_TOKEN, MAX_LENGTH, clip_vocab_and_merges, write_clip_tokenizer

BUILDER_VERSION = 1  # bump when a builder changes, so cached folders built by older code are rebuilt


def tiny_sd_model(name: str, family: str, seed: int, description: str, builder, second_tokenizer: str | None) -> TinyModel:
    """A built-in SD-shaped model: `builder(seed)` makes the pipeline; `second_tokenizer` is the
    tokenizer folder that pads with "!" (OpenCLIP style), if any."""
    return TinyModel(name=name, family=family, seed=seed, description=description, builder_version=BUILDER_VERSION,
                     build=partial(_seeded, builder, seed), finish=partial(_finish_tokenizers, second_tokenizer))


def _seeded(builder, seed: int):
    import torch

    with torch.random.fork_rng(devices=[]):
        return builder(seed)


def _finish_tokenizers(second: str | None, folder: Path) -> None:
    # save_pretrained wrote tokenizer.json; add vocab.json/merges.txt and the 77-token length.
    write_clip_tokenizer(folder / "tokenizer", pad_token=END_TOKEN)
    if second is not None:
        write_clip_tokenizer(folder / second, pad_token="!")


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


def build_sd1(seed: int):
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


def build_sd2_v(seed: int):
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


def build_sdxl(seed: int):
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
