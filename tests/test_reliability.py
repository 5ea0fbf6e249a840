"""Nothing lost, part two: output names reserved, stale pids, device files and the messages that
replaced tracebacks (issue 14). Every case here ran into a traceback, a lost file or a wrong
status before the fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.config import load_run_file, save_run_file
from engine.events import EventWriter, read_events
from engine.output_names import step_save_stem
from engine.outputs import OutputLock
from engine.problems import ProblemError
from engine.runs import create_run, list_runs, run_index_path, run_status
from tui_lora.cli import main


def run_file_for(cfg, tmp_path: Path) -> Path:
    return save_run_file(cfg, tmp_path / "run.yaml", overwrite=True)


# -- 1. one output name, one run at a time ------------------------------------------------------

def test_a_second_run_of_a_held_output_name_fails_at_start_naming_the_first(tiny_config, tmp_path, capsys):
    cfg = tiny_config()
    Path(cfg.folders.output).mkdir(parents=True)
    held = OutputLock(cfg.folders.output, "test_lora")
    # another process holds the name, as a run in progress does
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; sys.path.insert(0, sys.argv[1]); from engine.outputs import OutputLock; "
        "OutputLock(sys.argv[2], 'test_lora').acquire('20990101-000000-abcdef'); print('held', flush=True); "
        "time.sleep(60)"), str(Path(__file__).resolve().parents[1]), cfg.folders.output],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(["train", str(run_file_for(cfg, tmp_path))]) == 2
        err = capsys.readouterr().err
        assert "another run (run 20990101-000000-abcdef, process" in err and f"{holder.pid})" in err
        assert "Traceback" not in err
        assert not list(Path(cfg.folders.output).glob(".runs/*")) and list_runs() == []
    finally:
        holder.kill()
        holder.wait()
    held.acquire("mine")  # a killed holder leaves nothing stale
    held.release()
    assert not held.path.exists()


def test_the_final_save_never_replaces_a_file_that_appeared_during_the_run(tiny_config):
    from engine.train.entry import run_config

    cfg = tiny_config(training__epochs=2)
    final = Path(cfg.folders.output) / "test_lora.safetensors"
    events = []

    def user_copies_a_file_in(event):
        events.append(event)
        if event["type"] == "step" and event["step"] == 1:
            final.write_bytes(b"the user's own file")

    result = run_config(cfg, on_event=user_copies_a_file_in)
    assert result.status == "completed"
    assert final.read_bytes() == b"the user's own file"
    assert result.outputs == [final.with_name("test_lora_v2.safetensors")] and result.outputs[0].stat().st_size > 1000
    assert any(e["type"] == "warning" and "appeared during the run and is kept" in e["message"] for e in events)


# -- 2. every file a run writes is checked before training --------------------------------------

@pytest.mark.parametrize("existing, settings", [
    ("test_lora.yaml", {}),
    ("test_lora-000001.safetensors", {"training__epochs": 2, "training__save_every_n_epochs": 1}),
    (step_save_stem("test_lora", 3) + ".safetensors", {}),  # the name a step save gets (output_names)
    ("test_lora-state", {"training__save_state": True}),
    ("sample/test_lora_e000001_s000002_00.png", {}),
], ids=["yaml-copy", "epoch-save", "step-save", "state-folder", "sample"])
def test_any_existing_file_the_run_would_write_refuses_the_start(tiny_config, tmp_path, capsys, existing, settings):
    cfg = tiny_config(**settings)
    target = Path(cfg.folders.output) / existing
    target.parent.mkdir(parents=True, exist_ok=True)
    if existing.endswith("-state"):
        target.mkdir()
    else:
        target.write_bytes(b"made by the user")
    assert main(["train", str(run_file_for(cfg, tmp_path))]) == 2
    err = capsys.readouterr().err
    assert f"{target} already exists and would be replaced" in err and "overwrite: true" in err
    assert target.is_dir() or target.read_bytes() == b"made by the user"
    assert not (Path(cfg.folders.output) / ".runs").exists()


def test_the_run_file_itself_as_the_yaml_copy_is_allowed_and_kept(tiny_config, capsys):
    cfg = tiny_config(training__epochs=1)
    out = Path(cfg.folders.output)
    out.mkdir(parents=True)
    run_file = save_run_file(cfg, out / "test_lora.yaml")
    before = run_file.read_bytes()
    assert main(["train", str(run_file)]) == 0
    assert run_file.read_bytes() == before and (out / "test_lora.safetensors").exists()


# -- 3. a pid is proven before `running` or a signal --------------------------------------------

def stranger() -> subprocess.Popen:
    """An unrelated process that a stale pid file now names (SIGINT would end it)."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


@pytest.mark.parametrize("recorded", ["start-time", "pid-file-only"])
def test_a_stale_pid_reads_lost_and_is_never_signalled(tmp_path, recorded):
    from tui_lora.dashboard.control import RunControl

    run = create_run(tmp_path / "out", output_name="x")
    other = stranger()
    try:
        time.sleep(0.2)
        run.pid_file.write_text(str(other.pid))  # the pid of a dead run, handed to another process
        if recorded == "start-time":
            run.process_file.write_text(json.dumps({"pid": other.pid, "started": time.time() - 3600}))
        else:
            run.process_file.unlink()
            long_ago = time.time() - 3600  # the pid file was written long before this process began
            os.utime(run.pid_file, (long_ago, long_ago))
        assert run_status(run, []) == "lost"
        assert [info.status for info in list_runs()] == ["lost"]
        control = RunControl.from_run(run)
        assert "already ended" in control.stop() and "already ended" in control.save_now()
        time.sleep(0.3)
        assert other.poll() is None  # never signalled
    finally:
        other.kill()
        other.wait()


def test_a_live_run_reads_running_and_its_own_process_is_proven(tmp_path):
    run = create_run(tmp_path / "out", output_name="x")  # this process is the run
    assert run_status(run, []) == "running"


# -- 5. only regular files are read, and only so much ---------------------------------------------

@pytest.mark.parametrize("command", ["validate", "import-kohya"])
@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom", "fifo"])
def test_device_files_and_pipes_are_refused_with_a_message(tmp_path, capsys, command, device):
    if device == "fifo":
        device = str(tmp_path / "fifo")
        os.mkfifo(device)
    args = [command, device] + (["-o", str(tmp_path / "run.yaml")] if command == "import-kohya" else [])
    started = time.monotonic()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{device}: is not a regular file (a device, pipe or socket)" in err and "Traceback" not in err
    assert time.monotonic() - started < 5


# -- 6. each traceback became a message -----------------------------------------------------------

@pytest.mark.parametrize("text", [
    "a: " + "[" * 600 + "]" * 600,
    "".join("  " * depth + f"k{depth}:\n" for depth in range(600)),
    "folders: " + "{a: " * 1000 + "1" + "}" * 1000,
], ids=["flow-lists", "block-mappings", "flow-mappings"])
def test_yaml_nested_hundreds_deep_is_explained(tmp_path, capsys, text):
    path = tmp_path / "deep.yaml"
    path.write_text(text)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "nested too deeply" in err and "Traceback" not in err


def test_output_folder_that_is_a_dangling_link_is_explained(tiny_config, tmp_path, capsys):
    link = tmp_path / "gone"
    link.symlink_to(tmp_path / "missing-folder")
    cfg = tiny_config(folders__output=str(link))
    assert main(["train", str(run_file_for(cfg, tmp_path))]) == 2
    err = capsys.readouterr().err
    assert f"folders.output: {link} is a link to a folder that does not exist" in err and "Traceback" not in err


def test_continue_file_that_links_to_itself_is_explained(tiny_config, tmp_path, capsys):
    loop = tmp_path / "loop.safetensors"
    loop.symlink_to(loop)
    cfg = tiny_config(network__weights=str(loop))
    assert main(["train", str(run_file_for(cfg, tmp_path))]) == 2
    err = capsys.readouterr().err
    assert f"network.weights: {loop} is a link that points to itself" in err and "Traceback" not in err


def test_damaged_run_index_lines_are_skipped_and_reported(tmp_path, capsys):
    good = create_run(tmp_path / "out", output_name="good")
    with EventWriter(good.events) as events:
        events.emit("run_finished", status="completed", outputs=[], step=4)
    index = run_index_path()
    lines = index.read_bytes()
    for started in ("null", '"abc"', "1e400", "-5", "true"):
        lines += b'{"run_id": "x", "path": "%s", "started": %s}\n' % (str(good.path).encode(), started.encode())
    lines += b'{"run_id": "\xff\xfe", "path": "\xff"}\n' + b"not json\n" + b'{"path": 7}\n' + b"[1, 2]\n"
    index.write_bytes(lines)
    assert main(["runs"]) == 0
    captured = capsys.readouterr()
    assert "skipped 9 damaged line(s) of the run index" in captured.err and "Traceback" not in captured.err
    assert good.run_id in captured.out and "completed" in captured.out


def test_a_full_disk_when_the_run_registers_is_explained_and_leaves_no_orphan(tiny_config, tmp_path, monkeypatch):
    import errno

    import engine.runs as runs
    from engine.train.entry import run_config

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(run_index_path()))

    monkeypatch.setattr(runs, "record_process", full)
    cfg = tiny_config()
    with pytest.raises(ProblemError) as info:
        run_config(cfg)
    problem = info.value.errors[0]
    assert "the disk is full: the run could not be registered" in problem.message and "free" in problem.hint
    assert not (Path(cfg.folders.output) / ".runs").exists()


# -- 7. validate knows what training would hit -----------------------------------------------------

@pytest.mark.parametrize("settings, words", [
    ({"folders__output_name": "n" * 300}, "folders.output_name: is too long for the file system"),
    ({"folders__output_name": "n" * 220}, "use at most"),
    ({"training__seed": 2**32}, "training.seed"),
    ({"optimizer__extra_args": ["weight_decay=1e999"]}, "1e999 is not a usable number"),
    ({"optimizer__extra_args": ["eps=" + "9" * 400]}, "too large a number"),
], ids=["300-chars", "220-chars-with-suffixes", "seed-2^32", "weight-decay-1e999", "huge-int"])
def test_validate_refuses_what_training_would_fail_on(tmp_path, capsys, settings, words):
    import yaml

    document: dict = {"model": {"quick_pick": "builtin-tiny-sd1"},
                      "folders": {"images": str(tmp_path), "output": str(tmp_path / "o")}}
    for key, value in settings.items():
        section, name = key.split("__")
        document.setdefault(section, {})[name] = value
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(document))
    assert main(["validate", str(tmp_path / "run.yaml")]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def test_a_name_just_within_the_limit_validates(tmp_path):
    from engine.outputs import LONGEST_DERIVED, output_name_problems

    longest_ok = 255 - len(LONGEST_DERIVED.format(name=""))
    assert output_name_problems("n" * longest_ok, tmp_path) == []
    assert output_name_problems("n" * (longest_ok + 1), tmp_path)


# -- 9. the early stop message -------------------------------------------------------------------

def test_a_stop_before_training_says_once_that_nothing_was_saved(tiny_config, tmp_path, capsys, monkeypatch):
    from engine.train import entry

    real_run = entry._run

    def stop_first(*args, control, **kwargs):
        control.stop_signal = "SIGTERM"
        control.stop_requested.set()
        return real_run(*args, control=control, **kwargs)

    monkeypatch.setattr(entry, "_run", stop_first)
    assert main(["train", str(run_file_for(tiny_config(), tmp_path))]) == 3
    err = capsys.readouterr().err
    assert "stopped by SIGTERM before training began; nothing was saved" in err
    assert "saved nothing" not in err and err.count("saved") == 1
    (run,) = list_runs()
    assert run.status == "stopped" and read_events(run.run.events)[-1]["status"] == "stopped"
    assert load_run_file(tmp_path / "run.yaml")  # untouched, still valid
