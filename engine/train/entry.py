"""Running a training job end to end: checks, registration, signals, events, and exit codes.

`run_from_file` is what `tui-lora train` and `python -m engine train` call. Everything the user can
fix is checked before any model loads; failures end as an `error` event plus `run_finished`
(status failed) and a one-line reason, never a bare traceback.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import check_rules, RunConfig, dump_run_yaml, load_run_file
from ..events import EventWriter
from ..problems import Problem, ProblemError, error
from ..outputs import existing_outputs
from ..runs import RunDir, record_run_ending
from .control import RunControl, StopRequested
from .interrupted_saves import clean_interrupted_saves
from .preflight import output_problems, package_problems
from .reservation import AbortState, Reservation, raise_errors

if TYPE_CHECKING:  # planning scans the images (numpy, PIL): it runs after the run registers
    from ..plan import RunPlan


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
    """Check, register, train. The quick checks come first and the run registers before anything
    slow (imports, model checks), so `tui-lora monitor` finds it within a second of the start; a
    slow check that fails takes the registration back, so a refused run leaves nothing behind."""
    if warnings is None:  # a config built in code has not been through the run-file checks
        warnings = check_rules(cfg.values)
    run_id = run_id or os.environ.get("TUI_LORA_RUN_ID") or None
    resuming = resume is not None
    yaml_text = dump_run_yaml(cfg)
    main = _is_main_process()
    problems = list(warnings or []) + output_problems(cfg, resuming=resuming, run_file=config_path,
                                                      yaml_text=yaml_text, collisions=main)
    if run_id is not None and not _SAFE_RUN_ID.fullmatch(run_id):
        problems.append(error("--run-id", f"'{run_id}' is not a usable run id", "letters, digits, '-', '_' and '.'"))
    raise_errors(problems)
    output = Path(cfg.folders.output)
    control = control or RunControl()
    control.install()  # from the first write on, a stop ends the run through its events
    reservation = run = events = None
    state = AbortState(cfg)
    control.on_abort = state.abort
    try:
        if main:
            reservation = Reservation(cfg, cfg.epochs, resuming=resuming, config_path=config_path,
                                       yaml_text=yaml_text, run_id=run_id)
            run = reservation.run
            state.reservation = reservation
            events = state.events = EventWriter(run.events)
            control.hangup_log = str(run.console_log)
        try:
            from ..plan import plan_run

            plan: RunPlan = plan_run(cfg)
            late = plan.problems + package_problems(cfg, plan)
            if not any(p.is_error for p in late):
                late += optimizer_hardware_problems(cfg)
            raise_errors(problems + late)
            problems += late
            saved_state = None
            if resume:
                from .resume_state import read_state, resolve_state

                # A missing, torn or hostile state is reported before any model loads.
                saved_state = read_state(resolve_state(cfg, resume))
        except ProblemError:
            if reservation is not None:
                events.close()
                reservation.undo()
            raise
        # Leftovers of a killed save go first, so a state folder caught between two renames is found.
        cleaned = clean_interrupted_saves(output, cfg.folders.output_name) if main else []
        seed = cfg.training.seed if cfg.training.seed is not None else secrets.randbelow(2**31)
        return _run(cfg, plan, seed=seed, events=events, control=control, run=run, on_event=on_event,
                    problems=problems, cleaned=cleaned, saved_state=saved_state, yaml_text=yaml_text,
                    config_path=config_path, main=main, state=state, resuming=resuming)
    finally:
        control.uninstall()
        if events:
            try:
                events.close()
            except OSError:  # a full disk refuses the last flush; the result already says why
                pass
        if reservation is not None:
            reservation.release()


def _run(cfg: RunConfig, plan: RunPlan, *, seed: int, events: EventWriter | None, control: RunControl,
         run: RunDir | None, on_event, problems: list[Problem], cleaned: list[str], saved_state,
         yaml_text: str, config_path: str | None, main: bool, state: AbortState | None = None,
         resuming: bool = False) -> RunResult:
    from .loop import Trainer, TrainingFailure
    from .resume_state import StatefulTrainer

    stateful = cfg.training.save_state or cfg.training.save_state_on_train_end or saved_state is not None
    trainer_cls = StatefulTrainer if stateful else Trainer
    trainer = trainer_cls(cfg, plan, seed=seed, events=events, control=control, run_id=run.run_id if run else "",
                          on_event=on_event)
    if resuming:  # a resumed run continues the files of its output name: those may be replaced
        trainer.replaceable.update(existing_outputs(cfg, plan.epochs))
    if state is not None:
        state.trainer = trainer
    try:
        for problem in problems:
            trainer.emit("warning", message=problem.message, field=problem.field, hint=problem.hint)
        if cleaned:
            trainer.emit("log", message=f"removed {len(cleaned)} unfinished file(s) an interrupted save left: "
                                        + ", ".join(cleaned[:3]))
        control.check_stop()
        trainer.setup()
        control.check_stop()
        if saved_state is not None:
            trainer.load_state(saved_state)
        trainer.started_event(hashlib.sha256(yaml_text.encode()).hexdigest()[:16])
        trainer.cache_latents()
        trainer.prepare()
        control.check_stop()
        trainer.call_extensions("on_run_start")
        if main:
            _copy_run_file(trainer, yaml_text, config_path)
        control.training = True
        status = trainer.run()
        result = RunResult(status, list(trainer.outputs), run=run, trainer=trainer)
        if status != "completed":
            result.message = f"stopped by {control.stop_signal or 'request'} at step {trainer.progress.step}"
        trainer.emit("run_finished", status=status, outputs=[str(p) for p in trainer.outputs],
                     step=trainer.progress.step, message=result.message)
        trainer.finish(status)
        return result
    except StopRequested:
        return _ended(trainer, run, f"stopped by {control.stop_signal or 'request'} before training began; "
                      "nothing was saved", "", status="stopped")
    except ProblemError as exc:
        first = exc.errors[0] if exc.errors else exc.problems[0]
        return _ended(trainer, run, f"{first.field}: {first.message}", first.hint)
    except TrainingFailure as exc:
        return _ended(trainer, run, exc.message, exc.hint)
    except KeyboardInterrupt:
        return _ended(trainer, run, "interrupted twice: stopped without a final save",
                      "the last saved file is intact", status="stopped")
    except Exception as exc:  # noqa: BLE001 - reported as an event with advice
        message, hint = explain_failure(exc, cfg)
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT) and trainer.progress.step:
            # the disk filled up mid-run (an event, a sample): the steps trained so far are kept elsewhere
            from .saving import output_file

            final = output_file(cfg)
            rescued = trainer.rescue_weights(final)
            if rescued is not None:
                message += f"; the LoRA trained so far was saved to {rescued}"
                hint = f"free space in {final.parent}, then move it there: mv '{rescued}' '{final}'"
        return _ended(trainer, run, message, hint, exc=exc)


def optimizer_hardware_problems(cfg: RunConfig) -> list[Problem]:
    """An 8-bit optimizer imports fine on machines whose hardware bitsandbytes cannot drive; one
    step on a small tensor finds out in milliseconds instead of after the model has loaded."""
    from ..optim.extra_args import OPTIMIZER_SPECS

    spec = OPTIMIZER_SPECS.get(cfg.optimizer.name)
    if spec is None or not spec.module.startswith("bitsandbytes"):
        return []
    import torch

    from ..optim.optimizers import build_optimizer

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        param = torch.nn.Parameter(torch.zeros(8192, device=device))  # above bitsandbytes' 8-bit minimum
        optimizer, _ = build_optimizer(cfg.optimizer.name, [{"params": [param], "lr": 1e-4, "name": "probe"}])
        param.grad = torch.full_like(param, 1e-3)
        optimizer.step()
    except ProblemError as exc:
        return exc.errors
    except Exception as exc:  # noqa: BLE001 - whatever the library raises, the answer is the same
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        return [error("optimizer.name", f"{cfg.optimizer.name} cannot run on this machine ({device.type}): "
                      f"bitsandbytes failed a test step: {reason}",
                      "choose AdamW or Adafactor, or install a bitsandbytes build for this hardware")]
    return []


_SAFE_RUN_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")
def _copy_run_file(trainer, yaml_text: str, config_path: str | None) -> None:
    """`<name>.yaml` beside the LoRA: the settings that made it. Written only where the start-up
    checks found no such file (or overwrite / resume allow replacing it); the user's own run file,
    or a file that appeared since, is never rewritten."""
    from ..config import write_text_atomic

    cfg = trainer.cfg
    target = Path(cfg.folders.output) / f"{cfg.folders.output_name}.yaml"
    if config_path and target.exists() and target.resolve() == Path(config_path).resolve():
        return
    if os.path.lexists(target) and not trainer.may_replace(target):
        try:
            if target.read_bytes() == yaml_text.encode("utf-8"):
                return
        except OSError:
            pass
        trainer.emit("warning", message=f"{target} appeared while the run started and is kept; the run's "
                     "settings are in its run folder (run.yaml)", field="folders.output_name")
        return
    write_text_atomic(target, yaml_text, overwrite=True)
    trainer.note_written(target)


def memory_advice(cfg: RunConfig) -> str:
    """What to change, in this run's own settings, so the next try fits in memory."""
    t = cfg.training
    tips = []
    if t.batch_size > 1:
        tips.append(f"lower training.batch_size (now {t.batch_size})")
    width, height = t.max_resolution
    tips.append(f"lower training.max_resolution (now {width}x{height})")
    if not t.gradient_checkpointing:
        tips.append("turn on training.gradient_checkpointing")
    if "8bit" not in cfg.optimizer.name:
        tips.append("use an 8-bit optimizer (optimizer.name: AdamW8bit)")
    if not t.cache_latents:
        tips.append("turn on training.cache_latents")
    return "; ".join(tips) + "; the last saved LoRA is intact"


def explain_failure(exc: BaseException, cfg: RunConfig) -> tuple[str, str]:
    import torch

    text = str(exc).lower()
    if isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in text:
        return "the GPU ran out of memory", memory_advice(cfg)
    if isinstance(exc, MemoryError) or "can't allocate memory" in text:
        return "the computer ran out of memory (RAM)", memory_advice(cfg)
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return (f"the disk is full ({exc.filename or cfg.folders.output})",
                "free space in the output folder; earlier files are intact")
    return f"{type(exc).__name__}: {exc}", "see the traceback file named in the run folder"


def _emit_safely(trainer, type: str, **fields) -> bool:
    """Report even when the event file cannot be written (a full disk): the caller still hears it.
    False when the events file did not take it."""
    try:
        trainer.emit(type, **fields)
        return True
    except OSError:
        if trainer.on_event:
            trainer.on_event({"type": type, **fields})
        return False


def _ended(trainer, run: RunDir | None, message: str, hint: str, *, exc: BaseException | None = None,
           status: str = "failed") -> RunResult:
    traceback_path = None
    if run is not None and exc is not None:
        try:
            traceback_path = run.path / "traceback.txt"
            traceback_path.write_text("".join(traceback.format_exception(exc)), encoding="utf-8")
        except OSError:
            traceback_path = None
    elif exc is not None:  # another rank of a multi-process run: no run folder, so its stderr is the record
        traceback.print_exception(exc, file=sys.stderr)
    if status == "failed":
        _emit_safely(trainer, "error", message=message, hint=hint,
                     traceback_path=str(traceback_path) if traceback_path else None)
    written = _emit_safely(trainer, "run_finished", status=status, outputs=[str(p) for p in trainer.outputs],
                           step=trainer.progress.step, message=message)
    if not written and run is not None:
        # the events file sits on the full disk: keep how the run ended (and where its weights went)
        # in the state folder, so `runs` reads it as failed with the reason, not as lost
        record_run_ending(run, status, message, hint)
    try:
        trainer.finish(status)
    except Exception:  # noqa: BLE001 - already ending
        pass
    return RunResult(status, list(trainer.outputs), message, hint, run, trainer)

