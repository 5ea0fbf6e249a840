"""Optimizer and learning-rate schedule settings."""

from __future__ import annotations

from ..schema import Setting

OPTIMIZERS = (
    "AdamW", "AdamW8bit", "PagedAdamW8bit", "Adafactor", "Lion", "Lion8bit", "SGDNesterov",
    "DAdaptation", "DAdaptAdamPreprint", "DAdaptAdam", "DAdaptLion", "DAdaptSGD", "DAdaptAdaGrad",
    "Prodigy",
)
# Optimizers that estimate their own step size: the learning rate is a multiplier, normally 1.
LR_FREE_OPTIMIZERS = frozenset(
    ("DAdaptation", "DAdaptAdamPreprint", "DAdaptAdam", "DAdaptLion", "DAdaptSGD", "DAdaptAdaGrad", "Prodigy")
)
SCHEDULERS = (
    "constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial",
    "piecewise_constant", "adafactor",
)
NO_WARMUP_SCHEDULERS = frozenset(("constant", "adafactor"))


def _warmup_applies(values):
    if values.get("optimizer.scheduler_type"):
        return "a scheduler class has no warmup"
    if values.get("optimizer.scheduler") in NO_WARMUP_SCHEDULERS:
        return f"the '{values.get('optimizer.scheduler')}' schedule has no warmup"
    return None


OPTIMIZER_SETTINGS = [
    Setting(
        "optimizer.name", "choice", "AdamW8bit", "Optimizer",
        "AdamW8bit is a good default; DAdaptation and Prodigy find their own learning rate.",
        "The rule that turns gradients into weight updates. AdamW is the standard; AdamW8bit keeps "
        "its state in 8 bits and saves memory with the same results; PagedAdamW8bit can also spill "
        "to CPU memory. Adafactor uses even less memory. Lion is sign-based and wants a 3–10× lower "
        "learning rate. SGDNesterov is plain momentum SGD. DAdaptation (Kohya's name for D-Adapt "
        "Adam Preprint) and its variants, and Prodigy, estimate the step size themselves: set the "
        "learning rates to 1.",
        "basic", kohya="optimizer", ss_extra=False, choices=OPTIMIZERS,
    ),
    Setting(
        "optimizer.learning_rate", "float", 1e-4, "Learning rate",
        "Step size of training; used wherever the UNet or text-encoder rate is empty.",
        "How far each step moves the weights. Too high and the LoRA burns (noisy, oversaturated "
        "images); too low and it learns nothing. 1e-4 is a common start for AdamW with alpha equal "
        "to rank; lower alpha or Lion change that. For DAdaptation and Prodigy use 1.",
        "basic", kohya="learning_rate", ss_extra=False, minimum=0, min_exclusive=True, maximum=10,
    ),
    Setting(
        "optimizer.unet_lr", "float", None, "UNet learning rate",
        "Learning rate of the UNet's LoRA layers. Empty: the learning rate above.",
        "Lets the image part of the model learn at its own speed. Leave empty to use the main "
        "learning rate.",
        "basic", kohya="unet_lr", ss_extra=False, optional=True, minimum=0, maximum=10, empty_means="uses optimizer.learning_rate",
    ),
    Setting(
        "optimizer.text_encoder_lr", "float", 5e-5, "Text encoder learning rate",
        "Usually lower than the UNet's. 0: do not train the text encoder. Empty: the learning rate.",
        "The text encoder learns new words quickly and overfits quickly, so it usually gets half "
        "the UNet's rate or less. 0 leaves it out of training entirely (smaller file); empty uses "
        "the main learning rate.",
        "basic", kohya="text_encoder_lr", ss_extra=False, optional=True, minimum=0, maximum=10, empty_means="uses optimizer.learning_rate",
    ),
    Setting(
        "optimizer.scheduler", "choice", "cosine", "LR schedule",
        "How the learning rate changes over the run; cosine eases it down to zero.",
        "constant keeps the rate fixed; constant_with_warmup ramps it up first; linear and cosine "
        "lower it to zero by the end (cosine gently); cosine_with_restarts repeats the cosine "
        "several times; polynomial falls with the given power; piecewise_constant uses step rules; "
        "adafactor lets the Adafactor optimizer pick the rate itself.",
        "basic", kohya="lr_scheduler", ss_extra=False, choices=SCHEDULERS,
    ),
    Setting(
        "optimizer.warmup_percent", "float", 10.0, "Warmup",
        "Share of the total steps spent ramping the learning rate up from zero.",
        "The learning rate starts at zero and grows to its value over this share of the steps, "
        "which avoids large early updates. Not used by the constant and adafactor schedules.",
        "basic", kohya="lr_warmup", ss_extra=False, minimum=0, maximum=100, suffix="%", applies=_warmup_applies,
    ),
    Setting(
        "optimizer.num_cycles", "int", 1, "Restart cycles",
        "How many times cosine_with_restarts starts over.",
        "cosine_with_restarts runs the cosine curve this many times, jumping back to the full rate "
        "at each restart.",
        "basic", kohya="lr_scheduler_num_cycles", minimum=1,
        applies=lambda v: None if v.get("optimizer.scheduler") == "cosine_with_restarts"
        else "only for cosine_with_restarts",
    ),
    Setting(
        "optimizer.power", "float", 1.0, "Polynomial power",
        "Shape of the polynomial schedule: 1 is a straight line, higher drops faster early.",
        "The polynomial schedule lowers the rate as (1 − progress)^power; power 1 equals linear.",
        "basic", kohya="lr_scheduler_power", minimum=0, min_exclusive=True,
        applies=lambda v: None if v.get("optimizer.scheduler") == "polynomial" else "only for polynomial",
    ),
    Setting(
        "optimizer.step_rules", "str", "", "Piecewise step rules",
        "For piecewise_constant: 'multiplier:step,...,final', e.g. '1:100,0.5:200,0.1'.",
        "Each 'multiplier:step' pair holds the learning rate at multiplier × rate until that step; "
        "the last number applies to the rest of the run.",
        "basic", kohya="lr_scheduler_args", tier="expected",
        applies=lambda v: None if v.get("optimizer.scheduler") == "piecewise_constant"
        else "only for piecewise_constant",
    ),
    Setting(
        "optimizer.extra_args", "list", [], "Optimizer arguments",
        "Extra key=value arguments, e.g. weight_decay=0.01 or betas=0.9,0.99.",
        "Passed to the optimizer as they are, after conversion to numbers, booleans or tuples. Each "
        "name is checked against the optimizer's own parameters before training starts.",
        "basic", kohya="optimizer_args",
    ),
]
