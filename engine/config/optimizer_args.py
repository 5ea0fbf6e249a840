"""Checking `optimizer.extra_args` against what each optimizer accepts, without importing it.

The optimizers' keyword arguments and their defaults are written down here (read from the
installed libraries' signatures; `tests/test_optimizer_args_table.py` keeps the two in step), so
the run file's rules, and so `validate`, the wizard and an import, refuse an argument the optimizer
would reject in milliseconds. Training's preflight runs the same check against the installed
class's own signature (`engine.optim.extra_args.check_optimizer_args`), which also catches a
library version that differs from this table.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..problems import Problem, ProblemError, error
from .key_values import FIELD, parse_extra_args
from .values import did_you_mean

_INF = float("inf")
_ADAM = {"betas": (0.9, 0.999), "eps": 1e-08, "weight_decay": 0.01, "amsgrad": False}
_BNB = {"optim_bits": 32, "min_8bit_size": 4096}
_TORCH = {"maximize": False, "foreach": None, "differentiable": False, "fused": None}
_DADAPT = {"log_every": 0, "d0": 1e-06, "fsdp_in_use": False}
_DADAPT_ADAM = {"betas": (0.9, 0.999), "eps": 1e-08, "weight_decay": 0, "log_every": 0, "decouple": False,
                "d0": 1e-06, "growth_rate": _INF, "fsdp_in_use": False}

# Keyword arguments each optimizer name accepts from the user, with the class's defaults (the
# learning rate, the parameters and what the name itself fixes are left out).
KNOWN_ARGUMENTS: dict[str, dict[str, Any]] = {
    "AdamW": {**_ADAM, "capturable": False, **_TORCH},
    "AdamW8bit": {**_ADAM, **_BNB, "is_paged": False},
    "PagedAdamW8bit": {**_ADAM, **_BNB},
    "Adafactor": {"eps": (1e-30, 0.001), "clip_threshold": 1.0, "decay_rate": -0.8, "beta1": None,
                  "weight_decay": 0.0, "scale_parameter": True, "relative_step": True, "warmup_init": False},
    "Lion": {"betas": (0.9, 0.99), "weight_decay": 0.0, "use_triton": False, "decoupled_weight_decay": False},
    "Lion8bit": {"betas": (0.9, 0.99), "weight_decay": 0, "min_8bit_size": 4096, "is_paged": False},
    "SGDNesterov": {"momentum": 0, "dampening": 0, "weight_decay": 0, **_TORCH},
    "DAdaptation": dict(_DADAPT_ADAM),
    "DAdaptAdamPreprint": dict(_DADAPT_ADAM),
    "DAdaptAdam": {**_DADAPT_ADAM, "use_bias_correction": False},
    "DAdaptLion": {"betas": (0.9, 0.99), "weight_decay": 0.0, **_DADAPT},
    "DAdaptSGD": {"momentum": 0.0, "weight_decay": 0, "growth_rate": _INF, **_DADAPT},
    "DAdaptAdaGrad": {"momentum": 0, "log_every": 0, "weight_decay": 0.0, "eps": 1e-06, "d0": 1e-06,
                      "growth_rate": _INF},
    "Prodigy": {"betas": (0.9, 0.999), "beta3": None, "eps": 1e-08, "weight_decay": 0, "decouple": True,
                "use_bias_correction": False, "safeguard_warmup": False, "d0": 1e-06, "d_coef": 1.0,
                "growth_rate": _INF, "fsdp_in_use": False, "slice_p": 1},
}
# Arguments an optimizer name sets itself (Kohya's SGDNesterov is SGD with nesterov on).
FIXED_ARGUMENTS: dict[str, dict[str, Any]] = {"SGDNesterov": {"nesterov": True}}
# Names no user value may set: they come from other settings.
FROM_OTHER_SETTINGS = {
    "lr": ("the learning rate comes from optimizer.learning_rate, unet_lr and text_encoder_lr",
           "set those settings instead"),
    "params": ("the trained parameters come from the network settings", "remove it"),
}


def optimizer_argument_problems(name: str, texts: list[str], *, scheduler: str | None = None) -> list[Problem]:
    """The run file's `key=value` texts against the table above: torch-free, for the rules."""
    try:
        kwargs = parse_extra_args(texts)
    except ProblemError as failure:
        return failure.problems
    accepted = KNOWN_ARGUMENTS.get(name)
    if accepted is None:
        return []  # not a known name: optimizer.name's own check says so
    return argument_problems(name, kwargs, accepted, scheduler=scheduler)


def argument_problems(name: str, kwargs: Mapping[str, Any], accepted: Mapping[str, Any],
                      *, scheduler: str | None = None) -> list[Problem]:
    """Every problem with typed arguments for an optimizer whose accepted arguments (with defaults)
    are given: unknown names with a suggestion, values of the wrong kind, Adafactor's modes."""
    fixed = FIXED_ARGUMENTS.get(name, {})
    problems = []
    for key, value in kwargs.items():
        if key in FROM_OTHER_SETTINGS:
            message, hint = FROM_OTHER_SETTINGS[key]
            problems.append(error(FIELD, f"'{key}' cannot be set here: {message}", hint))
        elif key in fixed:
            problems.append(error(FIELD, f"{name} always uses {key}={fixed[key]}", "remove it, or choose another optimizer"))
        elif key not in accepted:
            suggestion = did_you_mean(key, list(accepted))
            listing = "accepted: " + ", ".join(accepted)
            problems.append(error(FIELD, f"{name} has no argument '{key}'",
                                  f"{suggestion} {listing}" if suggestion else listing))
        else:
            problem = _kind_problem(key, value, accepted[key])
            if problem:
                problems.append(problem)
    if name == "Adafactor":
        problems += _adafactor_mode_problems(kwargs, scheduler)
    return problems


def _kind_problem(key: str, value: Any, default: Any) -> Problem | None:
    """Compare with the default's kind: catches 'betas=0.9', "betas='0.9,0.99'" (quotes a shell would
    have removed) or 'weight_decay=0,01' before training."""
    text = format_value(value)
    shown = f"{key}={text}"
    quoted = len(text) > 1 and text[0] == text[-1] and text[0] in "'\""
    unquote = f"; write it without the quotes: {key}={text[1:-1]}" if quoted else ""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            return error(FIELD, f"{shown}: needs true or false", f"e.g. {key}={str(default).lower()}{unquote}")
    elif isinstance(default, (int, float)):
        if not _is_number(value):
            return error(FIELD, f"{shown}: needs a number", f"e.g. {key}={default}{unquote}")
    elif isinstance(default, tuple) and all(_is_number(item) for item in default):
        if not isinstance(value, tuple) or len(value) != len(default) or not all(map(_is_number, value)):
            return error(FIELD, f"{shown}: needs {len(default)} numbers separated by commas",
                         f"e.g. {key}={format_value(default)}{unquote}")
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _adafactor_mode_problems(kwargs: Mapping[str, Any], scheduler: str | None) -> list[Problem]:
    relative = kwargs.get("relative_step")
    problems = []
    if scheduler is not None and scheduler != "adafactor" and relative is True:
        problems.append(error(FIELD, "relative_step=true makes Adafactor choose its own step size, "
                              f"which the '{scheduler}' schedule cannot drive", "set optimizer.scheduler: adafactor"))
    if scheduler == "adafactor" and relative is False:
        problems.append(error(FIELD, "the adafactor schedule needs relative_step=true",
                              "remove relative_step, or choose another schedule"))
    relative_in_use = relative if relative is not None else scheduler == "adafactor"
    if kwargs.get("warmup_init") is True and not relative_in_use:
        problems.append(error(FIELD, "warmup_init=true needs Adafactor's relative step size",
                              "use optimizer.scheduler: adafactor, or remove warmup_init"))
    return problems


def format_value(value: Any) -> str:
    """The value as a user would type it back (tuples as '0.9,0.99')."""
    if isinstance(value, tuple):
        return ",".join(format_value(item) for item in value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)
