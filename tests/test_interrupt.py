"""Interruption: a signal mid-run stops cleanly with a valid LoRA; a kill mid-save loses nothing.

The signal tests drive a real engine process, the way a user's shell or script does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from safetensors import safe_open

from engine.config import save_run_file
from engine.train.entry import clean_interrupted_saves

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
CLI = "import sys; from tui_lora.cli import main; sys.exit(main(sys.argv[1:]))"
# 2 steps an epoch on `small_data`: far more steps than the engine takes before the signal lands
LONG_RUN = {"training__epochs": 10, "training__batch_size": 2}


def engine_env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    env.pop("TUI_LORA_RUN_ID", None)
    return env


def read_run_events(output: Path) -> list[dict]:
    events = []
    for path in output.glob(".runs/*/events.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:  # the line being written
                pass
    return events


def wait_for_step(output: Path, process: subprocess.Popen, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        steps = [e for e in read_run_events(output) if e["type"] == "step"]
        if steps:
            return steps[0]
        if process.poll() is not None:
            pytest.fail(f"the engine ended before its first step (exit {process.returncode}): "
                        f"{process.stdout.read() if process.stdout else ''}")
        time.sleep(0.05)
    process.kill()
    pytest.fail("no step event within the time limit")


def finish(process: subprocess.Popen, timeout: float = 120) -> tuple[int, str]:
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("the engine did not stop after the signal")
    return process.returncode, out or ""


def lora_metadata(path: Path) -> dict:
    with safe_open(str(path), "pt") as handle:
        assert list(handle.keys())  # complete and readable
        return handle.metadata()


def assert_stopped_cleanly(output: Path, signal_name: str) -> dict:
    events = read_run_events(output)
    finished = events[-1]
    assert finished["type"] == "run_finished" and finished["status"] == "stopped"
    assert f"stopped by {signal_name} at step {finished['step']}" in finished["message"]
    last_step = [e for e in events if e["type"] == "step"][-1]["step"]
    total = next(e for e in events if e["type"] == "run_started")["total_steps"]
    assert finished["step"] == last_step < total
    stopped = [e for e in events if e["type"] == "checkpoint" and e["kind"] == "stopped"]
    assert [Path(e["path"]).name for e in stopped] == ["test_lora.safetensors"]
    assert lora_metadata(output / "test_lora.safetensors")["ss_steps"] == str(last_step)
    assert not [e for e in events if e["type"] == "error"]
    return finished


def test_sigterm_mid_run_saves_lora_and_state_and_resume_finishes(tiny_config, tmp_path):
    cfg = tiny_config(**LONG_RUN, training__save_state=True)
    run_file = save_run_file(cfg, tmp_path / "run.yaml")
    output = Path(cfg.folders.output)
    process = subprocess.Popen([sys.executable, "-m", "engine", "train", str(run_file)], cwd=REPO, env=engine_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    wait_for_step(output, process)
    process.send_signal(signal.SIGTERM)
    code, console = finish(process)
    assert code == 3, console
    finished = assert_stopped_cleanly(output, "SIGTERM")
    assert f"stopped by SIGTERM at step {finished['step']}; saved " in console and "Traceback" not in console
    progress = json.loads((output / "test_lora-state" / "progress.json").read_text())
    assert progress["step"] == finished["step"]

    from tui_lora.cli import main

    assert main(["train", str(run_file), "--resume"]) == 0
    total = progress["total_steps"]
    assert lora_metadata(output / "test_lora.safetensors")["ss_steps"] == str(total)


def test_sigint_stops_a_run_started_as_a_background_job(tiny_config, tmp_path):
    """A shell starts background jobs with SIGINT ignored; only an explicit handler hears it."""
    cfg = tiny_config(**LONG_RUN)
    run_file = save_run_file(cfg, tmp_path / "run.yaml")
    output = Path(cfg.folders.output)
    log = tmp_path / "engine.log"
    script = f'"$@" > {log} 2>&1 & echo $!; wait $!'
    shell = subprocess.Popen(["bash", "-c", script, "bash", sys.executable, "-c", CLI, "train", str(run_file)],
                             cwd=REPO, env=engine_env(), stdout=subprocess.PIPE, text=True)
    engine_pid = int(shell.stdout.readline())
    wait_for_step(output, shell)
    os.kill(engine_pid, signal.SIGINT)
    code, _ = finish(shell)
    console = log.read_text()
    assert code == 3, console  # the CLI's exit status, passed on by `wait`
    assert "Traceback" not in console
    assert_stopped_cleanly(output, "SIGINT")


def test_a_background_job_without_handlers_ignores_sigint(tmp_path):
    """Why the engine installs its own handlers: the control case for the test above."""
    script = '"$@" & echo $!; wait $!'
    shell = subprocess.Popen(["bash", "-c", script, "bash", sys.executable, "-c", "import time; time.sleep(30)"],
                             stdout=subprocess.PIPE, text=True)
    pid = int(shell.stdout.readline())
    try:
        time.sleep(0.3)
        os.kill(pid, signal.SIGINT)
        time.sleep(0.5)
        assert shell.poll() is None  # still running: SIGINT was ignored
    finally:
        os.kill(pid, signal.SIGKILL)
        shell.wait(timeout=10)


def test_stop_during_latent_caching_ends_before_training(tiny_config, tmp_path):
    from engine.train.control import RunControl
    from engine.train.entry import run_config

    control = RunControl()
    events: list[dict] = []

    def on_event(event):
        events.append(event)
        if event["type"] == "caching":
            control.stop_requested.set()

    result = run_config(tiny_config(), on_event=on_event, control=control)
    assert (result.status, result.exit_code) == ("stopped", 3)
    assert "before training began" in result.message
    assert not [e for e in events if e["type"] == "step"] and result.outputs == []
    assert not (tmp_path / "out" / "test_lora.safetensors").exists()
    assert events[-1]["type"] == "run_finished" and events[-1]["status"] == "stopped"


# -- kill -9 during a save ---------------------------------------------------------------------

SAVER = textwrap.dedent('''
    """Save LoRA files over one path in a forked child and kill -9 it at chosen moments."""
    import json, os, random, signal, sys, time
    import torch
    torch.set_num_threads(1)
    from safetensors import safe_open
    from engine.lorafile.io import save_lora_file

    target, rounds = sys.argv[1], int(sys.argv[2])

    def save(version):
        big = torch.full((8, 600_000), float(version))  # ~19 MB: the write takes a while
        weights = {"unet": {"down_blocks.0.attentions.0.proj_in": {
            "lora_down.weight": big, "lora_up.weight": torch.full((32, 8), float(version)), "alpha": torch.tensor(4.0)}}}
        save_lora_file(target, weights, family="sd1", metadata={"version": str(version)}, save_dtype=torch.float32)

    def check():
        with safe_open(target, "pt") as handle:
            version = int(handle.metadata()["version"])
            same = all(bool((handle.get_tensor(k) == version).all()) for k in handle.keys() if "alpha" not in k)
        return version, same

    def hang(notify):
        def stuck(*args, **kwargs):
            os.write(notify, b"x")
            time.sleep(60)
        return stuck

    save(0)
    report, last = [], 0
    for round_ in range(rounds):
        mode = ("half-written", "before-rename")[round_] if round_ < 2 else "random"
        ready_r, ready_w = os.pipe()
        child = os.fork()
        if child == 0:
            if mode == "half-written":
                real_fdopen = os.fdopen
                class HalfWriter:  # writes half the bytes, then hangs until killed
                    def __init__(self, handle):
                        self.handle = handle
                    def __enter__(self):
                        return self
                    def __exit__(self, *exc):
                        self.handle.close()
                    def write(self, data):
                        self.handle.write(bytes(data[: len(data) // 2]))
                        self.handle.flush()
                        hang(ready_w)()
                os.fdopen = lambda fd, *args, **kwargs: HalfWriter(real_fdopen(fd, *args, **kwargs))
            elif mode == "before-rename":
                os.replace = hang(ready_w)
            version = last + 1
            while True:
                save(version)
                version += 1
        if mode == "random":
            time.sleep(random.uniform(0.05, 1.5))
        else:
            os.read(ready_r, 1)
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        version, same = check()
        partials = sorted(n for n in os.listdir(os.path.dirname(target)) if n.endswith(".partial"))
        report.append({"mode": mode, "version": version, "same": same, "not_older": version >= last,
                       "partials": partials})
        last = version
    print(json.dumps(report))
''')


def test_kill_during_save_leaves_the_old_or_the_new_file_whole(tmp_path):
    helper = tmp_path / "saver.py"
    helper.write_text(SAVER)
    folder = tmp_path / "out"
    folder.mkdir()
    target = folder / "lora.safetensors"
    done = subprocess.run([sys.executable, str(helper), str(target), "6"], cwd=REPO, env=engine_env(),
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert all(r["same"] and r["not_older"] for r in report), report
    half, before_rename = report[0], report[1]
    assert half["version"] == 0 and before_rename["version"] == 0  # the kill landed mid-save: old file kept
    assert half["partials"] and len(before_rename["partials"]) == 2  # and each left its temporary file
    # The next run start of this output name removes them, and nothing else.
    (folder / "lora-b.safetensors").write_bytes(b"other run")
    (folder / ".lora-b.safetensors.abc.partial").write_bytes(b"other run's save in progress")
    leftovers = set(report[-1]["partials"])
    assert set(clean_interrupted_saves(folder, "lora")) == leftovers
    assert sorted(p.name for p in folder.iterdir()) == [".lora-b.safetensors.abc.partial", "lora-b.safetensors",
                                                        "lora.safetensors"]


def test_state_folder_caught_between_renames_is_put_back(tmp_path):
    out = tmp_path / "out"
    (out / "run-state.old").mkdir(parents=True)  # the kill came after `state -> state.old`
    (out / "run-state.old" / "progress.json").write_text("{}")
    (out / ".run-000002-state.k3j2").mkdir()  # a staging folder never renamed
    (out / "run-000001-state").mkdir()
    (out / "run-000001-state.old").mkdir()  # the kill came after the new one was in place
    (out / "other-state.old").mkdir()
    changed = clean_interrupted_saves(out, "run")
    assert sorted(changed) == [".run-000002-state.k3j2", "run-000001-state.old", "run-state.old"]
    assert sorted(p.name for p in out.iterdir()) == ["other-state.old", "run-000001-state", "run-state"]
    assert (out / "run-state" / "progress.json").exists()
