"""Sample images during training: prompts, how often, which sampler."""

from __future__ import annotations

from ..schema import Setting

SAMPLERS = ("euler", "euler_a", "ddim", "dpmpp_2m", "heun", "lms", "pndm")


def _has_prompts(values):
    return None if values.get("sampling.prompts") else "add sample prompts first"


SAMPLING_SETTINGS = [
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
]
