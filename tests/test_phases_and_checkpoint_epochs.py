"""A real run announces its long stretches, and every place that names a save's epoch agrees.

The convention is sd-scripts' train_network.py: `ss_epoch` counts the epochs completed when the
file was written (0 inside the first epoch, N at the end of epoch N, the epoch count at the end).
The file's metadata, the `checkpoint` event, the dashboard's panel and log, and the console line
all say that same number, worded as "N epochs done".
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from safetensors import safe_open

from engine.console import ConsoleReporter
from engine.train.control import RunControl
from engine.train.entry import run_config
from tui_lora.dashboard.panels import CheckpointPanel
from tui_lora.dashboard.reducer import build_state


def ss_epoch(path: str) -> str:
    with safe_open(path, "pt") as handle:
        return handle.metadata()["ss_epoch"]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, model_cache):
    """Two epochs of two steps, a save-now at step 1, an epoch save, a sample at the end."""
    root = tmp_path_factory.mktemp("phases")
    with pytest.MonkeyPatch.context() as env:  # the per-test isolation fixture has not run yet
        env.setenv("XDG_STATE_HOME", str(root / "state"))
        env.setenv("TUI_LORA_CACHE", str(model_cache))
        return _record(root)


def _record(root: Path) -> list[dict]:
    from engine.config import RunConfig
    from tests.helpers import write_small_concepts

    cfg = RunConfig.from_values({
        "model.quick_pick": "builtin-tiny-sd1", "folders.images": str(write_small_concepts(root / "data")),
        "folders.output": str(root / "out"), "folders.output_name": "phases", "network.rank": 2,
        "training.batch_size": 2, "training.epochs": 2, "training.save_every_n_epochs": 1, "training.seed": 1,
        "training.cpu_threads_per_process": 1, "buckets.step": 32, "optimizer.name": "AdamW",
        "sampling.prompts": ["red thing --s 2"],
    })
    control = RunControl()
    events: list[dict] = []

    def on_event(event: dict) -> None:
        events.append(event)
        if event["type"] == "step" and event["step"] == 1:
            control.save_requested.set()  # what SIGUSR1 does: a save inside the first epoch

    result = run_config(cfg, on_event=on_event, control=control)
    assert result.status == "completed", result.message
    return events


@pytest.mark.slow
def test_long_stretches_are_announced_before_they_start_and_end_with_their_own_event(recorded):
    types = [e["type"] for e in recorded]
    phases = [(i, e["name"]) for i, e in enumerate(recorded) if e["type"] == "phase"]
    names = [name for _, name in phases]
    assert names[:3] == ["loading_model", "caching", "first_step"], names
    assert "saving" in names and "sampling" in names
    ends = {"loading_model": "run_started", "caching": "caching", "first_step": "step", "saving": "checkpoint",
            "sampling": "sample"}
    for index, name in phases:
        assert ends[name] in types[index + 1:], f"{name} never ended"
        assert recorded[index]["label"] and recorded[index]["elapsed_s"] >= 0
    assert types.index("phase") < types.index("run_started")  # loading is said before it begins


@pytest.mark.slow
def test_a_saves_epoch_means_epochs_done_in_the_file_the_event_the_panel_and_the_log(recorded):
    saves = [e for e in recorded if e["type"] == "checkpoint" and e["kind"] != "state"]
    by_kind = {e["kind"]: e for e in saves}
    assert by_kind["manual"]["step"] == 1 and by_kind["manual"]["epoch"] == 0  # inside epoch 1 of 2
    assert by_kind["epoch"]["epoch"] == 1 and Path(by_kind["epoch"]["path"]).name == "phases-000001.safetensors"
    assert by_kind["final"]["epoch"] == 2
    for event in saves:
        assert ss_epoch(event["path"]) == str(event["epoch"])  # the file says what the event says

    manual_only = [e for e in recorded if not (e["type"] == "checkpoint" and e["kind"] != "manual")
                   and e["type"] not in ("run_finished", "epoch_end")]
    manual_only = manual_only[:manual_only.index(by_kind["manual"]) + 1]
    state = build_state(manual_only)
    assert state.progress.epoch == 1  # the progress bar's "epoch 1/2" (in progress)
    panel_text = "\n".join(line.plain if hasattr(line, "plain") else line
                           for line in CheckpointPanel().lines(state, 40, 3))
    assert "step 1 · 0 epochs done" in panel_text and "epoch 0" not in panel_text
    assert any("0 epochs done" in line.text for line in state.log if line.text.startswith("saved"))

    console = io.StringIO()
    reporter = ConsoleReporter(console, live=False)
    for event in saves:
        reporter(event)
    printed = console.getvalue()
    assert "step 1, 0 epochs done" in printed and "1 epoch done" in printed and "2 epochs done" in printed
