"""Training settings: batches, epochs, precision, caching, saving and the expected extras."""

from __future__ import annotations

from ..schema import Setting
from ..families.native import native_resolution_of
from .settings_model import is_tiny, model_family


def native_side(values) -> tuple[int, str]:
    """The side the base model was trained at (its configs' sample size × VAE factor) and where that came from."""
    if is_tiny(values):
        return 64, "the built-in tiny models"
    return native_resolution_of(values, model_family(values))


def _default_resolution(values):
    side, _ = native_side(values)  # training at the model's own size is what it does best
    return [side, side]


def _needs_epoch_saves(values):
    return None if values.get("training.save_every_n_epochs") else "only with 'save every N epochs'"


TRAINING_SETTINGS = [
    Setting(
        "training.batch_size", "int", 1, "Batch size",
        "Images per step. Larger is smoother but needs more VRAM.",
        "How many images are processed together in one step. A larger batch gives a steadier "
        "gradient and uses the GPU better, but needs more memory and means fewer steps per epoch, "
        "so the learning rate often goes up with it. Images in one batch always share a bucket size.",
        "basic", kohya="train_batch_size", minimum=1,
    ),
    Setting(
        "training.epochs", "int", 1, "Epochs",
        "Passes over the dataset (each image × its folder's repeats).",
        "One epoch shows every training image as many times as its folder's repeat count says. The "
        "total number of steps is steps per epoch × epochs. Saves and samples can happen at the end "
        "of each N epochs.",
        "basic", kohya="epoch", ss_extra=False, minimum=1,
    ),
    Setting(
        "training.max_train_epochs", "int", None, "Max train epochs",
        "When set, replaces 'epochs' (as the Kohya scripts do).",
        "The Kohya scripts let this value override the epoch count; it is kept so imported configs "
        "behave the same. Leave empty to use 'epochs'.",
        "basic", kohya="max_train_epochs", ss_extra=False, optional=True, minimum=1, empty_means="uses training.epochs",
    ),
    Setting(
        "training.max_train_steps", "int", None, "Max train steps",
        "Stop after this many optimizer steps, however many epochs that is.",
        "Fixes the run's length in optimizer steps instead of epochs, as the Kohya scripts' "
        "max_train_steps does: the run goes through as many epochs as it takes (the last one may be "
        "cut short) and stops at this step. The schedule, the dashboard's total and the ETA count "
        "these steps. 'Max train epochs' wins when both are set, as in the Kohya scripts.",
        "advanced", kohya="max_train_steps", ss_extra=False, optional=True, minimum=1, tier="expected",
        empty_means="the epochs decide",
        applies=lambda v: "max train epochs is set and decides the length" if v.get("training.max_train_epochs") else None,
    ),
    Setting(
        "training.save_every_n_epochs", "int", None, "Save every N epochs",
        "Also write '<name>-00000N.safetensors' every N epochs.",
        "Saves an intermediate LoRA at the end of every N-th epoch, named with the epoch number, so "
        "you can pick the one that is not yet overfitted. The final file is always written.",
        "basic", kohya="save_every_n_epochs", optional=True, minimum=1, empty_means="only the final file",
    ),
    Setting(
        "training.caption_extension", "str", ".txt", "Caption extension",
        "Extension of the caption files beside the images.",
        "Each image's caption is read from a file with the same name and this extension. Images "
        "without one use their folder's words. Caption files with other extensions are reported, "
        "since they usually mean this setting is wrong.",
        "basic", kohya="caption_extension",
    ),
    Setting(
        "training.mixed_precision", "choice", "auto", "Mixed precision",
        "auto: bf16 where the GPU supports it, else fp16; none on CPU.",
        "Runs most maths in 16-bit numbers to save memory and time. bf16 is the safer choice on "
        "recent GPUs (Ampere and newer); fp16 works on older ones but can overflow. 'no' keeps "
        "everything in 32-bit. 'auto' chooses for this machine, and the choice is recorded in the "
        "run's events and the file's metadata.",
        "basic", kohya="mixed_precision", ss_extra=False, choices=("auto", "no", "fp16", "bf16"),
    ),
    Setting(
        "training.save_precision", "choice", "fp16", "Save precision",
        "Number format of the saved file: fp16 halves its size with no visible loss.",
        "The LoRA's weights are converted to this format when written. fp16 and bf16 files are half "
        "the size of float (32-bit) files and behave the same in practice.",
        "basic", kohya="save_precision", choices=("float", "fp16", "bf16"),
    ),
    Setting(
        "training.cpu_threads_per_process", "int", None, "CPU threads per process",
        "Threads for CPU maths in each training process. Empty: as many as there are idle CPUs.",
        "Sets how many CPU threads each training process uses for its own work (torch and OpenMP). "
        "On a CPU-only run this is the main speed knob: more threads than idle CPUs make every step "
        "wait for the slowest thread, so on a busy machine fewer threads are faster. Empty picks, at "
        "the start of the run, the idle CPUs this process may use (2 at most on a GPU, Kohya's default); "
        "the run's log says how many. Formerly training.cpu_threads_per_core (still read).",
        "basic", kohya="num_cpu_threads_per_process", optional=True, minimum=1,
        empty_means="the idle CPUs, decided when the run starts",
    ),
    Setting(
        "training.seed", "int", None, "Seed",
        "Fixes the random numbers so a run can be repeated. Empty: a random seed (recorded).",
        "With the same seed, data and settings, a run produces the same LoRA again (on the same "
        "hardware). Leave empty to draw a seed; the drawn value is recorded in the events and the "
        "file's metadata so the run can still be repeated.",
        "basic", kohya="seed", ss_extra=False, optional=True, minimum=0, maximum=2**32 - 1, empty_means="a random seed, recorded",
    ),
    Setting(
        "training.cache_latents", "bool", True, "Cache latents",
        "Encode each image once before training instead of every step (faster).",
        "Images are turned into the VAE's compact latent form once, before the first step, and "
        "reused. This saves a lot of time and memory. The price: random augmentations other than "
        "flipping cannot be used, because the image is no longer re-cropped each time.",
        "basic", kohya="cache_latents",
    ),
    Setting(
        "training.cache_latents_to_disk", "bool", False, "Cache latents to disk",
        "Keep the cached latents in files so later runs on the same images start faster.",
        "Stores the cached latents in tui-lora's cache folder (never inside your dataset), so another "
        "run on the same images, sizes and "
        "VAE skips the encoding. A cache entry is recomputed when its image, bucket size, VAE or flip "
        "setting changes. Needs 'cache latents'.",
        "basic", kohya="cache_latents_to_disk",
        applies=lambda v: None if v.get("training.cache_latents") else "needs 'cache latents'",
    ),
    Setting(
        "training.max_resolution", "pair", [512, 512], "Resolution",
        "[width, height] of training; width × height is the pixel budget per image.",
        "Images are resized so that their area is about width × height (keeping their shape when "
        "buckets are on). Train at the base model's own resolution: 512 for SD 1.5, 768 for SD 2.x "
        "768 models, 1024 for SDXL. Left to follow the model, it is read from the model's configs "
        "(the denoiser's sample size times the VAE's scale factor), so a custom model gets its own "
        "size; well above that size a warning is shown. Both sides must be multiples of the bucket step.",
        "basic", kohya="max_resolution", ss_extra=False, minimum=8, model_default=_default_resolution,
    ),
    Setting(
        "training.stop_text_encoder_percent", "float", 0.0, "Stop text encoder at",
        "0 = never. At this % of the steps the text encoder stops training.",
        "Training the text encoder teaches the LoRA new words quickly but also overfits quickly. "
        "With a value above 0, its LoRA layers freeze once this share of the total steps is done and "
        "only the UNet goes on. (The Kohya GUI's LoRA tab ignores this field; here it takes effect.)",
        "basic", kohya="stop_text_encoder_training", minimum=0, maximum=100, suffix="%",
        applies=lambda v: "the text encoder is not trained (its learning rate is 0)"
        if v.get("optimizer.text_encoder_lr") == 0 else None,
    ),
    # --- expected tier (Advanced tab) ---
    Setting(
        "training.gradient_checkpointing", "bool", False, "Gradient checkpointing",
        "Saves a lot of VRAM for about 20–30% more time per step.",
        "Instead of keeping every intermediate result for the backward pass, the UNet recomputes "
        "them when needed. Memory use drops a lot, so larger batches or resolutions fit, at the cost "
        "of slower steps.",
        "advanced", kohya="gradient_checkpointing", tier="expected",
    ),
    Setting(
        "training.gradient_accumulation_steps", "int", 1, "Gradient accumulation",
        "Add up gradients over N batches before each optimizer step (a larger batch without the VRAM).",
        "The optimizer steps once every N batches, using their combined gradient. This behaves like "
        "a batch N times larger without its memory cost. The step count shown and the schedule count "
        "optimizer steps.",
        "advanced", kohya="gradient_accumulation_steps", minimum=1, tier="expected",
    ),
    Setting(
        "training.max_grad_norm", "float", 1.0, "Max gradient norm",
        "Clip the gradient's total size to this value; 0 = off.",
        "Before each optimizer step the gradient is scaled down if its overall size is above this "
        "value, which keeps a single bad batch from throwing the weights far off.",
        "advanced", kohya="max_grad_norm", minimum=0, tier="expected",
    ),
    Setting(
        "training.clip_skip", "int", 1, "CLIP skip",
        "Use the text encoder's output N-1 layers before the last. 2 for anime-style SD 1.5 models.",
        "The caption's embedding is taken from an earlier layer of the text encoder when this is "
        "above 1. Some SD 1.5 models (many anime ones) were trained with 2, and LoRAs for them "
        "should match. For SD 2.x and SDXL keep 1: their usual penultimate-layer handling is "
        "already built in.",
        "advanced", kohya="clip_skip", ss_extra=False, minimum=1, maximum=12, tier="expected",
    ),
    Setting(
        "training.max_token_length", "choice", 75, "Max caption tokens",
        "75, 150 or 225: longer captions are split into chunks of 75 tokens.",
        "The text encoder reads 75 tokens at a time. Long captions (many tags) are cut at 75 unless "
        "this is raised, in which case they are encoded in chunks and joined.",
        "advanced", kohya="max_token_length", choices=(75, 150, 225), tier="expected",
    ),
    Setting(
        "training.noise_offset", "float", 0.0, "Noise offset",
        "Lets the LoRA learn very dark or bright images; 0.05–0.1 when used.",
        "Adds a small random shift of each image's overall brightness to the training noise. Plain "
        "diffusion training struggles with images much darker or lighter than average; this helps. "
        "0 turns it off.",
        "advanced", kohya="noise_offset", minimum=0, tier="expected",
    ),
    Setting(
        "training.min_snr_gamma", "float", None, "Min-SNR gamma",
        "Reweights the loss per noise level for faster, steadier training; 5 is typical.",
        "Steps at low noise levels get a large, noisy loss that dominates training. Min-SNR "
        "weighting caps their weight using this gamma, which usually converges faster. Empty: off.",
        "advanced", kohya="min_snr_gamma", optional=True, minimum=0, min_exclusive=True,
        tier="expected", empty_means="off",
    ),
    Setting(
        "training.prior_loss_weight", "float", 1.0, "Prior loss weight",
        "Weight of the regularisation images' loss.",
        "Multiplies the loss of the regularisation images. Lower it if the class images pull your "
        "subject away; raise it if the whole class drifts. Only used with a regularisation folder.",
        "advanced", kohya="prior_loss_weight", minimum=0, tier="expected",
        applies=lambda v: None if v.get("folders.regularization") else "needs a regularisation folder",
    ),
    Setting(
        "training.attention", "choice", "sdpa", "Attention backend",
        "sdpa: PyTorch's fused attention; xformers when installed.",
        "Which implementation computes attention. PyTorch's scaled-dot-product attention is fast and "
        "memory-friendly everywhere; xformers is an alternative some older setups prefer and must be "
        "installed separately.",
        "advanced", kohya="xformers", choices=("sdpa", "xformers"), tier="expected",
    ),
    Setting(
        "training.save_last_n_epochs", "int", None, "Keep last N saves",
        "Delete older epoch saves made by this run, keeping the newest N.",
        "Only the newest N intermediate files of this run are kept; older ones written by this same "
        "run are removed as new ones arrive. Files from other runs are never touched. Empty: keep all.",
        "advanced", kohya="save_last_n_epochs", optional=True, minimum=1, tier="expected",
        applies=_needs_epoch_saves, empty_means="keep all",
    ),
    Setting(
        "training.save_state", "bool", False, "Save resumable state",
        "With each save, also store optimizer, scheduler and progress so the run can resume.",
        "Writes a state folder beside every save, holding what is needed to continue exactly where "
        "the run was: optimizer moments, learning-rate schedule, random number generators and the "
        "position in the data. Resume with 'tui-lora train run.yaml --resume'.",
        "advanced", kohya="save_state", tier="expected",
    ),
]
