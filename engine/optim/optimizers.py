"""Building the optimizer a run asks for, with Kohya's meaning for each name.

`build_optimizer` returns the optimizer and `notes`: warnings about what it had to decide for the
user (equalised learning rates, an ignored learning rate), which the training loop shows as
`warning` events. Anything that stops the run is a ProblemError naming the setting to change.
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple, Sequence

import torch

from engine.problems import Problem, ProblemError, error, warning

from .extra_args import as_kwargs, check_optimizer_args, format_value, load_optimizer_class
from .numbers import adafactor_relative_step

# D-Adaptation and Prodigy estimate one step size `d` for all groups; these raise at the first step
# when non-zero group learning rates differ (DAdaptAdaGrad handles each group's rate on its own).
EQUAL_LR_OPTIMIZERS = frozenset(
    ("DAdaptation", "DAdaptAdamPreprint", "DAdaptAdam", "DAdaptLion", "DAdaptSGD", "Prodigy")
)
_LR_FREE_MODULES = ("dadaptation", "prodigyopt")


class OptimizerBuild(NamedTuple):
    optimizer: torch.optim.Optimizer
    notes: list[Problem]  # warnings for the event stream, never errors


def build_optimizer(name: str, param_groups: Sequence[Mapping[str, Any]],
                    extra_args: Mapping[str, Any] | Sequence[str] = (),
                    *, scheduler: str | None = None) -> OptimizerBuild:
    """Create optimizer `name` over `param_groups` (each a dict with `params`, `lr`, optional `name`).

    `extra_args` is the typed mapping from `parse_extra_args` or the run file's texts. `scheduler` is
    the schedule's name: with `adafactor`, Adafactor runs on its own relative step size.
    """
    kwargs = as_kwargs(extra_args)
    given = ", ".join(f"{key}={format_value(value)}" for key, value in kwargs.items())  # before defaults join
    problems = [p for p in check_optimizer_args(name, kwargs, scheduler=scheduler) if p.is_error]
    if problems:
        raise ProblemError(problems)
    optimizer_class = load_optimizer_class(name)
    groups = [_copy_group(group, index) for index, group in enumerate(param_groups)]
    if not groups or not any(group["params"] for group in groups):
        raise ProblemError([error("optimizer.name", "there are no parameters to train",
                                  "give the UNet or the text encoder a learning rate above 0")])
    notes: list[Problem] = []
    lr: float | None = max(group["lr"] for group in groups)

    if name == "SGDNesterov":
        kwargs.setdefault("momentum", 0.9)  # Nesterov needs momentum; 0.9 as Kohya sets
        kwargs.update(nesterov=True)
    elif name == "Adafactor":
        lr = _prepare_adafactor(kwargs, groups, scheduler, notes)
    elif name in EQUAL_LR_OPTIMIZERS:
        _equalise_learning_rates(name, groups, notes)
        lr = max(group["lr"] for group in groups)
    if name == "PagedAdamW8bit" and all(p.device.type == "cpu" for g in groups for p in g["params"]):
        notes.append(warning("optimizer.name", "PagedAdamW8bit pages memory only on a CUDA GPU; "
                             "on the CPU it runs as AdamW8bit"))

    try:
        optimizer = optimizer_class(groups, lr=lr, **kwargs)
    except (ValueError, TypeError, RuntimeError) as why:
        field = "optimizer.extra_args" if given else "optimizer.learning_rate"
        raise ProblemError([error(field, f"{name} refused its settings: {why}",
                                  f"check {given}" if given else "check the learning rates")]) from None
    return OptimizerBuild(optimizer, notes)


def _copy_group(group: Mapping[str, Any], index: int) -> dict[str, Any]:
    if "params" not in group or "lr" not in group:
        raise ValueError(f"parameter group {index} needs 'params' and 'lr'")
    copied = dict(group)
    copied["params"] = list(group["params"])
    copied["lr"] = float(group["lr"])
    return copied


def _group_label(group: Mapping[str, Any], index: int) -> str:
    return str(group.get("name", f"group {index}"))


def _prepare_adafactor(kwargs: dict[str, Any], groups: list[dict[str, Any]], scheduler: str | None,
                       notes: list[Problem]) -> float | None:
    relative = kwargs.setdefault("relative_step", scheduler == "adafactor")
    if relative:
        # Adafactor refuses a manual rate with relative_step; the schedule reads its rate back.
        for group in groups:
            group.pop("lr")
        notes.append(warning("optimizer.learning_rate", "with the adafactor schedule Adafactor chooses its own "
                             "step size; the learning rates set are not used"))
        return None
    # A manual rate only means what it says without Adafactor's own scaling and warmup.
    kwargs.setdefault("scale_parameter", False)
    kwargs.setdefault("warmup_init", False)
    return max(group["lr"] for group in groups)


def _equalise_learning_rates(name: str, groups: list[dict[str, Any]], notes: list[Problem]) -> None:
    rates = {group["lr"] for group in groups if group["lr"] != 0}
    if len(rates) <= 1:
        return
    # The rate is a multiplier of the step size found; the largest is the one nearest the usual 1.
    top = max(rates)
    lowered = [(i, g) for i, g in enumerate(groups) if g["lr"] not in (0, top)]
    raised = [f"{_group_label(g, i)} {g['lr']:g}" for i, g in lowered]
    for group in groups:
        if group["lr"] != 0:
            group["lr"] = top
    notes.append(warning(_lr_setting(_group_label(lowered[0][1], lowered[0][0])),
                         f"{name} uses one learning rate for every part it trains: "
                         f"{', '.join(raised)} raised to {top:g}",
                         "set optimizer.unet_lr and optimizer.text_encoder_lr to the same value (normally 1)"))


def unwrap_optimizer(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """The library's optimizer inside accelerate's wrapper (which is itself an Optimizer)."""
    while isinstance(getattr(optimizer, "optimizer", None), torch.optim.Optimizer):
        optimizer = optimizer.optimizer
    return optimizer


def _lr_setting(group_label: str) -> str:
    """The setting that holds a group's rate, by the group names the training loop uses."""
    if group_label.startswith("text_encoder"):
        return "optimizer.text_encoder_lr"
    return "optimizer.unet_lr" if group_label.startswith("unet") else "optimizer.learning_rate"


def optimizer_lr_for_logging(optimizer: torch.optim.Optimizer, group_index: int) -> float:
    """The step size group `group_index` really takes: d × lr for D-Adaptation and Prodigy (as Kohya
    logs it), Adafactor's own size when it chooses it, else the group's learning rate."""
    optimizer = unwrap_optimizer(optimizer)
    group = optimizer.param_groups[group_index]
    lr = group.get("lr")
    if type(optimizer).__module__.startswith(_LR_FREE_MODULES) and "d" in group:
        return float(group["d"]) * float(lr or 0.0)
    if group.get("relative_step") and hasattr(optimizer, "_get_lr"):
        state = optimizer.state.get(group["params"][0], {})
        if "step" in state:
            return float(optimizer._get_lr(group, state))
        return adafactor_relative_step(1, bool(group.get("warmup_init")))
    return float(lr or 0.0)
