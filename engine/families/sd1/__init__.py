"""SD 1.x: one CLIP-L text encoder, ε-prediction, 512 px."""

from pathlib import Path

from engine.families.base import ModelFamily
from engine.families.common import tiny_sd
from engine.families.common.sd_reference import CLIP_L, SD_UNET
from engine.families.kohya_names import KohyaNames

SD1 = ModelFamily(
    name="sd1",
    label="SD 1.x",
    naming="sd1",
    prediction_type="epsilon",
    base_model_version="sd_v1",
    architecture="stable-diffusion-v1",
    implementation="diffusers",
    config_repo="stable-diffusion-v1-5/stable-diffusion-v1-5",
    native_side=512,
    text_encoder_components=("text_encoder",),
    metadata_prefixes=("sd_v1", "stable-diffusion-v1"),
    pipeline_class="StableDiffusionPipeline",
    reference_configs={"unet": {**SD_UNET, "cross_attention_dim": 768}, "text_encoders": [CLIP_L]},
    menu_group="sd",
    kohya=KohyaNames(scripts=("train_network",)),  # SD 2.x uses the same script with --v2
    quick_picks=(("sd15", "stable-diffusion-v1-5/stable-diffusion-v1-5"), ("builtin-tiny-sd1", "builtin-tiny-sd1")),
    vram_reference_file=Path(__file__).parent / "vram_reference.json",
    tiny_model=tiny_sd.tiny_sd_model("builtin-tiny-sd1", "sd1", 1001, "SD 1.x-shaped (CLIP-L style text encoder, epsilon)",
                                     tiny_sd.build_sd1, second_tokenizer=None),
)
FAMILIES = (SD1,)
