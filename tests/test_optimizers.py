"""Optimizers: every name takes real steps, extra_args are typed and checked, packages load lazily."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine.config.settings_optimizer import LR_FREE_OPTIMIZERS, OPTIMIZERS
from engine.optim.extra_args import OPTIMIZER_SPECS, check_optimizer_args, parse_extra_args
from engine.optim.optimizers import build_optimizer, optimizer_lr_for_logging
from engine.problems import ProblemError

torch.set_num_threads(1)


def tiny_model() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))


def groups_of(model, lr_first: float, lr_second: float) -> list[dict]:
    return [
        {"params": model[0].parameters(), "lr": lr_first, "name": "text_encoder"},
        {"params": model[2].parameters(), "lr": lr_second, "name": "unet"},
    ]


def train(model, optimizer, steps: int = 25) -> list[float]:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(64, 8, generator=generator)
    y = x[:, :1] * 0.5 - x[:, 1:2]
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def usual_lr(name: str) -> float:
    if name in LR_FREE_OPTIMIZERS:
        return 1.0
    return 1e-3 if "Lion" in name else 1e-2


# -- every optimizer trains ------------------------------------------------------------------------

def test_every_optimizer_setting_has_a_class():
    assert set(OPTIMIZER_SPECS) == set(OPTIMIZERS)


@pytest.mark.filterwarnings("ignore:Paged optimizers are not supported on CPU")
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizer_takes_real_steps_on_a_tiny_model(name):
    model = tiny_model()
    before = [p.detach().clone() for p in model.parameters()]
    extra = {"min_8bit_size": 16} if "8bit" in name else {}
    optimizer, _ = build_optimizer(name, groups_of(model, usual_lr(name), usual_lr(name)), extra)
    losses = train(model, optimizer)
    assert all(math.isfinite(loss) for loss in losses)
    assert all(not torch.equal(old, new) for old, new in zip(before, model.parameters()))
    if name not in LR_FREE_OPTIMIZERS:  # the step-size estimators may overshoot on 25 steps of a toy
        assert losses[-1] < 0.8 * losses[0]


def test_adamw8bit_keeps_8bit_state_when_min_size_is_lowered():
    model = tiny_model()
    optimizer, _ = build_optimizer("AdamW8bit", groups_of(model, 1e-2, 1e-2), ["min_8bit_size=64"])
    train(model, optimizer, steps=3)
    state = optimizer.state[model[0].weight]  # 128 elements: above 64, so quantised
    assert state["state1"].dtype == torch.uint8
    assert state["state2"].dtype == torch.uint8


def test_adamw8bit_keeps_32bit_state_for_small_tensors_by_default():
    model = tiny_model()
    optimizer, _ = build_optimizer("AdamW8bit", groups_of(model, 1e-2, 1e-2), {})
    train(model, optimizer, steps=1)
    assert optimizer.state[model[0].weight]["state1"].dtype == torch.float32


def test_dadaptation_is_kohyas_adam_preprint():
    optimizer, _ = build_optimizer("DAdaptation", groups_of(tiny_model(), 1.0, 1.0), {})
    assert type(optimizer).__name__ == "DAdaptAdamPreprint"


def test_sgd_nesterov_defaults_to_momentum_09_as_kohya():
    optimizer, _ = build_optimizer("SGDNesterov", groups_of(tiny_model(), 0.1, 0.1), {})
    assert optimizer.param_groups[0]["nesterov"] is True
    assert optimizer.param_groups[0]["momentum"] == 0.9
    optimizer, _ = build_optimizer("SGDNesterov", groups_of(tiny_model(), 0.1, 0.1), {"momentum": 0.5})
    assert optimizer.param_groups[0]["momentum"] == 0.5


def test_group_learning_rates_reach_the_optimizer():
    optimizer, notes = build_optimizer("AdamW", groups_of(tiny_model(), 5e-5, 1e-4), {"weight_decay": 0.1})
    assert [g["lr"] for g in optimizer.param_groups] == [5e-5, 1e-4]
    assert optimizer.param_groups[1]["weight_decay"] == 0.1
    assert notes == []


def test_adafactor_with_a_learning_rate_uses_it_as_given():
    optimizer, _ = build_optimizer("Adafactor", groups_of(tiny_model(), 1e-3, 1e-3), {}, scheduler="cosine")
    group = optimizer.param_groups[0]
    modes = (group["relative_step"], group["scale_parameter"], group["warmup_init"])
    assert group["lr"] == 1e-3 and modes == (False, False, False)


def test_adafactor_with_its_schedule_picks_its_own_step_and_says_so():
    model = tiny_model()
    optimizer, notes = build_optimizer("Adafactor", groups_of(model, 1e-3, 1e-3), {}, scheduler="adafactor")
    assert optimizer.param_groups[0]["relative_step"] is True
    assert [n.field for n in notes] == ["optimizer.learning_rate"]
    losses = train(model, optimizer, steps=10)
    assert losses[-1] < losses[0]
    # relative step 1e-2 times the first weight's RMS (scale_parameter stays on, as Kohya leaves it)
    rms = model[0].weight.detach().pow(2).mean().sqrt().item()
    assert optimizer_lr_for_logging(optimizer, 0) == pytest.approx(1e-2 * rms, rel=0.05)


@pytest.mark.parametrize("name", sorted({"DAdaptAdam", "DAdaptLion", "DAdaptSGD", "DAdaptation", "Prodigy"}))
def test_step_size_estimators_get_one_learning_rate_and_a_note(name):
    model = tiny_model()
    optimizer, notes = build_optimizer(name, groups_of(model, 0.5, 1.0), {})
    assert [g["lr"] for g in optimizer.param_groups] == [1.0, 1.0]
    assert len(notes) == 1 and notes[0].severity == "warning"
    assert notes[0].field == "optimizer.text_encoder_lr" and "text_encoder 0.5 raised to 1" in notes[0].message
    train(model, optimizer, steps=2)  # these optimizers raise at the first step if the rates differ


def test_a_zero_learning_rate_group_stays_frozen_with_a_step_size_estimator():
    model = tiny_model()
    frozen = model[0].weight.detach().clone()
    optimizer, notes = build_optimizer("Prodigy", groups_of(model, 0.0, 1.0), {})
    train(model, optimizer, steps=3)
    assert notes == [] and torch.equal(frozen, model[0].weight)


def test_adagrad_variant_keeps_separate_rates():
    optimizer, notes = build_optimizer("DAdaptAdaGrad", groups_of(tiny_model(), 0.5, 1.0), {})
    assert [g["lr"] for g in optimizer.param_groups] == [0.5, 1.0] and notes == []


def test_logged_rate_of_prodigy_is_d_times_lr():
    model = tiny_model()
    optimizer, _ = build_optimizer("Prodigy", groups_of(model, 1.0, 1.0), {"d0": 1e-4})
    train(model, optimizer, steps=5)
    d = optimizer.param_groups[1]["d"]
    assert d > 1e-4  # it has grown from d0, so the logged number is the estimate, not the multiplier
    assert optimizer_lr_for_logging(optimizer, 1) == pytest.approx(d * 1.0)


def test_logged_rate_sees_through_accelerates_wrapper():
    from accelerate import Accelerator

    model = tiny_model()
    optimizer, _ = build_optimizer("Prodigy", groups_of(model, 1.0, 1.0), {})
    model, wrapped = Accelerator(cpu=True).prepare(model, optimizer)
    train(model, wrapped, steps=3)
    assert optimizer_lr_for_logging(wrapped, 0) == optimizer.param_groups[0]["d"] * 1.0 > 1e-6


def test_logged_rate_of_plain_optimizers_is_the_group_rate():
    optimizer, _ = build_optimizer("AdamW", groups_of(tiny_model(), 5e-5, 1e-4), {})
    assert optimizer_lr_for_logging(optimizer, 0) == 5e-5


# -- bad arguments ---------------------------------------------------------------------------------

def test_unknown_argument_is_refused_with_a_suggestion_and_the_accepted_names():
    with pytest.raises(ProblemError) as info:
        build_optimizer("AdamW", groups_of(tiny_model(), 1e-3, 1e-3), ["weight_decai=0.1"])
    (problem,) = info.value.errors
    assert problem.field == "optimizer.extra_args"
    assert "weight_decai" in problem.message
    assert "did you mean 'weight_decay'?" in problem.hint and "betas" in problem.hint


@pytest.mark.parametrize("item", ["lr=1e-3", "params=1"])
def test_lr_and_params_come_from_other_settings(item):
    (problem,) = check_optimizer_args("AdamW", [item])
    key = item.split("=")[0]
    assert problem.field == "optimizer.extra_args" and problem.message.startswith(f"'{key}' cannot be set")


@pytest.mark.parametrize("items, words", [
    (["weight_decay"], "is not key=value"),
    (["=3"], "is not key=value"),
    (["weight decay=3"], "is not key=value"),
    (["betas="], "empty"),
    (["betas=0.9,,0.99"], "empty item"),
    (["betas=(0.9,0.99"], "does not close"),
    (["eps=1", "eps=2"], "given twice"),
])
def test_malformed_items_name_the_field(items, words):
    with pytest.raises(ProblemError) as info:
        parse_extra_args(items)
    assert info.value.errors[0].field == "optimizer.extra_args"
    assert words in info.value.errors[0].message


@pytest.mark.parametrize("item, words", [
    ("betas=0.9", "needs 2 numbers"),
    ("weight_decay=0,01", "needs a number"),
    ("amsgrad=1", "needs true or false"),
])
def test_values_of_the_wrong_kind_are_refused_before_training(item, words):
    (problem,) = check_optimizer_args("AdamW", [item])
    assert problem.field == "optimizer.extra_args" and words in problem.message


def test_values_the_optimizer_itself_refuses_become_problems():
    with pytest.raises(ProblemError) as info:
        build_optimizer("AdamW", groups_of(tiny_model(), 1e-3, 1e-3), ["betas=0.9,1.5"])
    assert info.value.errors[0].field == "optimizer.extra_args" and "betas=0.9,1.5" in info.value.errors[0].hint


def test_nesterov_is_part_of_the_sgd_nesterov_name():
    (problem,) = check_optimizer_args("SGDNesterov", ["nesterov=false"])
    assert "always uses nesterov=True" in problem.message


def test_adafactor_relative_step_must_agree_with_the_schedule():
    assert check_optimizer_args("Adafactor", ["relative_step=true"], scheduler="adafactor") == []
    (problem,) = check_optimizer_args("Adafactor", ["relative_step=true"], scheduler="cosine")
    assert "optimizer.scheduler: adafactor" in problem.hint
    (problem,) = check_optimizer_args("Adafactor", ["relative_step=false"], scheduler="adafactor")
    assert "needs relative_step=true" in problem.message
    (problem,) = check_optimizer_args("Adafactor", ["warmup_init=true"], scheduler="cosine")
    assert "warmup_init" in problem.message


def test_arguments_of_each_library_are_accepted():
    assert check_optimizer_args("Prodigy", ["d_coef=2", "safeguard_warmup=true", "betas=0.9,0.99"]) == []
    assert check_optimizer_args("DAdaptAdam", ["decouple=true", "weight_decay=0.01"]) == []
    assert check_optimizer_args("Lion", ["betas=(0.95,0.98)"]) == []
    assert check_optimizer_args("AdamW8bit", ["min_8bit_size=1024", "is_paged=false"]) == []


# -- parsing ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, value", [
    ("1", 1), ("-3", -3), ("1e-3", 1e-3), ("0.01", 0.01), ("inf", math.inf),
    ("true", True), ("False", False), ("TRUE", True), ("None", None), ("none", None),
    ("0.9,0.99", (0.9, 0.99)), ("(0.9, 0.99)", (0.9, 0.99)), ("[0.9,0.99]", (0.9, 0.99)),
    ("(0.9,)", (0.9,)), ("(1e-30,1e-3)", (1e-30, 1e-3)), ("1,true,x", (1, True, "x")),
    ("adamw", "adamw"), ("'quoted'", "quoted"), ("  spaced  ", "spaced"),
])
def test_values_are_typed(text, value):
    parsed = parse_extra_args([f"key={text}"])["key"]
    assert parsed == value and type(parsed) is type(value)


def test_keys_keep_their_order_and_surrounding_spaces_are_dropped():
    assert parse_extra_args([" weight_decay = 0.1", "eps=1e-8"]) == {"weight_decay": 0.1, "eps": 1e-8}


# -- packages --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, package, install", [
    ("Prodigy", "prodigyopt", "pip install 'tui-lora[optimizers]'"),
    ("DAdaptation", "dadaptation", "pip install 'tui-lora[optimizers]'"),
    ("Lion", "lion_pytorch", "pip install 'tui-lora[optimizers]'"),
    ("AdamW8bit", "bitsandbytes", "pip install bitsandbytes"),
])
def test_missing_package_names_the_optimizer_and_the_install_command(monkeypatch, name, package, install):
    monkeypatch.setitem(sys.modules, package, None)  # what `import` sees when the package is absent
    (problem,) = check_optimizer_args(name, ["weight_decay=0.01"])
    assert problem.field == "optimizer.name" and package in problem.message and problem.hint == install
    with pytest.raises(ProblemError) as info:
        build_optimizer(name, groups_of(tiny_model(), 1.0, 1.0), {})
    assert info.value.errors[0].hint == install


def test_checking_imports_only_the_chosen_optimizers_package():
    script = (
        "import sys\n"
        "from engine.optim import check_optimizer_args, parse_extra_args, warmup_steps\n"
        "parse_extra_args(['betas=0.9,0.99']); warmup_steps('cosine', 10, 100)\n"
        "assert 'torch' not in sys.modules, 'parsing pulled in torch'\n"
        "assert check_optimizer_args('AdamW', ['weight_decay=0.1']) == []\n"
        "heavy = ('bitsandbytes', 'dadaptation', 'prodigyopt', 'lion_pytorch', 'transformers', 'diffusers')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
