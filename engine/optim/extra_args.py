"""Optimizer arguments: checking the typed `key=value` texts (engine.config.key_values) against the
optimizer's signature.

Checks run before any model loads, so a typo in `optimizer.extra_args` costs seconds, not the minutes a
model load takes. Importing this module is cheap; checking imports only the one package that holds
the chosen optimizer (bitsandbytes, dadaptation and prodigyopt take seconds to import).
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from engine.config.key_values import FIELD, parse_extra_args
from engine.config.values import did_you_mean
from engine.problems import Problem, ProblemError, error

EXTRAS_INSTALL = "pip install 'tui-lora[optimizers]'"


@dataclass(frozen=True)
class OptimizerSpec:
    """Where an optimizer name's class lives and what installing it takes."""

    module: str
    attr: str
    install: str
    fixed: Mapping[str, Any] = field(default_factory=dict)  # set by the name itself, not the user


OPTIMIZER_SPECS: dict[str, OptimizerSpec] = {
    "AdamW": OptimizerSpec("torch.optim", "AdamW", "pip install torch"),
    "AdamW8bit": OptimizerSpec("bitsandbytes.optim", "AdamW8bit", "pip install bitsandbytes"),
    "PagedAdamW8bit": OptimizerSpec("bitsandbytes.optim", "PagedAdamW8bit", "pip install bitsandbytes"),
    "Adafactor": OptimizerSpec("transformers.optimization", "Adafactor", "pip install transformers"),
    "Lion": OptimizerSpec("lion_pytorch", "Lion", EXTRAS_INSTALL),
    "Lion8bit": OptimizerSpec("bitsandbytes.optim", "Lion8bit", "pip install bitsandbytes"),
    "SGDNesterov": OptimizerSpec("torch.optim", "SGD", "pip install torch", {"nesterov": True}),
    # Kohya's "DAdaptation" is the Adam variant from the D-Adaptation paper's preprint.
    "DAdaptation": OptimizerSpec("dadaptation.experimental", "DAdaptAdamPreprint", EXTRAS_INSTALL),
    "DAdaptAdamPreprint": OptimizerSpec("dadaptation.experimental", "DAdaptAdamPreprint", EXTRAS_INSTALL),
    "DAdaptAdam": OptimizerSpec("dadaptation", "DAdaptAdam", EXTRAS_INSTALL),
    "DAdaptLion": OptimizerSpec("dadaptation", "DAdaptLion", EXTRAS_INSTALL),
    "DAdaptSGD": OptimizerSpec("dadaptation", "DAdaptSGD", EXTRAS_INSTALL),
    "DAdaptAdaGrad": OptimizerSpec("dadaptation", "DAdaptAdaGrad", EXTRAS_INSTALL),
    "Prodigy": OptimizerSpec("prodigyopt", "Prodigy", EXTRAS_INSTALL),
}

# Names no user value may set: they come from other settings or are internal to the library.
_FROM_OTHER_SETTINGS = {
    "lr": ("the learning rate comes from optimizer.learning_rate, unet_lr and text_encoder_lr",
           "set those settings instead"),
    "params": ("the trained parameters come from the network settings", "remove it"),
}
_INTERNAL = frozenset(("self", "args"))  # bitsandbytes' `args` is a config object, not a value

def as_kwargs(extra_args: Mapping[str, Any] | Sequence[str]) -> dict[str, Any]:
    """Accept either the run file's list of texts or an already typed mapping."""
    if isinstance(extra_args, Mapping):
        return dict(extra_args)
    return parse_extra_args(list(extra_args))


# -- the optimizer class ---------------------------------------------------------------------------

def load_optimizer_class(name: str) -> type:
    """The class behind an optimizer name, importing only its package; ProblemError when missing."""
    spec = OPTIMIZER_SPECS.get(name)
    if spec is None:
        hint = did_you_mean(name, list(OPTIMIZER_SPECS)) or "choose one of: " + ", ".join(OPTIMIZER_SPECS)
        raise ProblemError([error("optimizer.name", f"'{name}' is not a known optimizer", hint)])
    package = spec.module.split(".")[0]
    try:
        importlib.import_module(package)  # the top package first, so a missing one is reported as such
        module = importlib.import_module(spec.module)
    except ImportError:
        raise ProblemError([error("optimizer.name", f"{name} needs the Python package '{package}', "
                                  "which is not installed", spec.install)]) from None
    except Exception as why:  # a broken install (e.g. a CUDA library mismatch) is not the user's typo
        raise ProblemError([error("optimizer.name", f"{name} needs '{package}', which failed to import: {why}",
                                  f"reinstall it: {spec.install}")]) from None
    found = getattr(module, spec.attr, None)
    if found is None:
        raise ProblemError([error("optimizer.name", f"the installed '{package}' has no {spec.attr}",
                                  f"upgrade it: {spec.install} --upgrade")])
    return found


def accepted_arguments(name: str) -> dict[str, Any]:
    """Argument names a user may set for this optimizer, with the class's defaults."""
    spec = OPTIMIZER_SPECS[name]
    signature = inspect.signature(load_optimizer_class(name))
    return {
        arg: parameter.default
        for arg, parameter in signature.parameters.items()
        if parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
        and arg not in _INTERNAL and arg not in _FROM_OTHER_SETTINGS and arg not in spec.fixed
    }


# -- checking --------------------------------------------------------------------------------------

def check_optimizer_args(name: str, extra_args: Mapping[str, Any] | Sequence[str],
                         *, scheduler: str | None = None) -> list[Problem]:
    """Every problem with these arguments for this optimizer (names, value kinds, Adafactor's modes).

    `extra_args` may be the run file's texts or their typed form. Pass `scheduler` to also check the
    arguments that must agree with it (Adafactor's relative_step and the `adafactor` schedule).
    """
    try:
        kwargs = as_kwargs(extra_args)
        accepted = accepted_arguments(name)
    except ProblemError as failure:
        return failure.problems
    spec = OPTIMIZER_SPECS[name]
    problems = []
    for key, value in kwargs.items():
        if key in _FROM_OTHER_SETTINGS:
            message, hint = _FROM_OTHER_SETTINGS[key]
            problems.append(error(FIELD, f"'{key}' cannot be set here: {message}", hint))
        elif key in spec.fixed:
            problems.append(error(FIELD, f"{name} always uses {key}={spec.fixed[key]}",
                                  "remove it, or choose another optimizer"))
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
    """Compare with the default's kind: catches 'betas=0.9' or 'weight_decay=0,01' before training."""
    shown = f"{key}={format_value(value)}"
    if isinstance(default, bool):
        if not isinstance(value, bool):
            return error(FIELD, f"{shown}: needs true or false", f"e.g. {key}={str(default).lower()}")
    elif isinstance(default, (int, float)):
        if not _is_number(value):
            return error(FIELD, f"{shown}: needs a number", f"e.g. {key}={default}")
    elif isinstance(default, tuple) and all(_is_number(item) for item in default):
        if not isinstance(value, tuple) or len(value) != len(default) or not all(map(_is_number, value)):
            return error(FIELD, f"{shown}: needs {len(default)} numbers separated by commas",
                         f"e.g. {key}={format_value(default)}")
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
