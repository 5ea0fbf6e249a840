"""Buckets, captions, augmentation, sampling, logging, hardware, metadata and overwrite."""

from __future__ import annotations

from .schema import Setting
from .settings_model import is_tiny, model_family

SAMPLERS = ("euler", "euler_a", "ddim", "dpmpp_2m", "heun", "lms", "pndm")


def _bucket_min(values):
    return 64 if is_tiny(values) else 256


def _bucket_max(values):
    if is_tiny(values):
        return 128
    return model_family(values).bucket_max_side


def _buckets_on(values):
    return None if values.get("buckets.enabled") else "buckets are off"


def _has_prompts(values):
    return None if values.get("sampling.prompts") else "add sample prompts first"


EXTRA_SETTINGS = [
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
    Setting(
        "sampling.prompts", "prompts", [], "Sample prompts",
        "Prompts to render while training, one per line; options with --n, --s, --l, --d, --w, --h.",
        "Images made from these prompts during training show what the LoRA is learning. In the "
        "YAML each entry is a string or a mapping with prompt, negative, seed, steps, cfg, width and "
        "height. In the wizard, one prompt per line; add ' --n text' for a negative prompt, "
        "' --d 42' seed, ' --s 20' steps, ' --l 7' guidance scale, ' --w 512 --h 512' size.",
        "advanced", kohya="sample_prompts", ss_extra=False, tier="expected",
    ),
    Setting(
        "sampling.every_n_epochs", "int", None, "Sample every N epochs",
        "Render the sample prompts at the end of every N-th epoch.",
        "Images are written to the output folder's 'sample' folder with the epoch in their name.",
        "advanced", kohya="sample_every_n_epochs", optional=True, minimum=1, tier="expected",
        applies=_has_prompts,
    ),
    Setting(
        "sampling.every_n_steps", "int", None, "Sample every N steps",
        "Render the sample prompts every N steps.",
        "Images are written with the step number in their name. Sampling takes time: keep N large "
        "on long runs.",
        "advanced", kohya="sample_every_n_steps", optional=True, minimum=1, tier="expected",
        applies=_has_prompts,
    ),
    Setting(
        "sampling.sampler", "choice", "euler_a", "Sampler",
        "Which sampler renders the samples.",
        "euler_a (ancestral) is quick and varied; euler and dpmpp_2m are deterministic and sharp "
        "in few steps; ddim is the classic; heun, lms and pndm are also available.",
        "advanced", kohya="sample_sampler", choices=SAMPLERS, tier="expected", applies=_has_prompts,
    ),
    Setting(
        "logging.log_with", "choice", "tensorboard", "Log with",
        "tensorboard, wandb (needs the wandb extra) or all; needs a logging folder.",
        "Where training curves go when a logging folder is set. TensorBoard writes files you open "
        "with 'tensorboard --logdir'; Weights & Biases uploads them (needs the 'wandb' package and a "
        "login).",
        "advanced", kohya="log_with", choices=("tensorboard", "wandb", "all"), tier="expected",
        applies=lambda v: None if v.get("folders.logging") else "set a logging folder first",
    ),
    Setting(
        "hardware.num_processes", "int", 1, "GPUs (processes)",
        "Train on this many GPUs at once through accelerate.",
        "Each process takes its share of the batches on its own GPU; the batch size is per "
        "process, so the effective batch is batch size × processes.",
        "advanced", kohya="num_processes", minimum=1, tier="expected",
    ),
    Setting(
        "hardware.gpu_ids", "int_list", [], "GPU ids",
        "Which GPUs to use (e.g. 0,1). Empty: the first ones available.",
        "Limits training to these GPU numbers (as nvidia-smi shows them). Leave empty to use the "
        "first N.",
        "advanced", kohya="gpu_ids", tier="expected", minimum=0,
    ),
    Setting(
        "queue.stop_on_failure", "bool", False, "Stop the queue if this run fails",
        "When run from the queue: if this run fails, runs out of memory, is stopped or lost, pause the queue.",
        "Off: the queue records why this run ended and goes on with the next one. On: the queue "
        "pauses instead, so later runs that build on this one do not start; 'tui-lora queue resume' "
        "goes on. Has no effect when the run is started directly with 'tui-lora train'.",
        "advanced", tier="expected",
    ),
    Setting(
        "hardware.vram_gb", "float", None, "GPU memory (GiB)",
        "The GPU size to check the memory estimate against when it cannot be read here.",
        "The review screen and `validate` estimate the run's peak GPU memory and say whether it fits. "
        "On a machine with an NVIDIA GPU its size is read from the driver; elsewhere (planning a run on "
        "a laptop, say) the estimate is compared with this figure. Empty: no comparison unless a GPU is found.",
        "advanced", optional=True, minimum=0, min_exclusive=True, tier="expected", suffix="GiB",
        empty_means="the GPU found on this machine",
    ),
    Setting("metadata.title", "str", "", "Title", "Name shown by tools that read model metadata.",
            "Stored as 'modelspec.title'; defaults to the output name when empty.",
            "advanced", kohya="metadata_title", ss_extra=False, tier="expected"),
    Setting("metadata.author", "str", "", "Author", "Who made this LoRA.",
            "Stored as 'modelspec.author'.", "advanced", kohya="metadata_author", ss_extra=False, tier="expected"),
    Setting("metadata.description", "str", "", "Description", "What the LoRA does and how to prompt it.",
            "Stored as 'modelspec.description'.", "advanced", kohya="metadata_description", ss_extra=False, tier="expected"),
    Setting("metadata.license", "str", "", "License", "Licence under which you share the LoRA.",
            "Stored as 'modelspec.license'.", "advanced", kohya="metadata_license", ss_extra=False, tier="expected"),
    Setting("metadata.tags", "str", "", "Tags", "Comma-separated tags for model sites.",
            "Stored as 'modelspec.tags'.", "advanced", kohya="metadata_tags", ss_extra=False, tier="expected"),
    Setting(
        "overwrite", "bool", False, "Overwrite existing files",
        "Allow replacing an existing LoRA with the same name in the output folder.",
        "Off by default so an earlier result is never lost: training refuses to start when the "
        "output file exists. The wizard instead offers the next free name (name_v2).",
        "folders", tier="expected",
    ),
]
