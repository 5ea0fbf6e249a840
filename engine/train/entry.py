"""Running a training job end to end: checks, registration, signals, events, and exit codes.

`run_from_file` is what `tui-lora train` and `python -m engine train` call. Everything the user can
fix is checked before any model loads; failures end as an `error` event plus `run_finished`
(status failed) and a one-line reason, never a bare traceback.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..config import RunConfig, dump_run_yaml, load_run_file
from ..events import EventWriter
from ..plan import RunPlan, plan_run
from ..problems import Problem, ProblemError, error
from ..runs import RunDir, create_run
from .control import RunControl
from .preflight import preflight


@dataclass
class RunResult:
    status: str  # completed | stopped | failed
    outputs: list[Path] = field(default_factory=list)
    message: str = ""
    hint: str = ""
    run: RunDir | None = None
    trainer: object | None = None  # the finished Trainer, for tests and benchmarks

    @property
    def exit_code(self) -> int:
        return {"completed": 0, "stopped": 3}.get(self.status, 1)


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) or 0) == 0


def run_from_file(path: str | os.PathLike, *, on_event: Callable[[dict], None] | None = None,
                  resume: str | None = None, run_id: str | None = None, control: RunControl | None = None) -> RunResult:
    cfg, warnings = load_run_file(path)  # ProblemError propagates: nothing has started yet
    return run_config(cfg, warnings=warnings, config_path=str(path), on_event=on_event, resume=resume,
                      run_id=run_id, control=control)


def run_config(cfg: RunConfig, *, warnings: list[Problem] | None = None, config_path: str | None = None,
               on_event: Callable[[dict], None] | None = None, resume: str | None = None, run_id: str | None = None,
               control: RunControl | None = None) -> RunResult:
    plan: RunPlan = plan_run(cfg)
    problems = list(warnings or []) + plan.problems + preflight(cfg, plan, resuming=resume is not None)
    if any(p.is_error for p in problems):
        raise ProblemError(problems)
    seed = cfg.training.seed if cfg.training.seed is not None else secrets.randbelow(2**31)
    main = _is_main_process()
    yaml_text = dump_run_yaml(cfg)
    run = events = None
    if main:
        output = Path(cfg.folders.output)
        output.mkdir(parents=True, exist_ok=True)
        run = create_run(output, run_id=run_id or os.environ.get("TUI_LORA_RUN_ID"), config_text=yaml_text,
                         config_path=str(Path(config_path).resolve()) if config_path else None,
                         output_name=cfg.folders.output_name)
        events = EventWriter(run.events)
    control = control or RunControl()
    control.install()
    from .loop import Trainer, TrainingFailure
    from .state import StatefulTrainer

    trainer_cls = StatefulTrainer if (cfg.training.save_state or resume) else Trainer
    trainer = trainer_cls(cfg, plan, seed=seed, events=events, control=control, run_id=run.run_id if run else "",
                          on_event=on_event)
    for problem in problems:
        trainer.emit("warning", message=problem.message, field=problem.field, hint=problem.hint)
    try:
        trainer.setup()
        if resume:
            trainer.load_state(resume)
        trainer.started_event(hashlib.sha256(yaml_text.encode()).hexdigest()[:16])
        trainer.cache_latents()
        trainer.prepare()
        trainer.call_extensions("on_run_start")
        if main:
            _copy_run_file(cfg, yaml_text)
        status = trainer.run()
        result = RunResult(status, list(trainer.outputs), run=run, trainer=trainer)
        trainer.emit("run_finished", status=status, outputs=[str(p) for p in trainer.outputs],
                     step=trainer.progress.step, message="" if status == "completed" else f"stopped by {control.stop_signal or 'request'}")
        trainer.finish(status)
        return result
    except ProblemError as exc:
        first = exc.errors[0] if exc.errors else exc.problems[0]
        return _failed(trainer, run, f"{first.field}: {first.message}", first.hint)
    except TrainingFailure as exc:
        return _failed(trainer, run, exc.message, exc.hint)
    except KeyboardInterrupt:
        return _failed(trainer, run, "interrupted twice: stopped without a final save",
                       "the last saved file is intact", status="stopped")
    except Exception as exc:  # noqa: BLE001 - reported as an event with advice
        message, hint = _explain(exc)
        return _failed(trainer, run, message, hint, exc=exc)
    finally:
        if events:
            events.close()


def _copy_run_file(cfg: RunConfig, yaml_text: str) -> None:
    from ..config import write_text_atomic

    target = Path(cfg.folders.output) / f"{cfg.folders.output_name}.yaml"
    write_text_atomic(target, yaml_text, overwrite=True if cfg.overwrite or not target.exists() else False)


def _explain(exc: BaseException) -> tuple[str, str]:
    import torch

    if isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower():
        return ("the GPU ran out of memory",
                "lower training.batch_size or the resolution, turn on training.gradient_checkpointing, use an 8-bit "
                "optimizer (AdamW8bit), keep training.cache_latents on; the last saved LoRA is intact")
    if isinstance(exc, OSError) and exc.errno == 28:
        return ("the disk is full", "free space in the output folder; earlier files are intact")
    return f"{type(exc).__name__}: {exc}", "see the traceback file named in the run folder"


def _failed(trainer, run: RunDir | None, message: str, hint: str, *, exc: BaseException | None = None,
            status: str = "failed") -> RunResult:
    traceback_path = None
    if run is not None and exc is not None:
        traceback_path = run.path / "traceback.txt"
        traceback_path.write_text("".join(traceback.format_exception(exc)), encoding="utf-8")
    trainer.emit("error", message=message, hint=hint, traceback_path=str(traceback_path) if traceback_path else None)
    trainer.emit("run_finished", status=status, outputs=[str(p) for p in trainer.outputs],
                 step=trainer.progress.step, message=message)
    try:
        trainer.finish(status)
    except Exception:  # noqa: BLE001 - already failing
        pass
    return RunResult(status, list(trainer.outputs), message, hint, run)


def failure_problem(message: str) -> Problem:
    return error("run", message)
