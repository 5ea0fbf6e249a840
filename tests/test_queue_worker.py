"""The queue's detached worker training real runs (tiny model, 64 px, 2 steps each): order,
failures, pause/resume, SIGKILL and restart, and two workers on disjoint GPU sets."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from engine.events import read_events
from engine.queue.store import read_state
from engine.queue.worker_claims import live_workers
from engine.runs import list_runs
from tests.queue_support import kill_workers, queue_drained, statuses, wait_for, write_run
from tui_lora.cli import main

pytestmark = pytest.mark.slow
RUN_S = 150  # one tiny run, generous for a busy 2-core machine


@pytest.fixture(autouse=True)
def no_workers_left(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    yield
    kill_workers()


def _times(entry) -> tuple[float, float]:
    events = read_events(Path(entry.run_path) / "events.jsonl")
    return events[0]["time"], events[-1]["time"]


def test_three_runs_train_in_order_from_their_snapshots_with_a_pause_and_the_queue_empties(tiny_config, tmp_path, capsys):
    files = [write_run(tiny_config, tmp_path, name) for name in ("one", "two", "three")]
    assert main(["queue", "add", *map(str, files)]) == 0
    assert "started queue worker pid" in capsys.readouterr().out
    files[0].write_text(files[0].read_text().replace("output_name: one", "output_name: edited"))
    # Pause while the first trains: it finishes, nothing new starts, the worker leaves.
    assert wait_for(lambda: statuses()[0] == "running", RUN_S)
    assert main(["queue", "pause"]) == 0
    assert "finishes first" in capsys.readouterr().out
    assert wait_for(lambda: not live_workers(), 2 * RUN_S)
    assert statuses() == ["completed", "queued", "queued"]
    assert main(["queue", "resume"]) == 0
    assert "started queue worker" in capsys.readouterr().out
    assert wait_for(queue_drained, 3 * RUN_S), statuses()
    entries = read_state().entries
    assert [e.status for e in entries] == ["completed"] * 3
    out = tmp_path / "out"
    assert all((out / f"{name}.safetensors").exists() for name in ("one", "two", "three"))
    assert not (out / "edited.safetensors").exists()  # the edit came after the add
    spans = [_times(e) for e in entries]
    assert spans[0][1] <= spans[1][0] and spans[1][1] <= spans[2][0]  # one at a time, in order
    runs = {r.run_id: r for r in list_runs()}
    assert all(runs[e.run_id].status == "completed" for e in entries)  # ordinary registered runs
    assert live_workers() == []


def test_a_failing_middle_run_is_recorded_and_the_third_still_trains(tiny_config, tmp_path):
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a LoRA file at all")
    files = [write_run(tiny_config, tmp_path, "first"),
             write_run(tiny_config, tmp_path, "middle", network__weights=str(broken)),
             write_run(tiny_config, tmp_path, "last")]
    assert main(["queue", "add", *map(str, files)]) == 0
    assert wait_for(queue_drained, 3 * RUN_S), statuses()
    first, middle, last = read_state().entries
    assert (first.status, middle.status, last.status) == ("completed", "failed", "completed")
    assert middle.reason and (tmp_path / "out" / "last.safetensors").exists()


def test_worker_killed_mid_run_reads_lost_and_the_restarted_worker_resumes_the_saving_run(tiny_config, tmp_path, capsys):
    saving = write_run(tiny_config, tmp_path, "saving", training__save_state=True, training__epochs=6,
                       training__save_every_n_epochs=1)
    assert main(["queue", "add", str(saving)]) == 0
    assert wait_for(lambda: read_state().entries[0].run_path, RUN_S)
    first_run = Path(read_state().entries[0].run_path)

    def saved_state() -> bool:
        return any(e.get("kind") == "state" or e.get("type") == "epoch_end" and e.get("epoch", 0) >= 2
                   for e in read_events(first_run / "events.jsonl"))

    assert wait_for(saved_state, RUN_S)
    (worker,) = live_workers()
    os.killpg(worker.pid, signal.SIGKILL)  # the worker and the run it started
    assert wait_for(lambda: not live_workers(), 10)
    capsys.readouterr()
    assert main(["queue"]) == 0
    assert "no worker" in capsys.readouterr().out
    assert main(["queue", "run"]) == 0
    assert wait_for(queue_drained, 3 * RUN_S), statuses()
    (saving_entry,) = read_state().entries
    assert saving_entry.status == "completed"
    assert saving_entry.history[0]["status"] == "lost" and saving_entry.history[0]["run_id"] == first_run.name
    runs = {r.run_id: r.status for r in list_runs()}
    assert runs[first_run.name] == "lost"
    started = next(e for e in read_events(Path(saving_entry.run_path) / "events.jsonl") if e["type"] == "run_started")
    assert started.get("resumed_from_step", 0) > 0  # continued, not started over


def test_two_workers_on_disjoint_gpu_sets_share_the_queue_and_never_share_a_set(tiny_config, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TUI_LORA_FAKE_GPU_COUNT", "4")  # CPU processes stand in for four GPUs
    assert main(["queue", "pause"]) == 0
    files = [write_run(tiny_config, tmp_path, f"r{i}") for i in range(4)]
    assert main(["queue", "add", *map(str, files)]) == 0
    with __import__("engine.queue.store", fromlist=["transaction"]).transaction() as state:
        state.paused = False
    assert main(["queue", "run", "--gpus", "0,1"]) == 0
    assert main(["queue", "run", "--gpus", "2,3"]) == 0
    assert wait_for(lambda: len(live_workers()) == 2, 20)
    capsys.readouterr()
    assert main(["queue", "run", "--gpus", "1,2"]) == 1  # overlaps both
    assert "already used" in capsys.readouterr().out
    assert wait_for(queue_drained, 4 * RUN_S), statuses()
    entries = read_state().entries
    assert [e.status for e in entries] == ["completed"] * 4
    assert {tuple(e.devices) for e in entries} == {(0,), (2,)}  # one process each: the first GPU of a set
    for a in entries:
        for b in entries:
            if a is not b and set(a.devices) & set(b.devices):
                (a0, a1), (b0, b1) = _times(a), _times(b)
                assert a1 <= b0 or b1 <= a0  # same GPU: never at the same time
        log = (Path(a.run_path) / "console.log").read_text()
        assert f"CUDA_VISIBLE_DEVICES={a.devices[0]})" in log
