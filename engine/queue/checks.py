"""The checks a queued run goes through: when it is added, and again just before it starts.

Adding runs the same checks as `tui-lora validate` (the run file's settings and its dataset), so
the messages are the same. Hours may pass before the run's turn, so the worker checks again with
what only the moment of starting can tell: images deleted meanwhile, an output name another run
has taken, a disk without room for the files. No torch.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from ..config import RunConfig, config_from_document, load_run_file, load_yaml_text
from ..plan import RunPlan, plan_run
from ..problems import Problem, ProblemError, error

DISK_MARGIN_BYTES = 64 * 2**20  # logs, events, samples and the run-file copy
STATE_FACTOR = 4  # a resumable state holds fp32 weights and two optimizer moments per weight


def check_run_file(path: str | os.PathLike, text: str | None = None) -> tuple[RunConfig | None, RunPlan | None, list[Problem]]:
    """(config, plan, problems) as `validate` finds them; config and plan are None when the file
    itself does not load. With `text`, that text is checked (messages still name `path`)."""
    try:
        if text is None:
            cfg, warnings = load_run_file(path)
        else:
            cfg, warnings = config_from_document(load_yaml_text(text, str(path)), str(path))
    except ProblemError as exc:
        return None, None, exc.problems
    plan = plan_run(cfg)
    return cfg, plan, warnings + plan.problems


@contextmanager
def working_folder(folder: str):
    """Relative paths in a run file are relative to where it was queued from."""
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def bytes_needed(cfg: RunConfig, plan: RunPlan) -> int:
    """About how much this run writes: its LoRA files and resumable states (only the margin when
    the file size cannot be told before the model is built)."""
    size = plan.estimated_file_bytes
    if size is None:
        return DISK_MARGIN_BYTES
    every = cfg.training.save_every_n_epochs
    intermediate = (plan.epochs - 1) // every if every else 0
    if cfg.training.save_last_n_epochs:
        intermediate = min(intermediate, cfg.training.save_last_n_epochs)
    step_every, total = cfg.training.save_every_n_steps, plan.total_steps or 0
    step_saves = len(range(step_every, total, step_every)) if step_every else 0
    if step_every and cfg.training.save_last_n_steps:  # kept: the saves within the last N steps
        step_saves = min(step_saves, cfg.training.save_last_n_steps // step_every + 1)
    files = 1 + intermediate + step_saves
    states = files if cfg.training.save_state else 1 if cfg.training.save_state_on_train_end else 0
    return size * files + size * STATE_FACTOR * states + DISK_MARGIN_BYTES


def disk_problem(cfg: RunConfig, plan: RunPlan) -> Problem | None:
    output = Path(cfg.folders.output).absolute()
    existing = next((p for p in [output, *output.parents] if p.exists()), None)
    needed = bytes_needed(cfg, plan)
    if existing is None:
        return None
    free = shutil.disk_usage(existing).free
    if free >= needed:
        return None
    return error("folders.output", f"the disk holding {output} has {_mib(free)} free; this run writes about {_mib(needed)}",
                 "free some space, or point folders.output at another disk")


def _mib(count: int) -> str:
    return f"{count / 2**20:.0f} MiB"


def problems_before_start(snapshot: str, cwd: str, *, resuming: bool = False) -> list[Problem]:
    """Errors that stop this run from starting now (empty: it may start)."""
    from ..train.preflight import preflight  # torch-free, like everything it imports

    if not Path(cwd).is_dir():
        return [error("queue", f"the folder it was queued from ({cwd}) no longer exists",
                      "queue the run file again from an existing folder")]
    with working_folder(cwd):
        cfg, plan, problems = check_run_file(snapshot)
        if cfg is not None and plan is not None and not any(p.is_error for p in problems):
            problems = problems + preflight(cfg, plan, resuming=resuming)
            disk = disk_problem(cfg, plan)
            if disk is not None:
                problems.append(disk)
    return [p for p in problems if p.is_error]


def reason_text(problems: list[Problem]) -> str:
    first = problems[0]
    more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
    hint = f" ({first.hint})" if first.hint else ""
    return f"{first.field}: {first.message}{hint}{more}"


def saved_state_exists(output: str, name: str) -> bool:
    """A complete resumable state of this output name (the layout engine/train/resume_state.py writes)."""
    folder = Path(output)
    try:
        return any(p.name.startswith(name) and p.name.endswith("-state") and (p / "progress.json").is_file()
                   for p in folder.iterdir())
    except OSError:
        return False
