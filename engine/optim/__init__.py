"""Optimizers and learning-rate schedules.

`extra_args` types and checks `optimizer.extra_args`, `numbers` holds the schedule arithmetic the
wizard shows (both torch-free), `optimizers` builds the optimizer and `schedules` its scheduler and
curve. This package file stays light: import `engine.optim.optimizers` / `engine.optim.schedules`
where torch is wanted.
"""

from .extra_args import OPTIMIZER_SPECS, check_optimizer_args, parse_extra_args
from .numbers import parse_step_rules, warmup_steps

__all__ = ["OPTIMIZER_SPECS", "check_optimizer_args", "parse_extra_args", "parse_step_rules", "warmup_steps"]
