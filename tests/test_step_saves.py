"""Saving by steps as sd-scripts does: names, pruning windows, state at the end, and the disk estimate."""

from __future__ import annotations


import pytest

from engine.config import dump_run_yaml, validate_values

from .helpers import errors_of, load_text




def test_step_saves_are_pruned_by_sd_scripts_window():
    """sd-scripts get_remove_step_no: every=10, last_n=30 at step 50 keeps 20, 30, 40, 50."""
    from engine.output_names import planned_step_saves
    from engine.train.saving import steps_to_remove

    assert steps_to_remove([10, 20, 30, 40, 50], 50, 30) == [10]
    assert steps_to_remove([10, 20, 30, 40, 50], 50, None) == []
    assert planned_step_saves("x", 2, 7) == ["x-step00000002", "x-step00000004", "x-step00000006"]
    assert planned_step_saves("x", 2, 6)[-1] == "x-step00000004"  # step 6 is the final file


def test_step_save_settings_round_trip_and_import(tmp_path):
    from engine.config.kohya_import import convert_kohya_settings

    cfg, _ = load_text(tmp_path, """
        folders: {images: imgs}
        training: {save_every_n_steps: 500, save_last_n_steps: 1500, save_state: yes, save_last_n_steps_state: 1000,
                   save_state_on_train_end: true}
    """)
    again, _ = load_text(tmp_path, dump_run_yaml(cfg))
    t = again.training
    assert (t.save_every_n_steps, t.save_last_n_steps, t.save_last_n_steps_state, t.save_state_on_train_end) == (500, 1500, 1000, True)
    assert any("save_every_n_steps" in e for e in errors_of(tmp_path, "folders: {images: imgs}\ntraining: {save_every_n_steps: 0}\n"))
    imported = convert_kohya_settings({"train_data_dir": "imgs", "save_every_n_steps": 200, "save_last_n_steps": 600,
                                       "save_last_n_steps_state": 0, "save_state_on_train_end": True})
    t = imported.config.training
    assert (t.save_every_n_steps, t.save_last_n_steps, t.save_last_n_steps_state, t.save_state_on_train_end) == (200, 600, None, True)
    assert not {n.field for n in imported.notes} & {"save_every_n_steps", "save_last_n_steps", "save_state_on_train_end"}


@pytest.mark.slow
def test_step_saves_are_written_pruned_and_state_kept_only_at_the_end(tiny_config, tmp_path):
    from engine.train.entry import run_config
    from engine.train.preflight import preflight
    from engine.plan import plan_run

    cfg = tiny_config(training__batch_size=1, training__max_train_steps=7, training__save_every_n_steps=2,
                      training__save_last_n_steps=3, training__save_state_on_train_end=True,
                      optimizer__text_encoder_lr=0.0)
    events: list[dict] = []
    result = run_config(cfg, on_event=events.append)
    assert result.status == "completed", (result.message, result.hint)
    out = tmp_path / "out"
    names = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    # saves at 2, 4, 6; at step 6 the window of 3 steps keeps 4 and 6; state only beside the final file
    assert names == ["test_lora-state", "test_lora-step00000004.safetensors", "test_lora-step00000006.safetensors",
                     "test_lora.safetensors", "test_lora.yaml"], names
    kinds = [e["kind"] for e in events if e["type"] == "checkpoint"]
    assert kinds == ["step", "step", "step", "final", "state"]
    # a new run of the same name must not replace the step saves: preflight refuses it
    (out / "test_lora.safetensors").rename(out / "kept.safetensors")
    problems = preflight(cfg, plan_run(cfg))
    assert any(p.field == "folders.output_name" and "step00000004" in p.message for p in problems)


@pytest.mark.slow
def test_step_states_follow_their_own_window_and_resume_finds_the_newest(tiny_config, tmp_path):
    from engine.train.entry import run_config
    from engine.train.resume_state import find_latest_state

    cfg = tiny_config(training__batch_size=1, training__max_train_steps=7, training__save_every_n_steps=2,
                      training__save_state=True, training__save_last_n_steps_state=2, optimizer__text_encoder_lr=0.0)
    result = run_config(cfg, on_event=lambda e: None)
    assert result.status == "completed", (result.message, result.hint)
    out = tmp_path / "out"
    states = sorted(p.name for p in out.iterdir() if p.name.endswith("-state"))
    assert states == ["test_lora-state", "test_lora-step00000004-state", "test_lora-step00000006-state"], states
    assert sorted(p.name for p in out.glob("test_lora-step*.safetensors")) == [
        "test_lora-step00000002.safetensors", "test_lora-step00000004.safetensors", "test_lora-step00000006.safetensors"]
    assert find_latest_state(out, "test_lora").name == "test_lora-state"


def test_queue_disk_estimate_counts_the_step_saves_it_keeps(tiny_config):
    import dataclasses

    from engine.plan import plan_run
    from engine.queue import checks

    size = 10 * 2**20
    base = tiny_config(training__max_train_steps=100)
    plain = checks.bytes_needed(base, dataclasses.replace(plan_run(base), estimated_file_bytes=size))
    steps = tiny_config(training__max_train_steps=100, training__save_every_n_steps=10)
    every = checks.bytes_needed(steps, dataclasses.replace(plan_run(steps), estimated_file_bytes=size))
    assert every - plain == 9 * size  # saves at 10 … 90; step 100 is the final file
    kept = tiny_config(training__max_train_steps=100, training__save_every_n_steps=10, training__save_last_n_steps=30)
    assert checks.bytes_needed(kept, dataclasses.replace(plan_run(kept), estimated_file_bytes=size)) - plain == 4 * size


def test_step_pruning_settings_without_step_saves_are_pointed_out():
    base = {"folders.images": "imgs", "model.quick_pick": "builtin-tiny-sd1"}
    fields = {p.field for p in validate_values({**base, "training.save_last_n_steps": 100})[1]}
    assert "training.save_last_n_steps" in fields
    fields = {p.field for p in validate_values({**base, "training.save_every_n_steps": 10,
                                                "training.save_last_n_steps_state": 100})[1]}
    assert "training.save_last_n_steps_state" in fields
    fields = {p.field for p in validate_values({**base, "training.save_every_n_steps": 10, "training.save_last_n_steps": 30})[1]}
    assert not fields & {"training.save_last_n_steps", "training.save_last_n_steps_state"}
