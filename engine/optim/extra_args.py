"""Optimizer arguments: typing `key=value` texts, and checking them against the optimizer's signature.

Checks run before any model loads, so a typo in `optimizer.extra_args` costs seconds, not the minutes a
model load takes. Importing this module is cheap; checking imports only the one package that holds
the chosen optimizer (bitsandbytes, dadaptation and prodigyopt take seconds to import).
"""

from __future__ import annotations

import importlib
import inspect
import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from engine.config.values import did_you_mean
from engine.problems import Problem, ProblemError, error

FIELD = "optimizer.extra_args"
EXAMPLE = "e.g. weight_decay=0.01 or betas=0.9,0.99"
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

_INT = re.compile(r"[+-]?\d+")


# -- parsing ---------------------------------------------------------------------------------------

def parse_extra_args(items: Sequence[str]) -> dict[str, Any]:
    """Type each 'key=value' text: int, float, bool, None, tuple ('0.9,0.99', '(…)', '[…]') or string."""
    parsed: dict[str, Any] = {}
    problems = []
    for item in items:
        key, sep, raw = str(item).partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            problems.append(error(FIELD, f"'{item}' is not key=value", EXAMPLE))
            continue
        if key in parsed:
            problems.append(error(FIELD, f"'{key}' is given twice", "keep one of them"))
            continue
        try:
            parsed[key] = _typed_value(raw)
        except ValueError as why:
            problems.append(error(FIELD, f"'{item}': {why}", EXAMPLE))
    if problems:
        raise ProblemError(problems)
    return parsed


def _typed_value(raw: str) -> Any:
    text = raw.strip()
    if not text:
        raise ValueError("the value is empty")
    brackets = {"(": ")", "[": "]"}
    if text[0] in brackets:
        if text[-1] != brackets[text[0]]:
            raise ValueError(f"'{text}' opens a bracket it does not close")
        inner = text[1:-1].strip()
        if not inner:
            return ()
        parts = inner.split(",")
        if parts[-1].strip() == "":  # "(0.9,)" is a one-item tuple, as in Python
            parts = parts[:-1]
        return tuple(_typed_item(part, text) for part in parts)
    if "," in text:
        return tuple(_typed_item(part, text) for part in text.split(","))
    return _scalar(text)


def _typed_item(part: str, whole: str) -> Any:
    part = part.strip()
    if not part:
        raise ValueError(f"'{whole}' has an empty item")
    if part[0] in "([" or part[-1] in ")]":
        raise ValueError(f"'{whole}': nested lists are not supported")
    return _scalar(part)


def _scalar(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    if _INT.fullmatch(text):
        if len(text) > 30 or not -2**63 <= int(text) < 2**63:
            raise ValueError(f"{text} is too large a number for an optimizer")
        return int(text)
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        # 'inf' written out is meaningful (D-Adaptation's and Prodigy's growth_rate default to it);
        # a number that only overflowed to inf (1e999), or nan, is a mistake.
        if math.isnan(number) or (math.isinf(number) and lowered.lstrip("+-") not in ("inf", "infinity")):
            raise ValueError(f"{text} is not a usable number (it overflows, or is nan)")
        return number
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


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
