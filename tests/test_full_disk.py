"""A full disk at every point a run writes: the start (its lock), an epoch save in the middle,
the final save. Each ends with a message that says so and what to do; a refused start leaves
nothing behind; a run whose events file found no room for its end still reads `failed` in
`tui-lora runs`, with where its weights went. The start is checked with a full disk faked at the
OS boundary (runs anywhere) and on a real small tmpfs (where mounting is allowed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.config import save_run_file
from engine.problems import ProblemError
from engine.runs import list_runs, run_status
from tests.disk_support import full_disk
from tests.test_failures import fill, small_disk, train  # noqa: F401 - small_disk is a fixture
from tui_lora.cli import main


def _nothing_left(out: Path) -> None:
    assert not out.exists() or sorted(p.name for p in out.iterdir()) == []
    assert list_runs() == []


def test_a_full_disk_at_the_start_is_refused_with_a_message_and_leaves_no_lock(tiny_config, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    cfg = tiny_config(folders__output=str(out))
    with full_disk(monkeypatch, out), pytest.raises(ProblemError) as info:
        train(cfg)
    problem = info.value.errors[0]
    assert problem.field == "folders.output" and "is full" in problem.message and "free some space" in problem.hint
    _nothing_left(out)  # no `.test_lora.lock`, no `.runs`


def test_a_full_disk_at_the_start_through_the_cli(tiny_config, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    out.mkdir()
    run_file = save_run_file(tiny_config(folders__output=str(out)), tmp_path / "run.yaml")
    with full_disk(monkeypatch, out):
        code = main(["train", str(run_file)])
    err = capsys.readouterr().err
    assert code == 2 and "is full" in err and "Traceback" not in err
    _nothing_left(out)


def test_a_really_full_disk_at_the_start(tiny_config, small_disk):  # noqa: F811 - the fixture
    disk = small_disk("1m")
    out = disk / "out"
    out.mkdir()
    fill(disk)
    with pytest.raises(ProblemError) as info:
        train(tiny_config(folders__output=str(out)))
    assert "is full" in info.value.errors[0].message
    assert sorted(p.name for p in out.iterdir()) == []


@pytest.mark.slow
def test_a_run_whose_end_found_no_room_reads_failed_with_where_the_lora_went(tiny_config, small_disk, capsys):  # noqa: F811
    disk = small_disk("48m")
    done = []

    def fill_after_first_save(event):
        if event["type"] == "checkpoint" and not done:
            done.append(True)
            fill(disk)
            (events_file,) = (disk / "out").glob(".runs/*/events.jsonl")
            fill(events_file.parent, name=events_file.name, block=b"\n")  # its next line finds no room

    cfg = tiny_config(folders__output=str(disk / "out"), training__epochs=2, training__save_every_n_epochs=1)
    result, _ = train(cfg, fill_after_first_save)
    rescued = result.outputs[-1]
    assert result.status == "failed" and f"saved to {rescued}" in result.message
    assert run_status(result.run) == "failed"  # not "lost": the ending was kept in the state folder
    (info,) = list_runs()
    assert info.status == "failed" and str(rescued) in info.note
    assert main(["runs"]) == 0
    out = capsys.readouterr().out
    assert " failed " in out and str(rescued) in out


def test_the_run_index_being_a_folder_is_an_error_with_the_fix(capsys):
    from engine.runs import run_index_path

    run_index_path().mkdir(parents=True)
    assert main(["runs"]) == 1
    err = capsys.readouterr().err
    assert "is a folder" in err and "move it aside" in err and "no runs yet" not in err
    assert main(["monitor"]) == 1
    assert "is a folder" in capsys.readouterr().err


def test_registering_a_run_with_the_index_a_folder_names_the_index(tiny_config, tmp_path):
    from engine.runs import run_index_path

    run_index_path().mkdir(parents=True)
    with pytest.raises(ProblemError) as info:
        train(tiny_config())
    assert "is a folder" in info.value.errors[0].message and "move it aside" in info.value.errors[0].message
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert os.path.isdir(run_index_path())


def test_an_ending_kept_in_the_state_folder_makes_the_run_read_failed(tmp_path, capsys):
    """Without a real full disk: a registered run whose events end without run_finished, and
    whose process is gone, reads `lost` unless its ending was recorded aside."""
    from engine.events import EventWriter
    from engine.runs import create_run, record_run_ending

    run = create_run(tmp_path / "out", output_name="lora")
    with EventWriter(run.events) as events:
        events.emit("step", step=3, total_steps=10)
    run.pid_file.write_text("999999999")  # a process that does not exist
    assert run_status(run) == "lost"
    record_run_ending(run, "failed", "the disk is full; the LoRA trained so far was saved to /elsewhere/lora.safetensors",
                      "free space, then move it back")
    (info,) = list_runs()
    assert info.status == "failed" and "/elsewhere/lora.safetensors" in info.note
    assert main(["monitor", run.run_id]) == 0  # not a terminal: the text summary
    out = capsys.readouterr().out
    assert "failed" in out.lower() and "/elsewhere/lora.safetensors" in out
