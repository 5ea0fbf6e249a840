"""Saving by optimizer steps, as the Kohya scripts do: intermediate files, pruning, state at the end."""

from __future__ import annotations

from ..problems import Problem, warning
from ..schema import Setting


def _needs_step_saves(values):
    return None if values.get("training.save_every_n_steps") else "only with 'save every N steps'"


STEP_SAVE_SETTINGS = [
    Setting(
        "training.save_every_n_steps", "int", None, "Save every N steps",
        "Also write '<name>-step00000500.safetensors' every N optimizer steps.",
        "Saves an intermediate LoRA each time the step count reaches a multiple of N, named with the "
        "step number in 8 digits as the Kohya scripts name it. Works beside the epoch saves; useful "
        "for long epochs. The final file is always written. Empty: no step saves.",
        "advanced", kohya="save_every_n_steps", optional=True, minimum=1, tier="expected",
        empty_means="no step saves",
    ),
    Setting(
        "training.save_last_n_steps", "int", None, "Keep step saves of last N steps",
        "Delete this run's step saves older than N steps (a number of steps, not of files).",
        "After each step save, the step saves this run made more than N steps before the current step "
        "are removed, so with N = 3 × 'save every N steps' about three stay. Files from other runs are "
        "never touched. Empty: keep all.",
        "advanced", kohya="save_last_n_steps", optional=True, minimum=1, tier="expected",
        applies=_needs_step_saves, empty_means="keep all",
    ),
    Setting(
        "training.save_last_n_steps_state", "int", None, "Keep step states of last N steps",
        "Like 'keep step saves of last N steps', for the resumable state folders.",
        "The state folders written with step saves are removed once they are more than N steps old. "
        "Empty: the same window as the step saves themselves.",
        "advanced", kohya="save_last_n_steps_state", optional=True, minimum=1, tier="expected",
        applies=lambda v: None if v.get("training.save_state") and v.get("training.save_every_n_steps")
        else "only with 'save resumable state' and step saves",
        empty_means="follows save_last_n_steps",
    ),
    Setting(
        "training.save_state_on_train_end", "bool", False, "Save state at the end",
        "Write the resumable state once, when the run ends, instead of with every save.",
        "Stores the optimizer, schedule and progress beside the final file only, so the run can be "
        "continued later (for example with more steps) without the disk cost of a state per save. "
        "'Save resumable state' writes one with every save and includes this.",
        "advanced", kohya="save_state_on_train_end", tier="expected",
    ),
]


def step_save_rules(v) -> list[Problem]:
    """Pruning settings that would do nothing, said where they are set."""
    out = []
    if not v["training.save_every_n_steps"]:
        for key in ("training.save_last_n_steps", "training.save_last_n_steps_state"):
            if v[key]:
                out.append(warning(key, "does nothing without step saves", "set training.save_every_n_steps, or clear this"))
    elif v["training.save_last_n_steps_state"] and not v["training.save_state"]:
        out.append(warning("training.save_last_n_steps_state", "does nothing: step saves only carry a state with training.save_state",
                           "turn training.save_state on, or clear this"))
    return out
