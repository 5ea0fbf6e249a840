"""A scheduler class of torch.optim.lr_scheduler by name, following sd-scripts' get_scheduler_fix
(--lr_scheduler_type / --lr_scheduler_args): the class is built on the optimizer with the given
keyword arguments and stepped once per optimizer step; warmup does not apply.

Unlike sd-scripts, only torch's own module is searched: a run file must not be able to import
arbitrary code. Classes that need Python objects as arguments (LambdaLR's functions, SequentialLR's
schedulers) or a metric (ReduceLROnPlateau) cannot be given in text and are refused.
"""

from __future__ import annotations

import inspect
from typing import Sequence

from engine.config.settings_scheduler_class import ARGS_FIELD, TORCH_PREFIX, parse_scheduler_args
from engine.config.values import did_you_mean
from engine.problems import Problem, ProblemError, error

TYPE_FIELD = "optimizer.scheduler_type"
NOT_FROM_TEXT = frozenset(("LRScheduler", "_LRScheduler", "LambdaLR", "MultiplicativeLR", "SequentialLR",
                           "ChainedScheduler", "ReduceLROnPlateau"))


def usable_classes() -> dict[str, type]:
    from torch.optim import lr_scheduler

    return {name: cls for name, cls in vars(lr_scheduler).items()
            if inspect.isclass(cls) and issubclass(cls, lr_scheduler.LRScheduler) and name not in NOT_FROM_TEXT
            and not name.startswith("_")}


def scheduler_problems(name: str, items: Sequence[str]) -> list[Problem]:
    """Everything wrong with this class and these arguments, found by building it on a dummy optimizer."""
    try:
        _build(_dummy_optimizer(), name, items)
    except ProblemError as exc:
        return exc.problems
    return []


def build_custom_scheduler(optimizer, name: str, items: Sequence[str]):
    return _build(optimizer, name, items)


def _build(optimizer, name: str, items: Sequence[str]):
    cls = _class(name)
    kwargs = parse_scheduler_args(items)
    parameters = inspect.signature(cls.__init__).parameters
    known = [p for p in parameters if p not in ("self", "optimizer")]
    problems = []
    for key in kwargs:
        if key not in parameters or key in ("self", "optimizer"):
            hint = did_you_mean(key, known) or f"{cls.__name__} takes: {', '.join(known)}"
            problems.append(error(ARGS_FIELD, f"{cls.__name__} has no argument '{key}'", hint))
    missing = [p.name for p in parameters.values() if p.name not in ("self", "optimizer")
               and p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
               and p.name not in kwargs]
    if missing:
        problems.append(error(ARGS_FIELD, f"{cls.__name__} needs {', '.join(missing)}",
                              "add " + " ".join(f"{m}=…" for m in missing) + " to optimizer.scheduler_args"))
    if problems:
        raise ProblemError(problems)
    try:
        return cls(optimizer, **kwargs)
    except (TypeError, ValueError, ZeroDivisionError) as why:
        raise ProblemError([error(ARGS_FIELD, f"{cls.__name__} refused its arguments: {why}",
                                  "check the values against torch's documentation of the class")]) from None


def _class(name: str) -> type:
    short = name.strip()
    short = short[len(TORCH_PREFIX):] if short.startswith(TORCH_PREFIX) else short
    classes = usable_classes()
    if short in classes:
        return classes[short]
    if short in NOT_FROM_TEXT:
        why = f"{short} needs Python objects or a metric as arguments, which a settings file cannot give"
    else:
        why = f"'{name}' is not a scheduler class of torch.optim.lr_scheduler"
    raise ProblemError([error(TYPE_FIELD, why, did_you_mean(short, list(classes)) or "usable: " + ", ".join(sorted(classes)))])


def _dummy_optimizer():
    import torch

    # AdamW: momentum-cycling classes (CyclicLR, OneCycleLR) find the betas they adjust
    return torch.optim.AdamW([torch.zeros(1, requires_grad=True)], lr=1e-3)
