"""Schedule arithmetic that needs no torch: warmup steps, piecewise step rules, Adafactor's step size.

The wizard shows these numbers while the user types, so this module imports nothing heavy; the
schedulers in `schedules.py` use the same functions, so the review screen and the run agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from engine.config.settings_optimizer import NO_WARMUP_SCHEDULERS
from engine.problems import ProblemError, error

STEP_RULES_EXAMPLE = "e.g. '1:100,0.5:200,0.1'"


def warmup_steps(scheduler: str, warmup_percent: float, total_steps: int) -> int:
    """Steps spent ramping the learning rate up: round(percent × total / 100); 0 where no warmup applies."""
    if scheduler in NO_WARMUP_SCHEDULERS or total_steps <= 0 or warmup_percent <= 0:
        return 0
    return min(total_steps, round(warmup_percent * total_steps / 100))


@dataclass(frozen=True)
class StepRules:
    """A piecewise-constant schedule: `multiplier` holds while the step count is below `until`."""

    pieces: tuple[tuple[float, int], ...]  # (multiplier, until step), in the order written
    final: float

    def multiplier(self, step: int) -> float:
        """The multiplier after `step` optimizer steps (the same reading as diffusers' piecewise rules)."""
        for value, until in sorted(self.pieces, key=lambda piece: piece[1]):
            if step < until:
                return value
        return self.final

    @property
    def boundaries(self) -> list[int]:
        return sorted({until for _, until in self.pieces})


def parse_step_rules(text: str) -> StepRules:
    """Read 'multiplier:step,…,final' (the format of optimizer.step_rules); ProblemError if malformed."""
    parts = [part.strip() for part in text.split(",")]
    if not text.strip() or not parts[-1]:
        raise _rules_error(text, "needs at least a final multiplier")
    pieces = []
    for part in parts[:-1]:
        value, sep, until = part.partition(":")
        if not sep:
            raise _rules_error(text, f"'{part}' is not 'multiplier:step'")
        try:
            pieces.append((_multiplier(value), int(until)))
        except ValueError:
            raise _rules_error(text, f"'{part}' is not 'multiplier:step' with a whole step number") from None
        if pieces[-1][1] < 0:
            raise _rules_error(text, f"step {pieces[-1][1]} is negative")
    if ":" in parts[-1]:
        raise _rules_error(text, f"the last item '{parts[-1]}' must be a bare multiplier for the rest of the run")
    try:
        final = _multiplier(parts[-1])
    except ValueError:
        raise _rules_error(text, f"'{parts[-1]}' is not a number") from None
    return StepRules(tuple(pieces), final)


def _multiplier(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise ValueError(text)
    return value


def _rules_error(text: str, why: str) -> ProblemError:
    return ProblemError([error("optimizer.step_rules", f"'{text}' {why}", STEP_RULES_EXAMPLE)])


def adafactor_relative_step(step: int, warmup_init: bool = False) -> float:
    """Adafactor's own step size at update `step` (1-based) when relative_step is on.

    The optimizer multiplies it by each weight's RMS when scale_parameter is on, which no schedule
    can know in advance; this is the part that depends on the step alone.
    """
    step = max(1, step)
    ceiling = 1e-6 * step if warmup_init else 1e-2
    return min(ceiling, 1.0 / math.sqrt(step))
