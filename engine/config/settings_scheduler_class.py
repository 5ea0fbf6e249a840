"""A torch learning-rate scheduler class chosen by name, as sd-scripts' --lr_scheduler_type allows."""

from __future__ import annotations

import re
from typing import Any, Sequence

from ..problems import Problem, ProblemError, error, warning
from ..schema import Setting
from .key_values import parse_extra_args

TORCH_PREFIX = "torch.optim.lr_scheduler."
ARGS_FIELD = "optimizer.scheduler_args"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _class_applies(values):
    return None if values.get("optimizer.scheduler_type") else "only with a scheduler class"


SCHEDULER_CLASS_SETTINGS = [
    Setting(
        "optimizer.scheduler_type", "str", "", "Scheduler class",
        "A torch scheduler class by name, e.g. CosineAnnealingLR; replaces the LR schedule above.",
        "Any learning-rate scheduler class of torch.optim.lr_scheduler (StepLR, ExponentialLR, "
        "CosineAnnealingLR, CosineAnnealingWarmRestarts, OneCycleLR, CyclicLR, …), given its arguments "
        "below. It replaces the LR schedule and its warmup; it is stepped once per optimizer step, so "
        "step counts in its arguments are optimizer steps. Empty: use the LR schedule.",
        "advanced", kohya="lr_scheduler_type", tier="expected", empty_means="uses optimizer.scheduler",
    ),
    Setting(
        "optimizer.scheduler_args", "list", [], "Scheduler class arguments",
        "key=value arguments of the scheduler class, e.g. T_max=1000 eta_min=1e-7.",
        "Passed to the scheduler class after conversion to numbers, booleans or tuples. Names are "
        "checked against the class before training starts, and arguments it cannot run without "
        "(such as CosineAnnealingLR's T_max) are asked for.",
        "advanced", tier="expected", applies=_class_applies,
    ),
]


def scheduler_class_rules(v) -> list[Problem]:
    """Checks that need no torch: the name's form, the arguments' form, settings that do nothing."""
    out = []
    name = v["optimizer.scheduler_type"].strip()
    if name:
        short = name[len(TORCH_PREFIX):] if name.startswith(TORCH_PREFIX) else name
        if not _NAME.fullmatch(short):
            out.append(error("optimizer.scheduler_type", f"'{name}' is not a class of torch.optim.lr_scheduler",
                             "give a class name such as CosineAnnealingLR (other modules are not loaded)"))
        if v["optimizer.warmup_percent"]:
            out.append(warning("optimizer.warmup_percent", "warmup is not used with a scheduler class "
                               "(sd-scripts refuses the combination)", "set it to 0, or use a schedule with warmup"))
    elif v["optimizer.scheduler_args"]:
        out.append(warning("optimizer.scheduler_args", "does nothing without a scheduler class",
                           "set optimizer.scheduler_type, or clear this"))
    try:
        parse_scheduler_args(v["optimizer.scheduler_args"])
    except ProblemError as exc:
        out += exc.problems
    return out


def parse_scheduler_args(items: Sequence[str]) -> dict[str, Any]:
    """The 'key=value' items typed as optimizer arguments are (numbers, booleans, tuples, text)."""
    try:
        return parse_extra_args(items)
    except ProblemError as exc:
        raise ProblemError([error(ARGS_FIELD, p.message, "e.g. T_max=1000 eta_min=1e-7") for p in exc.problems]) from None
