"""sd-scripts options honoured the way sd-scripts applies them (issue 17), and YAML read as Kohya users write it."""

from __future__ import annotations

import textwrap

import pytest

from engine.config import RunConfig, dump_run_yaml, load_run_file, validate_values
from engine.problems import ProblemError


def load_text(tmp_path, text: str):
    path = tmp_path / "run.yaml"
    path.write_text(textwrap.dedent(text))
    return load_run_file(path)


def errors_of(tmp_path, text: str) -> list[str]:
    with pytest.raises(ProblemError) as info:
        load_text(tmp_path, text)
    return [f"{p.field}: {p.message}" for p in info.value.errors]


# --- YAML booleans in choice settings ---------------------------------------------------------

def test_mixed_precision_no_in_yaml_means_the_choice_no_not_false(tmp_path):
    cfg, _ = load_text(tmp_path, """
        folders: {images: imgs}
        training:
          mixed_precision: no
    """)
    assert cfg.training.mixed_precision == "no"
    again, _ = load_text(tmp_path, dump_run_yaml(cfg))  # written back and read again: still the choice
    assert again.training.mixed_precision == "no"


def test_false_for_a_choice_spelled_like_a_boolean_is_that_choice_and_other_words_still_fail(tmp_path):
    cfg, _ = load_text(tmp_path, "folders: {images: imgs}\ntraining: {mixed_precision: false}\n")
    assert cfg.training.mixed_precision == "no"
    assert any("save_precision" in e for e in errors_of(tmp_path, "folders: {images: imgs}\ntraining: {save_precision: no}\n"))


def test_bool_settings_still_accept_yes_no_on_off_in_yaml(tmp_path):
    cfg, _ = load_text(tmp_path, "folders: {images: imgs}\ntraining: {cache_latents: no, gradient_checkpointing: on}\n")
    assert cfg.training.cache_latents is False and cfg.training.gradient_checkpointing is True
    assert any("cache_latents" in e for e in errors_of(tmp_path, "folders: {images: imgs}\ntraining: {cache_latents: maybe}\n"))


# --- max_train_steps ----------------------------------------------------------------------------

def _summary(steps_per_epoch: int, epochs: int):
    from engine.dataset.scan import DatasetSummary
    import dataclasses

    fields = {f.name: None for f in dataclasses.fields(DatasetSummary)}
    fields.update(steps_per_epoch=steps_per_epoch, total_steps=steps_per_epoch * epochs, epochs=epochs, problems=[])
    return DatasetSummary(**fields)


def _cfg(**values):
    base = {"folders.images": "imgs", "model.quick_pick": "builtin-tiny-sd1"}
    base.update({k.replace("__", "."): v for k, v in values.items()})
    return RunConfig(validate_values(base)[0])


@pytest.mark.parametrize(("max_steps", "max_epochs", "total", "epochs"), [
    (None, None, 30, 3),    # epochs decide
    (25, None, 25, 3),      # cut inside the third epoch
    (70, None, 70, 7),      # more epochs than 'epochs' says: ceil(70 / 10)
    (25, 2, 20, 2),         # sd-scripts: max_train_epochs recomputes the steps, max_train_steps is ignored
])
def test_max_train_steps_sets_the_plans_length_by_sd_scripts_rule(max_steps, max_epochs, total, epochs):
    """train_network.py: with max_train_epochs the steps are epochs × steps per epoch; otherwise
    num_train_epochs = ceil(max_train_steps / steps per epoch) and training stops at the step."""
    from engine.plan import _plan

    cfg = _cfg(training__epochs=3 if not max_epochs else 1, training__max_train_steps=max_steps,
               training__max_train_epochs=max_epochs)
    plan = _plan(cfg, _summary(10, cfg.epochs))
    assert (plan.total_steps, plan.epochs, plan.dataset.total_steps) == (total, epochs, total)
    problems = validate_values(dict(cfg.values))[1]
    assert any(p.field == "training.max_train_steps" for p in problems) == bool(max_steps and max_epochs)


def test_max_train_steps_round_trips_and_refuses_bad_values(tmp_path):
    cfg, _ = load_text(tmp_path, "folders: {images: imgs}\ntraining: {max_train_steps: 500}\n")
    assert cfg.training.max_train_steps == 500
    assert load_text(tmp_path, dump_run_yaml(cfg))[0].training.max_train_steps == 500
    for bad in ("0", "-5", "2.5", "many"):
        assert any("training.max_train_steps" in e for e in errors_of(tmp_path, f"folders: {{images: imgs}}\ntraining: {{max_train_steps: {bad}}}\n"))


@pytest.mark.slow
def test_training_stops_at_max_train_steps_inside_an_epoch(tiny_config):
    from engine.train.entry import run_config

    events: list[dict] = []
    result = run_config(tiny_config(training__epochs=5, training__max_train_steps=3, training__batch_size=1),
                        on_event=events.append)
    assert result.status == "completed", (result.message, result.hint)
    started = next(e for e in events if e["type"] == "run_started")
    steps = [e for e in events if e["type"] == "step"]
    assert started["total_steps"] == 3 and [e["step"] for e in steps] == [1, 2, 3]
    assert steps[-1]["total_steps"] == 3 and started["total_epochs"] == -(-3 // started["steps_per_epoch"])
