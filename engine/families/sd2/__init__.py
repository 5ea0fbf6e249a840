"""SD 2.x: one OpenCLIP-H text encoder; the 512 px base predicts ε, the 768 px model v."""

from dataclasses import replace
from pathlib import Path

from engine.families.base import ModelFamily
from engine.families.common import tiny_sd
from engine.families.common.sd_reference import SD_UNET

# diffusers' SD 2.x text encoder keeps 23 of OpenCLIP-H's 24 layers
_REFERENCE = {"unet": {**SD_UNET, "cross_attention_dim": 1024},
              "text_encoders": [{"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 23}]}

SD2 = ModelFamily(
    name="sd2",
    label="SD 2.x",
    naming="sd2",
    prediction_type="epsilon",
    base_model_version="sd_v2",
    architecture="stable-diffusion-v2-512",
    implementation="diffusers",
    config_repo="stabilityai/stable-diffusion-2-1-base",
    native_side=512,
    text_encoder_components=("text_encoder",),
    metadata_prefixes=("sd_v2", "stable-diffusion-v2"),
    pipeline_class="StableDiffusionPipeline",
    reference_configs=_REFERENCE,
    vram_reference_file=Path(__file__).parent / "vram_reference.json",
    menu_group="sd",
    quick_picks=(("sd21-base", "stabilityai/stable-diffusion-2-1-base"),),
)

# The 768 px model differs only in what it predicts and what it is called.
SD2_V = replace(
    SD2,
    name="sd2-v",
    label="SD 2.x v-prediction",
    prediction_type="v_prediction",
    base_model_version="sd_v2_v",
    architecture="stable-diffusion-v2-768-v",
    config_repo="stabilityai/stable-diffusion-2-1",
    native_side=768,
    quick_picks=(("sd21-768-v", "stabilityai/stable-diffusion-2-1"),),
    tiny_model=tiny_sd.tiny_sd_model("builtin-tiny-sd2-v", "sd2-v", 1002,
                                     "SD 2.x-shaped (OpenCLIP style text encoder, v-prediction)",
                                     tiny_sd.build_sd2_v, second_tokenizer="tokenizer"),
)
FAMILIES = (SD2, SD2_V)
