"""The queue's own files in any shape, and a full disk under them: a clear message naming the
file and the fix, never a traceback, and the user's files are kept (moved aside by them, never
deleted by the tool). `queue run` twice says the worker already runs instead of claiming a start."""

from __future__ import annotations

import json

import pytest

from engine.queue.store import queue_dir, queue_file, read_state, snapshots_dir
from tests.disk_support import full_disk
from tests.queue_support import kill_workers, write_run
from tui_lora.cli import main


@pytest.fixture(autouse=True)
def no_workers_left():
    yield
    kill_workers()


def _entry(**changes):
    entry = {"id": 1, "source": "/a/run.yaml", "snapshot": "/s/1.yaml", "cwd": "/a", "name": "one", "output": "/a/out"}
    entry.update(changes)
    return {"version": 1, "entries": [entry]}


BAD_CONTENTS = {
    "a list": ([], "not the queue's object"),
    "a null entry": ({"entries": [None]}, "entries[0] is null"),
    "entries as text": ({"entries": "abc"}, "'entries' is text"),
    "a number for a name": (_entry(name=5), "entries[0].name is a whole number"),
    "text for an id": (_entry(id="7"), "entries[0].id is text"),
    "a missing field": ({"entries": [{"id": 1}]}, "entries[0] has no 'source'"),
    "text in gpu_ids": (_entry(gpu_ids=["0"]), "entries[0].gpu_ids"),
    "text for paused": ({"entries": [], "paused": "yes"}, "'paused' is text"),
    "a number for the status": (_entry(status=3), "entries[0].status"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONTENTS))
@pytest.mark.parametrize("command", [["queue"], ["queue", "pause"], ["queue", "clear"]])
def test_a_queue_file_in_a_wrong_shape_is_named_with_the_fix_and_kept(case, command, capsys):
    data, words = BAD_CONTENTS[case]
    queue_dir().mkdir(parents=True)
    text = json.dumps(data)
    queue_file().write_text(text)
    assert main(command) == 1
    err = capsys.readouterr().err
    assert words in err and "move it aside" in err and str(queue_file()) in err and "Traceback" not in err
    assert queue_file().read_text() == text  # the user's file is never replaced or deleted


def test_queue_add_on_a_damaged_queue_file_queues_nothing_and_leaves_no_snapshot(tiny_config, tmp_path, capsys):
    run_file = write_run(tiny_config, tmp_path, "one")
    queue_dir().mkdir(parents=True)
    queue_file().write_text('{"entries": [null]}')
    assert main(["queue", "add", str(run_file)]) == 1
    assert "entries[0] is null" in capsys.readouterr().err
    assert not snapshots_dir().exists() or list(snapshots_dir().iterdir()) == []


@pytest.mark.parametrize("where", ["queue.json", "queue.lock", "snapshots"])
def test_a_folder_or_file_in_the_way_of_the_queues_files(where, tiny_config, tmp_path, capsys):
    run_file = write_run(tiny_config, tmp_path, "one")
    queue_dir().mkdir(parents=True)
    in_the_way = queue_dir() / where
    if where == "snapshots":
        in_the_way.write_text("mine")
    else:
        in_the_way.mkdir()
        (in_the_way / "keep.txt").write_text("mine")
    assert main(["queue", "add", str(run_file)]) == 1
    err = capsys.readouterr().err
    assert str(in_the_way) in err and "move it aside" in err and "Traceback" not in err
    assert (in_the_way.read_text() if where == "snapshots" else (in_the_way / "keep.txt").read_text()) == "mine"
    assert main(["queue"]) == (1 if where == "queue.json" else 0)  # listing takes no lock


def test_queue_add_on_a_full_disk_says_so_and_leaves_nothing_behind(tiny_config, tmp_path, capsys, monkeypatch):
    run_file = write_run(tiny_config, tmp_path, "one")
    assert main(["queue", "pause"]) == 0
    before = queue_file().read_text()
    capsys.readouterr()
    with full_disk(monkeypatch, queue_dir()):
        assert main(["queue", "add", str(run_file)]) == 1
    err = capsys.readouterr().err
    assert "disk holding" in err and "is full" in err and "nothing was changed" in err and "Traceback" not in err
    assert queue_file().read_text() == before
    leftovers = [p.name for p in queue_dir().rglob("*") if p.is_file() and p.name not in ("queue.json", "queue.lock")]
    assert leftovers == []
    assert read_state().entries == []


def test_queue_run_twice_says_the_worker_already_runs(tiny_config, tmp_path, capsys):
    run_file = write_run(tiny_config, tmp_path, "one")
    assert main(["queue", "pause"]) == 0
    assert main(["queue", "add", str(run_file)]) == 0
    assert main(["queue", "resume"]) == 0  # starts the worker
    first = capsys.readouterr().out
    assert "started queue worker pid" in first
    assert main(["queue", "run"]) == 0
    second = capsys.readouterr().out
    assert "started" not in second and "a queue worker already runs: pid" in second
