"""`tui-lora runs`: one row per run within 80 columns, newest first, the running one never hidden."""

from __future__ import annotations

import json
import os

from engine.events import EventWriter
from engine.runs import RunDir, run_index_path
from tui_lora.cli import main
from tui_lora.commands.runs import SHOWN_BY_DEFAULT


def register(root, index: int, *, running: bool = False) -> str:
    """A run folder with a few events, indexed as started `index` minutes after a fixed time."""
    run_id = f"20260101-{index:06d}-abcdef"
    run = RunDir(root / "a-rather-long-folder-name-for-outputs" / f"project-{index}" / ".runs" / run_id)
    run.path.mkdir(parents=True)
    run.pid_file.write_text(str(os.getpid() if running else 999_999_999))
    with EventWriter(run.events) as writer:
        writer.emit("run_started", total_steps=1200)
        writer.emit("step", step=1200 if not running else 7, total_steps=1200)
        if not running:
            writer.emit("run_finished", status="completed", step=1200)
    index_file = run_index_path()
    index_file.parent.mkdir(parents=True, exist_ok=True)
    with open(index_file, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"run_id": run_id, "path": str(run.path), "output_name": f"a_lora_named_{index}",
                                 "started": 1_767_225_600 + 60 * index}) + "\n")
    return run_id


def test_runs_fit_80_columns_newest_first_and_keep_an_older_running_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    running = register(tmp_path, 0, running=True)  # the oldest, still going
    finished = [register(tmp_path, index) for index in range(1, 15)]
    assert main(["runs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    rows = [line.split()[0] for line in lines[1:] if line.startswith("2026")]
    assert rows[:SHOWN_BY_DEFAULT] == finished[::-1][:SHOWN_BY_DEFAULT]  # newest first
    assert rows[-1] == running and len(rows) == SHOWN_BY_DEFAULT + 1
    assert "running" in next(line for line in lines if line.startswith(running))
    assert "4 older runs not shown: `tui-lora runs --all`" in lines[-1]

    assert main(["runs", "--all"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len([line for line in lines if line.startswith("2026")]) == 15
    assert all(len(line) <= 80 for line in lines) and "not shown" not in lines[-1]
    row = next(line for line in lines if line.startswith(finished[0]))
    assert "completed" in row and "1200/1200" in row and "a_lora_named_1" in row and "…" in row


def test_monitor_with_nothing_running_says_so_and_names_the_run_it_shows(tmp_path, capsys):
    from tui_lora.dashboard import run_monitor

    newest = register(tmp_path, 2)
    register(tmp_path, 1)
    assert run_monitor(None) == 0  # not a terminal here: the plain summary
    out = capsys.readouterr().out
    assert out.startswith(f"No run is running now. Showing the newest run instead: {newest} (a_lora_named_2), "
                          "completed")
    running = register(tmp_path, 0, running=True)
    assert run_monitor(None) == 0
    out = capsys.readouterr().out
    assert "No run is running" not in out
    assert out.startswith(f"run {running} (a_lora_named_0): running") and "step 7/1200" in out
