"""SDXL: two text encoders (CLIP-L and OpenCLIP-bigG, pooled output), size conditioning, 1024 px."""

from pathlib import Path

from engine.families.base import ModelFamily
from engine.families.kohya_names import KohyaNames
from engine.families.common import tiny_sd
from engine.families.common.sd_reference import CLIP_L

SDXL = ModelFamily(
    name="sdxl",
    label="SDXL",
    naming="sdxl",
    prediction_type="epsilon",
    base_model_version="sdxl_base_v1-0",
    architecture="stable-diffusion-xl-v1-base",
    # sd-scripts marks SDXL LoRAs as Stability's (SGM) implementation, SD1/SD2 ones as diffusers'.
    implementation="https://github.com/Stability-AI/generative-models",
    config_repo="stabilityai/stable-diffusion-xl-base-1.0",
    native_side=1024,
    text_encoder_components=("text_encoder", "text_encoder_2"),
    metadata_prefixes=("sdxl", "stable-diffusion-xl"),
    pipeline_class="StableDiffusionXLPipeline",
    reference_configs={
        "unet": {
            "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
            "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
            "block_out_channels": [320, 640, 1280],
            "layers_per_block": 2,
            "transformer_layers_per_block": [1, 2, 10],
            "cross_attention_dim": 2048,
        },
        "text_encoders": [CLIP_L, {"hidden_size": 1280, "intermediate_size": 5120, "num_hidden_layers": 32}],
    },
    bucket_max_side=2048,
    size_conditioning=True,
    ldm_unet_names=True,
    marks_v_in_version=False,
    text_conditioning="clip_pair_pooled",
    menu_group="sd",
    kohya=KohyaNames(scripts=("sdxl_train_network",), gui_keys={"sdxl": True}),
    quick_picks=(("sdxl-base", "stabilityai/stable-diffusion-xl-base-1.0"), ("builtin-tiny-sdxl", "builtin-tiny-sdxl")),
    vram_reference_file=Path(__file__).parent / "vram_reference.json",
    tiny_model=tiny_sd.tiny_sd_model("builtin-tiny-sdxl", "sdxl", 1003, "SDXL-shaped (two text encoders, size conditioning)",
                                     tiny_sd.build_sdxl, second_tokenizer="tokenizer_2"),
)
FAMILIES = (SDXL,)
