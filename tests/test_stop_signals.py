"""A stop that always works, a run `monitor` finds at once, and a run that outlives its terminal.

Real engine processes, real signals, a real pseudo-terminal. A "long step" is one tensor operation
of tens of seconds: Python-level signal handlers cannot run inside it, which is what left the
stop waiting for a step that never ended (issue 13, point 2).
"""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from engine.config import save_run_file
from engine.events import EventWriter, read_events
from engine.runs import create_run, list_runs

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]

# The engine, with one phase made to take a long time inside a single tensor operation.
SLOW_ENGINE = textwrap.dedent('''
    import sys, torch
    phase = sys.argv.pop(1)

    def long_operation():
        torch.linalg.matrix_power(torch.zeros(2500, 2500), 2 ** 12)  # ~1e12 flops on one thread

    if phase == "step":
        from engine.train import loop
        real_step = loop.Trainer.train_step

        def slow_step(self, batch):
            if self.progress.step >= 2:  # after the epoch-1 save
                print("long step begins", flush=True)
                long_operation()
            return real_step(self, batch)

        loop.Trainer.train_step = slow_step
    else:
        from engine.train import setup
        real_build = setup.build_model

        def slow_build(*args, **kwargs):
            print("loading begins", flush=True)
            long_operation()
            return real_build(*args, **kwargs)

        setup.build_model = slow_build
        import engine.train.loop as loop
        loop.build_model = slow_build
    from engine.__main__ import main
    sys.exit(main(sys.argv[1:]))
''')


def engine_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    env.pop("TUI_LORA_RUN_ID", None)
    return env


def start_slow_engine(tmp_path: Path, run_file: Path, phase: str) -> subprocess.Popen:
    script = tmp_path / "slow_engine.py"
    script.write_text(SLOW_ENGINE)
    return subprocess.Popen([sys.executable, str(script), phase, "train", str(run_file)], cwd=REPO,
                            env=engine_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for_line(process: subprocess.Popen, words: str, timeout: float = 240) -> list[str]:
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 1.0)
        if ready:
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                break
            seen.append(line)
            if words in line:
                return seen
    process.kill()
    pytest.fail(f"never saw {words!r}: {''.join(seen)}")


def ended_within(process: subprocess.Popen, seconds: float) -> tuple[int, str]:
    try:
        out, _ = process.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail(f"the engine was still running {seconds} s after the second stop")
    return process.returncode, out


def test_double_sigint_during_a_long_step_ends_at_once_keeping_saved_files(tiny_config, tmp_path, capsys):
    cfg = tiny_config(training__epochs=10, training__save_every_n_epochs=1)
    run_file = save_run_file(cfg, tmp_path / "run.yaml")
    output = Path(cfg.folders.output)
    process = start_slow_engine(tmp_path, run_file, "step")
    try:
        wait_for_line(process, "long step begins")
        saved = output / "test_lora-000001.safetensors"
        before = saved.read_bytes()

        # While it runs, a second run of the same output name is refused, naming this one (issue 14.1).
        from tui_lora.cli import main

        assert main(["train", str(run_file)]) == 2
        (running,) = [r for r in list_runs() if r.status == "running"]
        assert f"another run (run {running.run_id}, process {process.pid})" in capsys.readouterr().err

        process.send_signal(signal.SIGINT)
        time.sleep(1.0)
        assert process.poll() is None  # the first stop waits for the step
        process.send_signal(signal.SIGINT)
        code, console = ended_within(process, 10)
    finally:
        if process.poll() is None:
            process.kill()
    assert code == 3, console
    assert "Traceback" not in console and "stopped at once by a second stop (SIGINT) at step 2" in console
    assert saved.read_bytes() == before
    assert not [p.name for p in output.iterdir() if p.name.endswith((".partial", ".tmp", ".lock"))]
    events = read_events(running.run.events)
    assert events[-1]["type"] == "run_finished" and events[-1]["status"] == "stopped" and events[-1]["aborted"]
    assert f"the last saved file is intact: {saved}" in events[-1]["message"]
    assert [r.status for r in list_runs()] == ["stopped"]


def test_a_stop_while_the_model_loads_ends_at_once(tiny_config, tmp_path):
    cfg = tiny_config()
    run_file = save_run_file(cfg, tmp_path / "run.yaml")
    process = start_slow_engine(tmp_path, run_file, "load")
    try:
        wait_for_line(process, "loading begins")
        process.send_signal(signal.SIGTERM)
        code, console = ended_within(process, 10)
    finally:
        if process.poll() is None:
            process.kill()
    assert code == 3 and "Traceback" not in console
    assert "stopped by SIGTERM before training began; nothing was saved" in console
    (run,) = list_runs()
    assert run.status == "stopped"
    assert not list(Path(cfg.folders.output).glob("*.safetensors"))


def test_monitor_one_second_after_train_shows_the_new_run(tiny_config, tmp_path):
    earlier = create_run(tmp_path / "earlier", output_name="earlier")
    with EventWriter(earlier.events) as events:
        events.emit("run_finished", status="completed", outputs=[], step=4)
    cfg = tiny_config()
    run_file = save_run_file(cfg, tmp_path / "run.yaml")
    cli = [sys.executable, "-m", "tui_lora.cli"]
    # As installed: compiled modules exist (this environment may disable writing them).
    env = dict(engine_env(tmp_path), PYTHONPYCACHEPREFIX=str(tmp_path / "pycache"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run(cli + ["validate", str(run_file)], cwd=REPO, env=env, capture_output=True, timeout=120, check=False)
    subprocess.run([sys.executable, "-c", "import engine.train.entry, engine.procid, psutil"], cwd=REPO, env=env,
                   timeout=120, check=True)
    train = subprocess.Popen(cli + ["train", str(run_file)], cwd=REPO, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(1.0)
        monitor = subprocess.run(cli + ["monitor"], cwd=REPO, env=env, capture_output=True,
                                 text=True, timeout=60)
        new = [r for r in list_runs() if r.run_id != earlier.run_id]
    finally:
        train.kill()
        train.wait()
    assert len(new) == 1, (monitor.stdout, train.stdout.read())
    assert monitor.stdout.startswith(f"run {new[0].run_id} (test_lora): "), monitor.stdout
    assert "completed" not in monitor.stdout.splitlines()[0]


def test_a_hang_up_keeps_the_run_training_with_its_output_in_the_run_log(tiny_config, tmp_path):
    cfg = tiny_config(training__epochs=8)
    run_file = save_run_file(cfg, tmp_path / "run.yaml")
    pid, terminal = pty.fork()
    if pid == 0:  # the child: a shell's foreground job on the terminal that is about to go away
        os.chdir(REPO)
        os.execve(sys.executable, [sys.executable, "-m", "tui_lora.cli", "train", str(run_file)], engine_env(tmp_path))
    seen = b""
    deadline = time.monotonic() + 240
    while b"step " not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([terminal], [], [], 1.0)
        if ready:
            try:
                seen += os.read(terminal, 4096)
            except OSError:
                break
    assert b"step " in seen, seen
    os.close(terminal)  # the SSH connection drops: the kernel hangs up the terminal (SIGHUP)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.2)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the run did not finish after the hang-up")
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    (run,) = list_runs()
    assert run.status == "completed"
    log = run.run.console_log.read_text()
    assert "the terminal closed (hang-up): the run goes on" in log and "done: " in log
    assert (Path(cfg.folders.output) / "test_lora.safetensors").exists()
    assert json.loads(run.run.process_file.read_text())["pid"] == pid
