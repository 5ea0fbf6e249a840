"""Saved state and `--resume`: a stopped run continues exactly where it stopped."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from engine.problems import ProblemError
from engine.train.control import RunControl
from engine.train.entry import run_config

pytestmark = pytest.mark.slow

# batch 1 over the 4 draws of `small_data`: 4 steps an epoch, 8 in all
RESUMABLE = {"training__batch_size": 1, "training__epochs": 2, "training__save_state": True}


def metadata(path):
    with safe_open(str(path), "pt") as handle:
        return handle.metadata()


def run_until(cfg, stop_after: int | None = None, **kwargs):
    """Run; with `stop_after`, ask for a stop as the step event of that step arrives."""
    control = RunControl()
    events: list[dict] = []

    def on_event(event):
        events.append(event)
        if stop_after is not None and event["type"] == "step" and event["step"] == stop_after:
            control.stop_requested.set()

    result = run_config(cfg, on_event=on_event, control=control, **kwargs)
    return result, events


def steps_of(events):
    return [(e["step"], e["epoch"]) for e in events if e["type"] == "step"]


def test_stop_and_resume_twice_gives_the_uninterrupted_lora(tiny_config, tmp_path):
    whole, _ = run_until(tiny_config(**RESUMABLE, folders__output=str(tmp_path / "whole")))
    assert whole.status == "completed"

    cfg = tiny_config(**RESUMABLE)
    out = tmp_path / "out"
    first, events = run_until(cfg, stop_after=3)  # mid-epoch: 3 of the first epoch's 4 batches
    assert (first.status, first.exit_code) == ("stopped", 3)
    assert metadata(out / "test_lora.safetensors")["ss_steps"] == "3"
    progress = json.loads((out / "test_lora-state" / "progress.json").read_text())
    assert (progress["step"], progress["epoch"], progress["batch_in_epoch"]) == (3, 0, 3)
    assert events[-1] == {**events[-1], "type": "run_finished", "status": "stopped", "step": 3}

    second, events = run_until(cfg, stop_after=6, resume="latest")  # crosses into the second epoch
    assert second.status == "stopped", second.message
    started = next(e for e in events if e["type"] == "run_started")
    assert started["resumed_from_step"] == 3
    assert steps_of(events) == [(4, 1), (5, 2), (6, 2)]
    assert [e["epoch"] for e in events if e["type"] == "epoch_end"] == [1]
    assert metadata(out / "test_lora.safetensors")["ss_steps"] == "6"

    third, events = run_until(cfg, resume="latest")
    assert third.status == "completed", third.message
    assert steps_of(events) == [(7, 2), (8, 2)]
    assert [e["epoch"] for e in events if e["type"] == "epoch_end"] == [2]
    final_meta = metadata(out / "test_lora.safetensors")
    assert (final_meta["ss_steps"], final_meta["ss_epoch"]) == ("8", "2")

    expected, resumed = load_file(str(whole.outputs[-1])), load_file(str(out / "test_lora.safetensors"))
    assert expected.keys() == resumed.keys()
    for key in expected:
        torch.testing.assert_close(resumed[key], expected[key], rtol=1e-5, atol=1e-6)


def test_every_save_writes_state_and_pruned_saves_take_theirs_along(tiny_config, tmp_path):
    cfg = tiny_config(training__epochs=3, training__save_state=True, training__save_every_n_epochs=1,
                      training__save_last_n_epochs=1)
    result, events = run_until(cfg)
    assert result.status == "completed"
    out = tmp_path / "out"
    states = sorted(p.name for p in out.iterdir() if p.name.endswith("-state"))
    assert states == ["test_lora-000002-state", "test_lora-state"]  # epoch 1's went with its LoRA
    assert [e["kind"] for e in events if e["type"] == "checkpoint"] == ["epoch", "state", "epoch", "state", "final", "state"]
    folder = out / "test_lora-000002-state"
    progress = json.loads((folder / "progress.json").read_text())
    assert (progress["step"], progress["epoch"], progress["batch_in_epoch"]) == (4, 2, 0)
    optimizer = torch.load(folder / "optimizer.pt", weights_only=True)
    assert optimizer["state"] and all("exp_avg" in s for s in optimizer["state"].values())
    assert "last_epoch" in torch.load(folder / "scheduler.pt", weights_only=True)
    assert {"torch", "generator", "caption"} <= set(torch.load(folder / "rng.pt", weights_only=True))
    assert not [p for p in out.iterdir() if p.name.startswith(".test_lora") or p.name.endswith(".old")]


def test_resume_without_any_saved_state_is_refused_before_anything_is_written(tiny_config, tmp_path):
    with pytest.raises(ProblemError) as info:
        run_config(tiny_config(), resume="latest")
    assert info.value.errors[0].field == "--resume" and "training.save_state" in info.value.errors[0].hint
    assert not (tmp_path / "out").exists()


def _state_folder(folder, **replace):
    """A well-formed state folder by hand, with some files replaced."""
    folder.mkdir(parents=True)
    (folder / "progress.json").write_text(json.dumps({"version": 1, "step": 2, "epoch": 0, "batch_in_epoch": 2,
                                                      "seed": 1, "rank": 4}))
    save_file({"p00000": torch.zeros(2)}, str(folder / "network.safetensors"))
    for name in ("optimizer.pt", "scheduler.pt"):
        torch.save({}, folder / name)
    torch.save({"torch": torch.get_rng_state(), "generator": torch.get_rng_state(), "caption": {}}, folder / "rng.pt")
    for name, data in replace.items():
        (folder / name.replace("_", ".")).write_bytes(data)
    return folder


class _Planted:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("bad_file", ["optimizer_pt", "rng_pt", "network_safetensors", "progress_json"])
def test_torn_or_hostile_state_is_refused_and_never_unpickled(tiny_config, tmp_path, bad_file):
    marker = tmp_path / "code-ran"
    hostile = {"optimizer_pt": pickle.dumps(_Planted(marker)), "rng_pt": pickle.dumps({"torch": _Planted(marker)}),
               "network_safetensors": b"\x00" * 10, "progress_json": b'{"step": "three"'}[bad_file]
    folder = _state_folder(tmp_path / "elsewhere" / "mine-state", **{bad_file: hostile})
    cfg = tiny_config()
    with pytest.raises(ProblemError) as info:
        run_config(cfg, resume=str(folder))
    problem = info.value.errors[0]
    assert problem.field == "--resume" and str(folder) in problem.message and "not a usable state" in problem.message
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def test_state_of_another_network_is_refused_with_a_message(tiny_config, tmp_path):
    folder = _state_folder(tmp_path / "other-state")
    result = run_config(tiny_config(), resume=str(folder))
    assert (result.status, result.exit_code) == ("failed", 1)
    assert "different network" in result.message and str(folder) in result.message
    assert not (tmp_path / "out" / "test_lora.safetensors").exists()
