"""A torch scheduler class by name (lr_scheduler_type + lr_scheduler_args; issue 17), as sd-scripts'
get_scheduler_fix builds it: the class on the optimizer with the given arguments, one step per
optimizer step, no warmup."""

from __future__ import annotations

import math

import pytest

from engine.config import dump_run_yaml

from .helpers import errors_of, load_text

torch = pytest.importorskip("torch")


def _optimizer(lr=1e-3):
    return torch.optim.AdamW([torch.zeros(1, requires_grad=True)], lr=lr)


def test_cosine_annealing_class_follows_its_closed_form_per_optimizer_step():
    from engine.optim.schedules import build_scheduler

    optimizer = _optimizer()
    scheduler = build_scheduler(optimizer, name="cosine", total_steps=10, warmup_percent=10,
                                scheduler_type="CosineAnnealingLR", scheduler_args=["T_max=10", "eta_min=1e-7"])
    assert type(scheduler).__name__ == "CosineAnnealingLR"
    for step in range(1, 6):
        optimizer.step()
        scheduler.step()
        expected = 1e-7 + (1e-3 - 1e-7) * (1 + math.cos(math.pi * step / 10)) / 2
        assert optimizer.param_groups[0]["lr"] == pytest.approx(expected, rel=1e-9)


def test_the_dashboard_curve_of_a_scheduler_class_is_the_class_stepped():
    from engine.optim.schedules import lr_curve

    curve = lr_curve("cosine", {"unet": 1e-3, "text_encoder": 1e-4}, 7, warmup_percent=10,
                     scheduler_type="torch.optim.lr_scheduler.StepLR", scheduler_args=["step_size=3", "gamma=0.5"])
    assert curve["unet"] == [(1, 1e-3), (2, 1e-3), (3, 1e-3), (4, 5e-4), (5, 5e-4), (6, 5e-4), (7, 2.5e-4)]
    assert curve["text_encoder"][-1] == (7, pytest.approx(2.5e-5))


@pytest.mark.parametrize(("name", "args", "field", "words"), [
    ("CosinAnnealingLR", ["T_max=10"], "optimizer.scheduler_type", "did you mean 'CosineAnnealingLR'"),
    ("LambdaLR", [], "optimizer.scheduler_type", "cannot give"),
    ("CosineAnnealingLR", [], "optimizer.scheduler_args", "needs T_max"),
    ("StepLR", ["step_size=10", "gama=0.5"], "optimizer.scheduler_args", "did you mean 'gamma'"),
    ("OneCycleLR", ["max_lr=1e-3", "total_steps=0"], "optimizer.scheduler_args", "refused"),
])
def test_scheduler_class_problems_name_the_field_and_the_fix(name, args, field, words):
    from engine.optim.custom_schedule import scheduler_problems

    problems = scheduler_problems(name, args)
    assert problems and problems[0].field == field and words in problems[0].message + problems[0].hint


def test_scheduler_class_settings_round_trip_and_refuse_bad_text(tmp_path):
    cfg, _ = load_text(tmp_path, "folders: {images: imgs}\noptimizer: {scheduler_type: CosineAnnealingLR, "
                                 "scheduler_args: [T_max=100, eta_min=1e-7], warmup_percent: 0}\n")
    again, problems = load_text(tmp_path, dump_run_yaml(cfg))
    assert (again.optimizer.scheduler_type, again.optimizer.scheduler_args) == ("CosineAnnealingLR", ["T_max=100", "eta_min=1e-7"])
    for body, field in {"scheduler_type: os.system": "optimizer.scheduler_type",
                        "scheduler_type: StepLR, scheduler_args: [step_size]": "optimizer.scheduler_args"}.items():
        errors = errors_of(tmp_path, f"folders: {{images: imgs}}\noptimizer: {{{body}}}\n")
        assert any(e.startswith(field) for e in errors), (body, errors)
    from engine.config import validate_values

    warned = {p.field for p in validate_values({"folders.images": "imgs", "optimizer.scheduler_type": "StepLR",
                                                "optimizer.scheduler_args": ["step_size=5"]})[1]}
    assert "optimizer.warmup_percent" in warned  # the default 10 % warmup is not used by a class


def test_kohya_additional_parameters_import_the_scheduler_class_and_drop_warmup():
    from engine.config.kohya_import import convert_kohya_settings

    result = convert_kohya_settings({
        "train_data_dir": "imgs", "lr_scheduler": "cosine", "lr_warmup": 10,
        "additional_parameters": "--lr_scheduler_type=CosineAnnealingLR --lr_scheduler_args T_max=100 eta_min=1e-7"})
    o = result.config.optimizer
    assert (o.scheduler_type, o.scheduler_args, o.warmup_percent) == ("CosineAnnealingLR", ["T_max=100", "eta_min=1e-7"], 0.0)
    notes = {n.field: n.message for n in result.notes}
    assert "lr_scheduler_type" in notes.get("lr_warmup", "") and "lr_scheduler_args" not in notes
    gui = convert_kohya_settings({"train_data_dir": "imgs", "lr_scheduler_type": "StepLR",
                                  "lr_scheduler_args": "step_size=10 gamma=0.5"}).config.optimizer
    assert (gui.scheduler_type, gui.scheduler_args) == ("StepLR", ["step_size=10", "gamma=0.5"])


@pytest.mark.slow
def test_a_run_with_a_scheduler_class_steps_the_class_each_optimizer_step(tiny_config):
    from engine.train.entry import run_config

    events: list[dict] = []
    cfg = tiny_config(optimizer__scheduler_type="StepLR", optimizer__scheduler_args=["step_size=1", "gamma=0.5"],
                      optimizer__learning_rate=1e-3, optimizer__text_encoder_lr=0.0, training__max_train_steps=3)
    result = run_config(cfg, on_event=events.append)
    assert result.status == "completed", (result.message, result.hint)
    rates = [next(iter(e["lr"].values())) if isinstance(e["lr"], dict) else e["lr"][0]
             for e in events if e["type"] == "step"]
    assert rates == pytest.approx([1e-3, 5e-4, 2.5e-4])
