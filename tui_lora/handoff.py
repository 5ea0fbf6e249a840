"""Save & Train: start the engine detached and switch the wizard to the run's dashboard."""

from __future__ import annotations

from pathlib import Path

from engine.config import load_run_file
from engine.problems import ProblemError

from .dashboard.control import RunControl
from .dashboard.screen import DashboardScreen
from .launch import launch_training


def launch_and_watch(app, path: Path) -> None:
    """Launcher for `WizardApp(train_launcher=...)`: the run survives the app and the terminal."""
    try:
        cfg, _ = load_run_file(path)
    except ProblemError as exc:
        app.notify("\n".join(str(p) for p in exc.errors[:3]), title="Cannot start training", severity="error")
        return
    launched = launch_training(path, cfg.folders.output)

    def after_dashboard(outcome: str | None) -> None:
        if outcome in ("detach", "quit") and not _finished(launched.run):
            app.exit(0, message=f"Training goes on in the background (pid {launched.pid}). "
                                f"Watch it again with: tui-lora monitor {launched.run.run_id}")
        else:
            app.exit(0, message=f"Run {launched.run.run_id}: see `tui-lora runs`; outputs in {cfg.folders.output}")

    # q stays out of the footer: the wizard's ^q Quit beside it does the same (WizardApp.action_quit)
    app.push_screen(DashboardScreen(launched.run.path, control=RunControl(launched.pid), q_word=None),
                    after_dashboard)


def _finished(run) -> bool:
    from engine.runs import run_status

    return run_status(run) in ("completed", "stopped", "failed")
