"""Training-objective settings of the Kohya scripts: the noise, the sampled timesteps and the loss.

Each follows the sd-scripts option of the same name (see engine/train/noise.py and loss.py).
"""

from __future__ import annotations

from ..problems import Problem, error
from ..schema import Setting


def _needs_offset(values):
    return None if values.get("training.noise_offset") else "needs a noise offset above 0"


def _needs_multires(values):
    return None if values.get("training.multires_noise_iterations") else "needs multires noise iterations above 0"


def _needs_ip_gamma(values):
    return None if values.get("training.ip_noise_gamma") else "needs an input perturbation gamma above 0"


def _needs_huber(values):
    return None if values.get("training.loss_type") in ("huber", "smooth_l1") else "only for the huber and smooth_l1 losses"


OBJECTIVE_SETTINGS = [
    Setting(
        "training.noise_offset_random_strength", "bool", False, "Random noise offset strength",
        "Each step uses a random noise offset between 0 and the value set.",
        "Instead of the same offset every step, the strength is drawn anew each step between 0 and "
        "'noise offset', so the model sees a range of brightness shifts.",
        "advanced", kohya="noise_offset_random_strength", tier="expected", applies=_needs_offset,
    ),
    Setting(
        "training.adaptive_noise_scale", "float", 0.0, "Adaptive noise scale",
        "Adds this × |mean of each latent channel| to the noise offset; 0 = off.",
        "Makes the noise offset larger for latents whose channels are far from zero on average (very "
        "dark, bright or saturated images) and, with a negative value, smaller. The result never goes "
        "below 0. About a tenth of the noise offset is a usual value. Needs a noise offset.",
        "advanced", kohya="adaptive_noise_scale", tier="expected", applies=_needs_offset,
    ),
    Setting(
        "training.multires_noise_iterations", "int", 0, "Multires noise iterations",
        "Pyramid noise: add this many coarser noise layers; 6–10 when used, 0 = off.",
        "Adds noise drawn at smaller and smaller sizes, scaled up, on top of the usual noise. The "
        "coarse layers make the model learn large areas of colour and contrast, much like a noise "
        "offset. Cannot be combined with a noise offset (as in the Kohya scripts).",
        "advanced", kohya="multires_noise_iterations", minimum=0, maximum=64, tier="expected",
    ),
    Setting(
        "training.multires_noise_discount", "float", 0.3, "Multires noise discount",
        "Each coarser noise layer is weaker by this factor.",
        "Layer i of the pyramid noise is multiplied by this value to the power i, so lower values keep "
        "the coarse layers faint. 0.1–0.3 are common.",
        "advanced", kohya="multires_noise_discount", minimum=0, maximum=1, tier="expected", applies=_needs_multires,
    ),
    Setting(
        "training.ip_noise_gamma", "float", 0.0, "Input perturbation noise",
        "Extra noise on the model's input only (not its target); 0.1 when used, 0 = off.",
        "Input perturbation: the noisy latents the model sees get a little more random noise than the "
        "target accounts for. This makes training closer to what happens when generating, where the "
        "model's own errors add up. 0 turns it off.",
        "advanced", kohya="ip_noise_gamma", minimum=0, tier="expected",
    ),
    Setting(
        "training.ip_noise_gamma_random_strength", "bool", False, "Random input perturbation",
        "Each step uses a random strength between 0 and the gamma set.",
        "Draws the input perturbation's strength anew each step between 0 and the gamma, instead of "
        "using the gamma itself.",
        "advanced", kohya="ip_noise_gamma_random_strength", tier="expected", applies=_needs_ip_gamma,
    ),
    Setting(
        "training.min_timestep", "int", 0, "Min timestep",
        "Lowest noise level trained (0–999); 0 = from the start.",
        "Training draws a noise level (timestep) for every image. Raising this skips the nearly clean "
        "levels, which carry fine detail; with 'max timestep' it narrows what the LoRA learns.",
        "advanced", kohya="min_timestep", minimum=0, maximum=999, tier="expected",
    ),
    Setting(
        "training.max_timestep", "int", 1000, "Max timestep",
        "Timesteps are drawn below this (1–1000); 1000 = up to the noisiest.",
        "The upper end (not included) of the noise levels drawn. Lowering it skips the noisiest "
        "levels, which decide composition. When it equals 'min timestep', every step uses that one "
        "level (below 1000).",
        "advanced", kohya="max_timestep", minimum=1, maximum=1000, tier="expected",
    ),
    Setting(
        "training.loss_type", "choice", "l2", "Loss",
        "l2 (squared error, the usual), l1, huber or smooth_l1 (robust to outliers).",
        "How the difference between the model's prediction and its target becomes the loss. l2 "
        "squares it, so a few large errors dominate; l1 takes it as is. huber and smooth_l1 behave "
        "like l2 for small errors and like l1 for large ones, with the switch point set by 'huber c'.",
        "advanced", kohya="loss_type", choices=("l2", "l1", "huber", "smooth_l1"), tier="expected",
    ),
    Setting(
        "training.huber_schedule", "choice", "snr", "Huber schedule",
        "How huber c changes with the noise level: constant, exponential or snr.",
        "constant uses 'huber c' at every noise level. exponential starts at 1 for clean levels and "
        "falls to 'huber c' at the noisiest. snr follows the level's signal-to-noise ratio: close to 1 "
        "when the signal dominates and close to 'huber c' when the noise does.",
        "advanced", kohya="huber_schedule", choices=("constant", "exponential", "snr"), tier="expected",
        applies=_needs_huber,
    ),
    Setting(
        "training.huber_c", "float", 0.1, "Huber c",
        "Where the huber loss turns from squared to linear (0–1); 0.1 is usual.",
        "Errors smaller than about this value are treated as by l2, larger ones as by l1. A smaller "
        "value makes the loss more robust to outliers.",
        "advanced", kohya="huber_c", minimum=0, maximum=1, min_exclusive=True, tier="expected", applies=_needs_huber,
    ),
    Setting(
        "training.huber_scale", "float", 1.0, "Huber scale",
        "Multiplies huber c for the constant and exponential schedules.",
        "Scales the switch point of the constant and exponential schedules; the snr schedule does not "
        "use it. 1 leaves huber c as set.",
        "advanced", kohya="huber_scale", minimum=0, min_exclusive=True, tier="expected", applies=_needs_huber,
    ),
    Setting(
        "training.debiased_estimation_loss", "bool", False, "Debiased estimation loss",
        "Weights each step's loss by 1/√SNR (1/(SNR+1) for v-prediction).",
        "Scales down the loss of nearly clean noise levels, whose high signal-to-noise ratio otherwise "
        "gives them too much say, which can reduce odd colours and over-sharp detail. It works on top "
        "of Min-SNR gamma when both are set.",
        "advanced", kohya="debiased_estimation_loss", tier="expected",
    ),
]


def objective_rules(v) -> list[Problem]:
    """The combinations sd-scripts refuses (verify_training_args), refused here too."""
    out = []
    if v["training.min_timestep"] > v["training.max_timestep"]:
        out.append(error("training.min_timestep", f"{v['training.min_timestep']} is above max_timestep ({v['training.max_timestep']})",
                         "make min_timestep ≤ max_timestep"))
    if v["training.adaptive_noise_scale"] and not v["training.noise_offset"]:
        out.append(error("training.adaptive_noise_scale", "scales the noise offset, which is 0", "set training.noise_offset, or this to 0"))
    if v["training.noise_offset"] and v["training.multires_noise_iterations"]:
        out.append(error("training.multires_noise_iterations", "cannot be combined with a noise offset (the Kohya scripts refuse it too)",
                         "set training.noise_offset or this to 0"))
    return out
