"""The diffusers schedulers samples are drawn with, by `sampling.sampler` name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# sampling.sampler -> (diffusers scheduler class, settings over the base model's scheduler config)
SAMPLERS: dict[str, tuple[str, dict[str, Any]]] = {
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "ddim": ("DDIMScheduler", {"clip_sample": False, "set_alpha_to_one": False}),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "heun": ("HeunDiscreteScheduler", {}),
    "lms": ("LMSDiscreteScheduler", {}),
    "pndm": ("PNDMScheduler", {"skip_prk_steps": True}),
}


def build_sampler(name: str, scheduler_config: Mapping[str, Any], prediction_type: str):
    """A diffusers scheduler for `sampling.sampler`, built from the base model's own scheduler config."""
    import diffusers

    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; expected one of {', '.join(SAMPLERS)}")
    class_name, overrides = SAMPLERS[name]
    config = {k: v for k, v in scheduler_config.items() if not k.startswith("_")}
    config.update(overrides, prediction_type=prediction_type)
    return getattr(diffusers, class_name).from_config(config)
