"""Dataset settings: aspect-ratio buckets, captions and augmentation."""

from __future__ import annotations

from ..schema import Setting
from .settings_model import is_tiny, model_family
from .settings_training import native_side


def _bucket_min(values):
    # sd-scripts' 256, but never above the model's own size (a small custom model trains at 64 px):
    # the limits follow the model as the resolution default does
    return min(256, native_side(values)[0])


def _bucket_max(values):
    if is_tiny(values):
        return 128
    return model_family(values).bucket_max_side


def _buckets_on(values):
    return None if values.get("buckets.enabled") else "buckets are off"


DATASET_SETTINGS = [
    Setting(
        "buckets.enabled", "bool", True, "Aspect-ratio buckets",
        "Train images near their own shape instead of cropping all to a square.",
        "Images are sorted into 'buckets' of sizes with about the same area but different shapes "
        "(portrait, landscape, square), and each is resized to the closest one. Less is cropped "
        "away, so the LoRA learns whole compositions. Turn off to crop everything to the resolution.",
        "basic", kohya="enable_bucket",
    ),
    Setting(
        "buckets.min_resolution", "int", 256, "Smallest bucket side",
        "No bucket side is shorter than this.",
        "The shortest side a bucket may have. Together with the largest side it limits how extreme "
        "an aspect ratio can be trained. Must be a multiple of the bucket step.",
        "basic", kohya="min_bucket_reso", minimum=8, model_default=_bucket_min, applies=_buckets_on,
    ),
    Setting(
        "buckets.max_resolution", "int", 1024, "Largest bucket side",
        "No bucket side is longer than this.",
        "The longest side a bucket may have. Must be a multiple of the bucket step.",
        "basic", kohya="max_bucket_reso", minimum=8, model_default=_bucket_max, applies=_buckets_on,
    ),
    Setting(
        "buckets.step", "int", 64, "Bucket step",
        "Bucket sides are multiples of this (64 is safe for every model).",
        "The grid that bucket widths and heights snap to. The model needs sides divisible by 8; 64 "
        "keeps the number of buckets small so batches fill up.",
        "basic", kohya="bucket_reso_steps", minimum=8,
    ),
    Setting(
        "buckets.no_upscale", "bool", False, "Don't upscale small images",
        "Images smaller than the resolution get a bucket of their own size instead of being enlarged.",
        "Normally small images are scaled up to the training area. With this on, an image smaller "
        "than that is trained at (about) its own size, which avoids blurry upscales.",
        "advanced", kohya="bucket_no_upscale", tier="expected", applies=_buckets_on,
    ),
    Setting(
        "captions.shuffle", "bool", False, "Shuffle caption tags",
        "Shuffle comma-separated tags every time an image is used.",
        "For tag-style captions ('1girl, red hair, smiling'), the order of tags changes each time, so "
        "the LoRA does not tie meaning to position. The first 'keep tokens' tags stay in place.",
        "advanced", kohya="shuffle_caption", tier="expected",
    ),
    Setting(
        "captions.keep_tokens", "int", 0, "Keep first N tags",
        "Tags at the start that shuffling never moves (e.g. your trigger word).",
        "The first N comma-separated tags always stay at the front, which keeps a trigger word "
        "strongly tied to the subject.",
        "advanced", kohya="keep_tokens", minimum=0, tier="expected",
        applies=lambda v: None if v.get("captions.shuffle") else "only with shuffled captions",
    ),
    Setting(
        "captions.dropout_rate", "float", 0.0, "Caption dropout",
        "Train with an empty caption this share of the time (0–1).",
        "Sometimes showing an image with no caption at all teaches the LoRA's look to apply even "
        "when the prompt does not mention it. 0.05–0.1 when used.",
        "advanced", kohya="caption_dropout_rate", minimum=0, maximum=1, tier="expected",
    ),
    Setting(
        "augment.flip", "bool", False, "Random horizontal flip",
        "Mirror images at random (doubles variety; not for asymmetric subjects).",
        "Each image is mirrored half of the time. Good for styles and symmetric subjects; avoid it "
        "when left and right matter (text, a parting on one side). Works with cached latents.",
        "advanced", kohya="flip_aug", tier="expected",
    ),
    Setting(
        "augment.random_crop", "bool", False, "Random crop",
        "Crop a random part instead of the centre each time; needs latents not cached.",
        "When an image is larger than its bucket, a different part of it is used each time instead "
        "of the centre. Because the crop changes every step it cannot be used with cached latents.",
        "advanced", kohya="random_crop", tier="expected",
    ),
]
