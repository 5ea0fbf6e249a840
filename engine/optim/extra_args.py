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

from engine.config.key_values import parse_extra_args
from engine.config.optimizer_args import FIXED_ARGUMENTS, FROM_OTHER_SETTINGS, argument_problems, format_value
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
    "SGDNesterov": OptimizerSpec("torch.optim", "SGD", "pip install torch", FIXED_ARGUMENTS["SGDNesterov"]),
    # Kohya's "DAdaptation" is the Adam variant from the D-Adaptation paper's preprint.
    "DAdaptation": OptimizerSpec("dadaptation.experimental", "DAdaptAdamPreprint", EXTRAS_INSTALL),
    "DAdaptAdamPreprint": OptimizerSpec("dadaptation.experimental", "DAdaptAdamPreprint", EXTRAS_INSTALL),
    "DAdaptAdam": OptimizerSpec("dadaptation", "DAdaptAdam", EXTRAS_INSTALL),
    "DAdaptLion": OptimizerSpec("dadaptation", "DAdaptLion", EXTRAS_INSTALL),
    "DAdaptSGD": OptimizerSpec("dadaptation", "DAdaptSGD", EXTRAS_INSTALL),
    "DAdaptAdaGrad": OptimizerSpec("dadaptation", "DAdaptAdaGrad", EXTRAS_INSTALL),
    "Prodigy": OptimizerSpec("prodigyopt", "Prodigy", EXTRAS_INSTALL),
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
        and arg not in _INTERNAL and arg not in FROM_OTHER_SETTINGS and arg not in spec.fixed
    }


# -- checking --------------------------------------------------------------------------------------

def check_optimizer_args(name: str, extra_args: Mapping[str, Any] | Sequence[str],
                         *, scheduler: str | None = None) -> list[Problem]:
    """Every problem with these arguments for the installed optimizer (names, value kinds, Adafactor's
    modes): the run file's rules run the same check against a table of the signatures
    (engine.config.optimizer_args); this one asks the installed class itself.

    `extra_args` may be the run file's texts or their typed form. Pass `scheduler` to also check the
    arguments that must agree with it (Adafactor's relative_step and the `adafactor` schedule).
    """
    try:
        kwargs = as_kwargs(extra_args)
        accepted = accepted_arguments(name)
    except ProblemError as failure:
        return failure.problems
    return argument_problems(name, kwargs, accepted, scheduler=scheduler)


__all__ = ["OPTIMIZER_SPECS", "accepted_arguments", "as_kwargs", "check_optimizer_args", "format_value",
           "load_optimizer_class", "parse_extra_args"]
