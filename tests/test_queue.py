"""The run queue without training: adding (checks, snapshots, concurrent adds), order, pause,
the checks before a run starts, stop_on_failure, worker liveness and device claims."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from engine.queue import checks
from engine.queue.store import read_state, transaction
from engine.queue.worker import Worker, reconcile
from engine.queue.worker_claims import DevicesTaken, WorkerClaim, live_workers, worker_alive, workers_dir
from tests.queue_support import kill_workers, write_run
from tui_lora.cli import main


@pytest.fixture(autouse=True)
def no_workers_left():
    yield
    kill_workers()


@pytest.fixture
def paused_queue(capsys):
    """A paused queue: adds land but no worker starts."""
    assert main(["queue", "pause"]) == 0
    capsys.readouterr()


def test_bad_run_file_is_refused_with_validates_messages_and_nothing_is_queued(tiny_config, tmp_path, capsys, paused_queue):
    good = write_run(tiny_config, tmp_path, "good")
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"folders: {{images: {tiny_config().folders.images}}}\nnetwork: {{rank: 0}}\ntraining: {{epochs: zero}}\n")
    assert main(["validate", str(bad)]) == 2
    validate_err = capsys.readouterr().err.splitlines()
    assert main(["queue", "add", str(good), str(bad)]) == 2
    err = capsys.readouterr().err.splitlines()
    problems = [line for line in validate_err if line.startswith("error:")]
    assert len(problems) == 2 and all(line in err for line in problems)
    assert "nothing was queued" in err[-1]
    assert read_state().entries == []


def test_adding_snapshots_the_file_so_later_edits_change_nothing_until_added_again(tiny_config, tmp_path, capsys, paused_queue):
    run_file = write_run(tiny_config, tmp_path, "first")
    original = run_file.read_text()
    assert main(["queue", "add", str(run_file)]) == 0
    out = capsys.readouterr().out
    assert "later edits do not change the queued run" in out and "paused" in out
    run_file.write_text(original.replace("output_name: first", "output_name: edited"))
    assert main(["queue", "add", str(run_file)]) == 0
    first, second = read_state().entries
    assert Path(first.snapshot).read_text() == original and first.name == "first"
    assert "output_name: edited" in Path(second.snapshot).read_text() and second.name == "edited"
    assert first.cwd == second.cwd == os.getcwd()


def test_order_front_move_remove_and_clear(tiny_config, tmp_path, capsys, paused_queue):
    files = [write_run(tiny_config, tmp_path, name) for name in ("a", "b", "c")]
    assert main(["queue", "add", *map(str, files)]) == 0
    assert main(["queue", "add", "--front", str(write_run(tiny_config, tmp_path, "d"))]) == 0

    def names():
        return [e.name for e in read_state().queued()]

    assert names() == ["d", "a", "b", "c"]
    ids = {e.name: e.id for e in read_state().entries}
    assert main(["queue", "move", str(ids["c"]), "--to", "1"]) == 0
    assert main(["queue", "move", str(ids["d"]), "--down"]) == 0
    assert main(["queue", "move", str(ids["b"]), "--up"]) == 0
    assert names() == ["c", "a", "b", "d"]
    assert main(["queue", "remove", str(ids["a"])]) == 0
    assert names() == ["c", "b", "d"]
    capsys.readouterr()
    assert main(["queue"]) == 0
    listing = capsys.readouterr().out
    assert listing.index(" c  (") < listing.index(" b  (") < listing.index(" d  (") and "paused" in listing
    assert main(["queue", "clear"]) == 0
    assert read_state().entries == [] and not any((read_state().entries))


CONCURRENT_ADDER = textwrap.dedent("""
    import sys, time
    from tui_lora.cli import main
    start = float(sys.argv[1])
    while time.time() < start:
        time.sleep(0.001)
    for path in sys.argv[2:]:
        assert main(["queue", "add", path]) == 0
""")


def test_two_processes_adding_at_once_both_land_in_order(tiny_config, tmp_path, paused_queue):
    import time

    left = [str(write_run(tiny_config, tmp_path, f"left{i}")) for i in range(4)]
    right = [str(write_run(tiny_config, tmp_path, f"right{i}")) for i in range(4)]
    start = str(time.time() + 3)  # both past their imports, then adding at the same moment
    adders = [subprocess.Popen([sys.executable, "-c", CONCURRENT_ADDER, start, *files], stdout=subprocess.DEVNULL)
              for files in (left, right)]
    assert [p.wait(timeout=120) for p in adders] == [0, 0]
    names = [e.name for e in read_state().entries]
    assert sorted(names) == sorted(Path(f).stem for f in left + right)
    assert [n for n in names if n.startswith("left")] == [f"left{i}" for i in range(4)]
    assert [n for n in names if n.startswith("right")] == [f"right{i}" for i in range(4)]
    assert len({e.id for e in read_state().entries}) == 8


def test_a_run_that_cannot_start_is_skipped_with_its_reason_and_stop_on_failure_pauses(tiny_config, tmp_path, capsys, paused_queue):
    images = tmp_path / "doomed"
    shutil.copytree(tiny_config().folders.images, images)
    gone = write_run(tiny_config, tmp_path, "gone", folders__images=str(images))
    taken = write_run(tiny_config, tmp_path, "taken")
    strict = write_run(tiny_config, tmp_path, "strict", folders__images=str(images), queue__stop_on_failure=True)
    after = write_run(tiny_config, tmp_path, "after", folders__images=str(images))
    assert main(["queue", "add", str(gone), str(taken), str(strict), str(after)]) == 0
    shutil.rmtree(images)  # deleted while the runs wait
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    (out / "taken.safetensors").write_bytes(b"an earlier LoRA")
    with transaction() as state:
        state.paused = False
    assert Worker([]).run() == 0
    entries = {e.name: e for e in read_state().entries}
    assert entries["gone"].status == "skipped" and "folders.images" in entries["gone"].reason
    assert entries["taken"].status == "skipped" and "already exists" in entries["taken"].reason
    assert entries["strict"].status == "skipped"
    assert entries["after"].status == "queued"  # the strict run paused the queue
    state = read_state()
    assert state.paused and "queue.stop_on_failure" in state.pause_reason
    assert (out / "taken.safetensors").read_bytes() == b"an earlier LoRA"


def test_disk_without_room_for_the_files_stops_the_start(tiny_config, monkeypatch):
    from engine.plan import plan_run

    import dataclasses

    cfg = tiny_config(training__save_state=True, training__epochs=4, training__save_every_n_epochs=1)
    plan = dataclasses.replace(plan_run(cfg), estimated_file_bytes=10 * 2**20)
    needed = checks.bytes_needed(cfg, plan)
    assert needed >= 4 * 5 * 10 * 2**20  # four saves, each a file and its state
    monkeypatch.setattr(checks.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**12, 10**12 - 1000, 1000))
    problem = checks.disk_problem(cfg, plan)
    assert problem is not None and problem.field == "folders.output" and "free" in problem.message
    monkeypatch.setattr(checks.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**12, 0, needed))
    assert checks.disk_problem(cfg, plan) is None


def _fake_running_entry(tmp_path, *, save_state: bool, worker_pid: int) -> None:
    """An entry marked running whose run wrote a step and whose process is gone."""
    run = tmp_path / "out" / ".runs" / "r1"
    run.mkdir(parents=True)
    (run / "events.jsonl").write_text(json.dumps({"type": "step", "step": 1, "time": 1, "seq": 1}) + "\n")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (run / "pid").write_text(str(dead.pid))
    with transaction() as state:
        from engine.queue.store import new_entry

        entry = new_entry(state, source="x.yaml", snapshot="x.yaml", cwd=str(tmp_path), name="x", output=str(tmp_path / "out"),
                          save_state=save_state)
        entry.status, entry.run_id, entry.run_path, entry.worker_pid = "running", "r1", str(run), worker_pid


@pytest.mark.parametrize("save_state", [False, True])
def test_a_run_whose_worker_died_reads_lost_or_goes_back_to_resume(tmp_path, save_state):
    _fake_running_entry(tmp_path, save_state=save_state, worker_pid=os.getpid())  # pid alive, but no lock held
    with transaction() as state:
        reconcile(state)
    (entry,) = read_state().entries
    if save_state:
        assert entry.status == "queued" and entry.resume and entry.history[0]["status"] == "lost"
    else:
        assert entry.status == "lost" and "killed" in entry.reason


def test_worker_liveness_is_a_held_lock_not_a_pid(tmp_path):
    workers_dir().mkdir(parents=True)
    # A leftover info file naming a live pid (ours) does not make a worker.
    (workers_dir() / f"{os.getpid()}.json").write_text(json.dumps({"pid": os.getpid(), "start_time": "1"}))
    assert live_workers() == [] and not (workers_dir() / f"{os.getpid()}.json").exists()
    holder = subprocess.Popen([sys.executable, "-c", "import time; from engine.queue.worker_claims import WorkerClaim; "
                               "claim = WorkerClaim([]); claim.acquire(); print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    assert [w.pid for w in live_workers()] == [holder.pid] and worker_alive(holder.pid)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert not worker_alive(holder.pid) and live_workers() == []


def test_workers_never_share_a_gpu(monkeypatch, capsys):
    monkeypatch.setenv("TUI_LORA_FAKE_GPU_COUNT", "4")
    holder = subprocess.Popen([sys.executable, "-c", "import time; from engine.queue.worker_claims import WorkerClaim; "
                               "claim = WorkerClaim([0, 1]); claim.acquire(); print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(DevicesTaken, match=f"GPU 1 is already used by queue worker pid {holder.pid} \\(GPU 0,1\\)"):
            WorkerClaim([1, 2]).acquire()
        assert main(["queue", "run", "--gpus", "1,2"]) == 1
        assert f"already used by worker pid {holder.pid}" in capsys.readouterr().out
        other = WorkerClaim([2, 3])
        other.acquire()
        other.release()
    finally:
        holder.kill()
        holder.wait()
    assert main(["queue", "run", "--gpus", "0,7"]) == 2
    assert "GPU 7 does not exist: this machine has 4" in capsys.readouterr().err


def test_a_run_that_outlives_its_killed_worker_keeps_its_devices_until_it_ends(tmp_path, tiny_config, capsys):
    """kill -9 of the worker alone: its run goes on; the next worker waits instead of starting
    another run beside it, and records the orphan's end."""
    orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _fake_running_entry(tmp_path, save_state=False, worker_pid=999_999)  # no such worker holds a lock
        (Path(read_state().entries[0].run_path) / "pid").write_text(str(orphan.pid))
        assert main(["queue", "pause"]) == 0
        assert main(["queue", "add", str(write_run(tiny_config, tmp_path, "next"))]) == 0
        with transaction() as state:
            state.paused = False
        worker = Worker([])
        worker.claim.acquire()
        assert worker._take_next() == "wait"  # the orphan still trains on the only device
        running, waiting = read_state().entries
        assert running.status == "running" and running.worker_pid == 0 and "goes on" in running.reason
        assert main(["queue"]) == 0 and "the run goes on" in capsys.readouterr().out
        orphan.kill()
        orphan.wait()
        taken = worker._take_next()
        assert taken is not None and taken != "wait" and taken.name == "next"
        assert read_state().entries[0].status == "lost"
        worker.claim.release()
    finally:
        orphan.kill()
        kill_workers()
