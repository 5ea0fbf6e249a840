"""Learning-rate schedules: the scheduler a run steps, and the whole curve for the dashboard.

Schedules come from diffusers' `get_scheduler` (the ones Kohya's scripts use), with two additions:
`adafactor` proxies Adafactor's own step size (transformers' AdafactorSchedule), and
`piecewise_constant` is built here because diffusers' version ignores the warmup the wizard offers.
"""

from __future__ import annotations

import math
from typing import Mapping

import torch
from diffusers.optimization import get_scheduler
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

from engine.config.settings_optimizer import SCHEDULERS
from engine.problems import ProblemError, error

from .custom_schedule import build_custom_scheduler
from .numbers import adafactor_relative_step, parse_step_rules, warmup_steps
from .optimizers import unwrap_optimizer

CURVE_POINTS = 200


def build_scheduler(optimizer: torch.optim.Optimizer, *, name: str, total_steps: int,
                    warmup_percent: float = 0.0, num_cycles: int = 1, power: float = 1.0,
                    step_rules: str = "", scheduler_type: str = "", scheduler_args=()) -> LRScheduler:
    """The scheduler for `name`, to be stepped once per optimizer step over `total_steps` steps;
    a `scheduler_type` (a torch class, see custom_schedule) replaces it."""
    if scheduler_type:
        return build_custom_scheduler(optimizer, scheduler_type, scheduler_args)
    if name not in SCHEDULERS:
        raise ProblemError([error("optimizer.scheduler", f"'{name}' is not a known schedule",
                                  "choose one of: " + ", ".join(SCHEDULERS))])
    warmup = warmup_steps(name, warmup_percent, total_steps)
    if name == "adafactor":
        return _adafactor_schedule(optimizer)
    if name == "piecewise_constant":
        rules = parse_step_rules(step_rules)
        return LambdaLR(optimizer, lambda step: _ramp(step, warmup) * rules.multiplier(step))
    try:
        return get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=total_steps,
                             num_cycles=num_cycles, power=power)
    except ValueError as why:  # polynomial refuses a rate at or below its floor of 1e-7
        raise ProblemError([error("optimizer.scheduler", f"the '{name}' schedule cannot run: {why}",
                                  "raise the learning rate or choose another schedule")]) from None


def _ramp(step: int, warmup: int) -> float:
    return min(1.0, step / warmup) if warmup > 0 else 1.0


def _adafactor_schedule(optimizer: torch.optim.Optimizer) -> LRScheduler:
    optimizer = unwrap_optimizer(optimizer)
    groups = optimizer.param_groups
    if type(optimizer).__name__ != "Adafactor" or not all(g.get("relative_step") for g in groups):
        raise ProblemError([error("optimizer.scheduler",
                                  "the 'adafactor' schedule works only with the Adafactor optimizer choosing its "
                                  "own step size", "choose optimizer.name: Adafactor, or another schedule")])
    from transformers.optimization import AdafactorSchedule

    # Until the first step the schedule can only report a starting value: Adafactor's first step size.
    return AdafactorSchedule(optimizer, initial_lr=adafactor_relative_step(1, bool(groups[0].get("warmup_init"))))


def lr_curve(name: str, base_lrs: Mapping[str, float], total_steps: int, *, warmup_percent: float = 0.0,
             num_cycles: int = 1, power: float = 1.0, step_rules: str = "", scheduler_type: str = "",
             scheduler_args=(), max_points: int = CURVE_POINTS) -> dict[str, list[tuple[int, float]]]:
    """The whole schedule per group as (step, lr) points, step 1 … total_steps, lr the rate that step uses.

    At most about `max_points` points: evenly spaced plus the steps on both sides of every corner
    (end of warmup, piecewise rule steps, cosine restarts). Computed from the real scheduler's
    formula on a dummy parameter, so no model is touched. For `adafactor` it is Adafactor's relative
    step size, before the per-weight scaling the optimizer applies when scale_parameter is on.
    """
    if total_steps <= 0 or not base_lrs:
        return {group: [] for group in base_lrs}
    if scheduler_type:
        return _stepped_curve(base_lrs, total_steps, scheduler_type, scheduler_args, max_points)
    warmup = warmup_steps(name, warmup_percent, total_steps)
    steps = _curve_steps(name, total_steps, warmup, num_cycles, step_rules, max_points)
    if name == "adafactor":
        return {group: [(step, adafactor_relative_step(step)) for step in steps] for group in base_lrs}
    groups = list(base_lrs)
    dummies = [{"params": [torch.zeros(1, requires_grad=True)], "lr": float(base_lrs[g])} for g in groups]
    # The default rate matters to polynomial, which reads it as the starting rate: mirror build_optimizer.
    optimizer = torch.optim.SGD(dummies, lr=max(float(lr) for lr in base_lrs.values()))
    scheduler = build_scheduler(optimizer, name=name, total_steps=total_steps, warmup_percent=warmup_percent,
                                num_cycles=num_cycles, power=power, step_rules=step_rules)
    # Every schedule here is a LambdaLR: the rate after k scheduler steps is base × lambda(k).
    return {
        group: [(step, scheduler.base_lrs[i] * scheduler.lr_lambdas[i](step - 1)) for step in steps]
        for i, group in enumerate(groups)
    }


def _stepped_curve(base_lrs: Mapping[str, float], total_steps: int, scheduler_type: str, scheduler_args,
                   max_points: int) -> dict[str, list[tuple[int, float]]]:
    """A scheduler class has no formula to sample: step it on a dummy optimizer and keep evenly
    spaced points (stepping costs microseconds; the curve is drawn once per run)."""
    groups = list(base_lrs)
    dummies = [{"params": [torch.zeros(1, requires_grad=True)], "lr": float(base_lrs[g])} for g in groups]
    optimizer = torch.optim.AdamW(dummies, lr=max(float(lr) for lr in base_lrs.values()))
    scheduler = build_custom_scheduler(optimizer, scheduler_type, scheduler_args)
    every = max(1, math.ceil(total_steps / max_points))
    curve: dict[str, list[tuple[int, float]]] = {group: [] for group in groups}
    for step in range(1, total_steps + 1):
        if step % every == 1 % every or step == total_steps:
            for group, param_group in zip(groups, optimizer.param_groups):
                curve[group].append((step, float(param_group["lr"])))
        optimizer.step()  # no gradients: nothing moves, but torch wants a step before the scheduler's
        scheduler.step()
    return curve


def _curve_steps(name: str, total: int, warmup: int, num_cycles: int, step_rules: str, max_points: int) -> list[int]:
    if total <= max_points:
        return list(range(1, total + 1))
    corners = _corner_steps(name, total, warmup, num_cycles, step_rules)
    if len(corners) > max_points // 2:  # too many restarts to show each: an even sample will do
        corners = set()
    even = max(2, max_points - len(corners))
    spaced = {1 + round(i * (total - 1) / (even - 1)) for i in range(even)}
    return sorted(step for step in spaced | corners if 1 <= step <= total)


def _corner_steps(name: str, total: int, warmup: int, num_cycles: int, step_rules: str) -> set[int]:
    """Steps (1-based) on both sides of each sudden change, so a sampled curve keeps its corners."""
    changes: list[float] = []  # scheduler step counts at which the rate changes course
    if warmup:
        changes.append(warmup)
    if name == "piecewise_constant":
        changes += parse_step_rules(step_rules).boundaries
    if name == "cosine_with_restarts":
        changes += [warmup + cycle * (total - warmup) / num_cycles for cycle in range(1, num_cycles)]
    corners = set()
    for change in changes:
        first_after = math.ceil(change)  # the first scheduler step count past the change
        corners.update((first_after, first_after + 1))  # step n uses the rate after n-1 scheduler steps
    return corners
