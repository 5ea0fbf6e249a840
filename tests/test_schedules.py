"""Learning-rate schedules: each follows its formula, the curve equals what a real scheduler steps."""

from __future__ import annotations

import math

import pytest
import torch
from diffusers.optimization import get_scheduler

from engine.optim.numbers import adafactor_relative_step, parse_step_rules, warmup_steps
from engine.optim.optimizers import build_optimizer, optimizer_lr_for_logging
from engine.optim.schedules import build_scheduler, lr_curve
from engine.problems import ProblemError

torch.set_num_threads(1)

TOTAL = 100
WARMUP_PERCENT = 10  # 10 warmup steps of 100
BASE = {"unet": 1e-3, "text_encoder": 5e-4}


def dummy_optimizer(base=BASE) -> torch.optim.Optimizer:
    groups = [{"params": [torch.zeros(1, requires_grad=True)], "lr": lr} for lr in base.values()]
    return torch.optim.SGD(groups, lr=max(base.values()))


def stepped_rates(scheduler, optimizer, steps: int) -> list[list[float]]:
    """The rate each of `steps` updates uses, read before the update as a training loop logs it."""
    rates = []
    for _ in range(steps):
        rates.append(list(scheduler.get_last_lr()))
        optimizer.step()  # no gradients: nothing moves, but the scheduler sees a real step order
        scheduler.step()
    return rates


def multipliers(name: str, total: int = TOTAL, warmup_percent: float = WARMUP_PERCENT, **options) -> list[float]:
    optimizer = dummy_optimizer()
    scheduler = build_scheduler(optimizer, name=name, total_steps=total, warmup_percent=warmup_percent, **options)
    rates = stepped_rates(scheduler, optimizer, total)
    # Both groups follow the same multiplier of their own rate.
    assert all(r[1] / BASE["text_encoder"] == pytest.approx(r[0] / BASE["unet"]) for r in rates)
    return [r[0] / BASE["unet"] for r in rates]


def ramp(k: int, warmup: int = 10) -> float:
    return k / warmup


# -- warmup ----------------------------------------------------------------------------------------

def test_warmup_steps_are_a_rounded_share_of_the_total():
    assert warmup_steps("cosine", 7, 100) == 7
    assert warmup_steps("linear", 10, 33) == 3
    assert warmup_steps("linear", 10, 37) == 4
    assert warmup_steps("cosine", 0, 100) == 0
    assert warmup_steps("cosine", 100, 50) == 50


@pytest.mark.parametrize("name", ["constant", "adafactor"])
def test_schedules_without_warmup_get_zero_steps(name):
    assert warmup_steps(name, 10, 100) == 0


# -- each schedule against its formula -------------------------------------------------------------

def test_constant_ignores_warmup():
    assert multipliers("constant") == [1.0] * TOTAL


def test_constant_with_warmup_ramps_then_holds():
    got = multipliers("constant_with_warmup")
    assert got[:10] == pytest.approx([ramp(k) for k in range(10)])
    assert got[10:] == [1.0] * 90


def test_linear_ramps_then_falls_to_zero():
    got = multipliers("linear")
    assert got[:10] == pytest.approx([ramp(k) for k in range(10)])
    assert got[10:] == pytest.approx([(TOTAL - k) / 90 for k in range(10, TOTAL)])


def test_cosine_is_at_half_rate_midway_through_its_decay():
    got = multipliers("cosine")
    assert got[:10] == pytest.approx([ramp(k) for k in range(10)])
    assert got[10:] == pytest.approx([0.5 * (1 + math.cos(math.pi * (k - 10) / 90)) for k in range(10, TOTAL)])
    assert got[55] == pytest.approx(0.5)


def test_cosine_with_restarts_jumps_back_to_the_full_rate():
    got = multipliers("cosine_with_restarts", num_cycles=2)
    expected = [0.5 * (1 + math.cos(math.pi * ((2 * (k - 10) / 90) % 1))) for k in range(10, TOTAL)]
    assert got[10:] == pytest.approx(expected)
    assert got[54] < 0.01 and got[55] == pytest.approx(1.0)  # the second cycle starts at step 55


def test_polynomial_falls_with_its_power_towards_diffusers_floor():
    got = multipliers("polynomial", power=2.0)
    lr_init, lr_end = BASE["unet"], 1e-7  # diffusers decays to an absolute 1e-7, not to zero
    expected = [((lr_init - lr_end) * (1 - (k - 10) / 90) ** 2 + lr_end) / lr_init for k in range(10, TOTAL)]
    assert got[10:] == pytest.approx(expected)
    assert got[55] == pytest.approx(0.25, abs=1e-3)  # half-way, (1/2)² of the rate


def test_piecewise_constant_follows_its_rules():
    got = multipliers("piecewise_constant", warmup_percent=0, step_rules="1:30,0.5:60,0.1")
    assert got == [1.0] * 30 + [0.5] * 30 + [0.1] * 40


def test_piecewise_constant_reads_rules_as_diffusers_does():
    rules = "0.2:70, 1:20,0.5:40,0.05"
    ours = dummy_optimizer()
    theirs = dummy_optimizer()
    expected = stepped_rates(get_scheduler("piecewise_constant", theirs, step_rules=rules), theirs, TOTAL)
    scheduler = build_scheduler(ours, name="piecewise_constant", total_steps=TOTAL, step_rules=rules)
    got = stepped_rates(scheduler, ours, TOTAL)
    assert got == expected


def test_piecewise_constant_honours_the_warmup_it_is_shown_with():
    got = multipliers("piecewise_constant", step_rules="1:30,0.5:60,0.1")
    assert got[:10] == pytest.approx([ramp(k) for k in range(10)])
    assert got[10:] == [1.0] * 20 + [0.5] * 30 + [0.1] * 40


def test_adafactor_schedule_reports_adafactors_own_step_size():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    optimizer, _ = build_optimizer("Adafactor", [{"params": model.parameters(), "lr": 1e-3}], {}, scheduler="adafactor")
    scheduler = build_scheduler(optimizer, name="adafactor", total_steps=10, warmup_percent=10)
    assert scheduler.get_last_lr() == [pytest.approx(1e-2)]  # before any step: the first relative step
    for _ in range(3):
        optimizer.zero_grad()
        model(torch.randn(8, 4)).pow(2).mean().backward()
        optimizer.step()
        scheduler.step()
    assert scheduler.get_last_lr()[0] == pytest.approx(optimizer_lr_for_logging(optimizer, 0))
    assert scheduler.get_last_lr()[0] != pytest.approx(1e-2)  # scaled by the weight's RMS


def test_adafactor_schedule_refuses_other_optimizers():
    with pytest.raises(ProblemError) as info:
        build_scheduler(dummy_optimizer(), name="adafactor", total_steps=10)
    assert info.value.errors[0].field == "optimizer.scheduler"


# -- refused settings ------------------------------------------------------------------------------

@pytest.mark.parametrize("rules, words", [
    ("", "final multiplier"),
    ("1:10", "bare multiplier"),
    ("1:x,0.1", "whole step number"),
    ("1-10,0.1", "is not 'multiplier:step'"),
    ("-1:10,0.1", "is not 'multiplier:step'"),
    ("1:10,", "final multiplier"),
])
def test_malformed_step_rules_name_their_setting(rules, words):
    with pytest.raises(ProblemError) as info:
        build_scheduler(dummy_optimizer(), name="piecewise_constant", total_steps=10, step_rules=rules)
    assert info.value.errors[0].field == "optimizer.step_rules" and words in info.value.errors[0].message


def test_step_rules_keep_the_order_written_and_read_by_step():
    rules = parse_step_rules("0.5:200, 1:100, 0.1")
    assert rules.boundaries == [100, 200]
    assert [rules.multiplier(s) for s in (0, 99, 100, 199, 200)] == [1.0, 1.0, 0.5, 0.5, 0.1]


def test_unknown_schedule_is_refused():
    with pytest.raises(ProblemError) as info:
        build_scheduler(dummy_optimizer(), name="cosine_annealing", total_steps=10)
    assert info.value.errors[0].field == "optimizer.scheduler"


def test_polynomial_refuses_a_rate_below_its_floor():
    with pytest.raises(ProblemError) as info:
        build_scheduler(dummy_optimizer({"unet": 1e-8}), name="polynomial", total_steps=10)
    assert info.value.errors[0].field == "optimizer.scheduler"


# -- the curve for the dashboard -------------------------------------------------------------------

OPTIONS = {"num_cycles": 3, "power": 1.5, "step_rules": "1:40,0.3:90,0.05"}


def real_rates(name: str, total: int, warmup_percent: float) -> dict[str, list[float]]:
    optimizer = dummy_optimizer()
    scheduler = build_scheduler(optimizer, name=name, total_steps=total, warmup_percent=warmup_percent, **OPTIONS)
    rates = stepped_rates(scheduler, optimizer, total)
    return {group: [r[i] for r in rates] for i, group in enumerate(BASE)}


@pytest.mark.parametrize("name", ["constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts",
                                  "polynomial", "piecewise_constant"])
def test_curve_matches_stepping_a_real_scheduler(name):
    curve = lr_curve(name, BASE, 150, warmup_percent=10, **OPTIONS)
    real = real_rates(name, 150, 10)
    for group in BASE:
        assert [step for step, _ in curve[group]] == list(range(1, 151))
        assert [lr for _, lr in curve[group]] == pytest.approx(real[group], rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("name", ["cosine_with_restarts", "piecewise_constant"])
def test_long_curve_is_sampled_but_keeps_its_corners(name):
    total = 3000
    curve = lr_curve(name, BASE, total, warmup_percent=5, **OPTIONS)
    real = real_rates(name, total, 5)
    points = curve["unet"]
    steps = [step for step, _ in points]
    assert len(points) <= 210 and steps[0] == 1 and steps[-1] == total and steps == sorted(set(steps))
    assert all(lr == pytest.approx(real["unet"][step - 1], rel=1e-12, abs=1e-15) for step, lr in points)
    corners = {150, 151}  # end of warmup (150 steps): the last ramp value and the first full one
    if name == "piecewise_constant":
        corners |= {40, 41, 90, 91}
    else:
        corners |= {1100, 1101, 2050, 2051}  # restarts at 150 + 2850 × 1/3 and × 2/3 scheduler steps
    assert corners <= set(steps)


def test_adafactor_curve_is_its_relative_step_size():
    curve = lr_curve("adafactor", {"unet": 1e-3}, 40000)
    points = dict(curve["unet"])
    assert points[1] == 1e-2 and points[40000] == pytest.approx(1 / math.sqrt(40000))
    assert all(lr == adafactor_relative_step(step) for step, lr in curve["unet"])


def test_empty_run_has_an_empty_curve():
    assert lr_curve("cosine", BASE, 0) == {"unet": [], "text_encoder": []}
