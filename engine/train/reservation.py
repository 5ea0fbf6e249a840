"""A run's hold on its output: the folder made, the output name locked, the run registered, and
what a second stop needs to end the run at once (see control.py).

Torch-free: all of it happens before the model loads.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..config import RunConfig
from ..events import EventWriter
from ..outputs import OutputLock, collision_problems
from ..problems import Problem, ProblemError, error
from ..runs import create_run, new_run_id, remove_run
from .interrupted_saves import clean_interrupted_saves


def raise_errors(problems: list[Problem]) -> None:
    if any(p.is_error for p in problems):
        raise ProblemError(problems)


class Reservation:
    """The output folder made, the output name locked for the run's life, the run registered."""

    def __init__(self, cfg: RunConfig, epochs: int, *, resuming: bool, config_path: str | None, yaml_text: str,
                 run_id: str | None):
        output = Path(cfg.folders.output)
        self.made_output = not output.exists()
        try:
            output.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ProblemError([error("folders.output", f"{output} cannot be created: {exc.strerror or exc}",
                                      "choose a folder you can write to")]) from None
        run_id = run_id or new_run_id()
        self.lock = OutputLock(output, cfg.folders.output_name)
        self.run = None
        # The app's launcher made the run's folder (its console log is in it) and a dashboard watches
        # it: taking the registration back must leave that folder for the refusal to be told there.
        self.launcher_folder = (output.resolve() / ".runs" / run_id).is_dir()
        try:
            self.lock.acquire(run_id)
            # Checked again now that no other run can write these names: one may have finished meanwhile.
            raise_errors(collision_problems(cfg, epochs, resuming=resuming, run_file=config_path, yaml_text=yaml_text,
                                             lock_held=True))
            self.run = create_run(output, run_id=run_id, config_text=yaml_text,
                                  config_path=str(Path(config_path).resolve()) if config_path else None,
                                  output_name=cfg.folders.output_name)
        except BaseException:
            self.release()
            self._remove_output()
            raise

    def undo(self) -> None:
        if self.run is not None and self.launcher_folder:
            for path in (self.run.events, self.run.config_copy):
                path.unlink(missing_ok=True)
        elif self.run is not None:
            remove_run(self.run)
        self.release()
        self._remove_output()

    def release(self) -> None:
        self.lock.release()

    def _remove_output(self) -> None:
        if self.made_output:
            try:
                self.lock.path.parent.rmdir()  # only when empty: never anything the user put there
            except OSError:
                pass


class AbortState:
    """What an abort (a second stop) needs, filled in as the run gets going; used on the watcher thread."""

    def __init__(self, cfg: RunConfig):
        self.cfg = cfg
        self.events: EventWriter | None = None
        self.trainer = None
        self.reservation: Reservation | None = None

    def abort(self, reason: str) -> None:
        trainer = self.trainer
        step = trainer.progress.step if trainer is not None else 0
        outputs = [p for p in (trainer.outputs if trainer is not None else []) if p.exists()]
        saved = f"the last saved file is intact: {outputs[-1]}" if outputs else "nothing was saved"
        message = (f"{reason}; {saved}" if "before training began" in reason else
                   f"{reason} at step {step}, without a final save; {saved}")
        if self.events is not None:
            try:
                self.events.emit("run_finished", status="stopped", outputs=[str(p) for p in outputs], step=step,
                                 message=message, aborted=True)
            except (OSError, ValueError):
                pass
        try:
            # an interrupted save's temporary file; the lock keeps other runs' files out of reach
            clean_interrupted_saves(Path(self.cfg.folders.output), self.cfg.folders.output_name)
        except Exception:  # noqa: BLE001 - ending anyway
            pass
        if self.reservation is not None:
            self.reservation.release()
        try:
            print(f"\n{message}", file=sys.stderr, flush=True)
        except (OSError, ValueError):
            pass
