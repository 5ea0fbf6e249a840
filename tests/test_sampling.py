"""Sample images during training: prompts, samplers, schedule, files, events, and no side effects."""

from __future__ import annotations

import random

import numpy as np
import pytest

from engine.problems import ProblemError
import torch
from PIL import Image
from safetensors.torch import load_file

from engine import families
from engine.config import SETTINGS
from engine.train.entry import run_config
from engine.train.sampling import (
    SAMPLERS,
    SamplePrompt,
    build_sampler,
    eval_mode,
    preserved_rng,
    resolve_prompts,
)


def _events(cfg):
    events = []
    result = run_config(cfg, on_event=events.append)
    assert result.status == "completed", (result.message, result.hint)
    return result, events


def test_prompt_lines_take_kohya_options_and_missing_values_take_the_defaults():
    prompts = resolve_prompts(
        ["a cat --n blurry, dark --s 3 --d 42 --l 4.5 --w 128 --h 200",
         {"prompt": "a dog", "negative": "rain", "cfg": 2, "width": 96},
         "plain"],
        width=64, height=64, seed=100)
    assert prompts == [
        SamplePrompt("a cat", "blurry, dark", seed=42, steps=3, cfg=4.5, width=128, height=192),
        SamplePrompt("a dog", "rain", seed=101, steps=20, cfg=2.0, width=64, height=64),
        SamplePrompt("plain", "", seed=102, steps=20, cfg=7.0, width=64, height=64),
    ]
    # an option it cannot read is refused as validate and the wizard refuse it, never dropped unseen
    with pytest.raises(ProblemError, match="unknown option --x"):
        resolve_prompts(["a cat --x ignored"], width=64, height=64, seed=100)


def test_every_schema_sampler_is_built_from_the_models_scheduler_config():
    import diffusers

    from engine.families.load import load_base_model

    choices = SETTINGS["sampling.sampler"].choices
    assert set(choices) == set(SAMPLERS)
    base = load_base_model("builtin-tiny-sd2-v", family=families.get("sd2-v"))
    for name in choices:
        scheduler = build_sampler(name, base.scheduler_config, base.prediction_type)
        assert isinstance(scheduler, getattr(diffusers, SAMPLERS[name][0]))
        assert scheduler.config.prediction_type == "v_prediction"
        torch.testing.assert_close(scheduler.alphas_cumprod, base.noise_scheduler.alphas_cumprod)
    dpm = build_sampler("dpmpp_2m", base.scheduler_config, base.prediction_type)
    assert (dpm.config.algorithm_type, dpm.config.solver_order) == ("dpmsolver++", 2)


def test_preserved_rng_puts_back_every_generator_state():
    before = (random.random(), np.random.rand(), torch.rand(3))
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    with preserved_rng():
        random.random(), np.random.rand(), torch.rand(100)
    after = (random.random(), np.random.rand(), torch.rand(3))
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    expected = (random.random(), np.random.rand(), torch.rand(3))
    assert after[:2] == expected[:2] and torch.equal(after[2], expected[2])
    assert before[0] != after[0]


def test_eval_mode_gives_each_module_back_its_own_mode():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.5))
    model.train()
    model[0].eval()
    with eval_mode(model):
        assert not any(m.training for m in model.modules())
    assert [m.training for m in model.modules()] == [True, False, True]


@pytest.mark.slow
def test_samples_are_written_at_the_chosen_steps_and_epochs_and_named_in_events(tiny_config, tmp_path):
    # 4 draws per epoch at batch 2: steps 1-2 are epoch 1, 3-4 epoch 2, 5-6 epoch 3
    cfg = tiny_config(training__epochs=3, sampling__every_n_steps=3, sampling__every_n_epochs=2,
                      sampling__sampler="euler_a",
                      sampling__prompts=["red thing --s 2", {"prompt": "blue", "steps": 2, "width": 64, "height": 128}])
    _, events = _events(cfg)
    samples = [e for e in events if e["type"] == "sample"]
    assert [(e["step"], e["epoch"]) for e in samples] == [(3, 2), (4, 2), (6, 3)]
    folder = tmp_path / "out" / "sample"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"test_lora_e{epoch:06d}_s{step:06d}_{index:02d}.png" for step, epoch in ((3, 2), (4, 2), (6, 3))
        for index in (0, 1))
    for event in samples:
        assert event["prompts"] == ["red thing", "blue"]
        assert [Image.open(p).size for p in event["paths"]] == [(64, 64), (64, 128)]
    order = [e["type"] for e in events]
    assert order.index("sample") < order.index("run_finished")


@pytest.mark.slow
def test_prompts_without_an_interval_render_once_at_the_end(tiny_config):
    cfg = tiny_config(training__epochs=2, sampling__prompts=["red thing --s 2"], sampling__sampler="dpmpp_2m")
    _, events = _events(cfg)
    assert [(e["step"], e["epoch"], len(e["paths"])) for e in events if e["type"] == "sample"] == [(4, 2, 1)]


@pytest.mark.slow
def test_sampling_leaves_the_training_trajectory_unchanged(tiny_config, tmp_path):
    # dropout in training mode draws from the global generator: a sample left in eval mode, or
    # one that moved the generator, would change every later step
    common = {"training__epochs": 2, "network__dropout": 0.3, "network__rank_dropout": 0.2,
              "network__module_dropout": 0.2}
    plain, _ = _events(tiny_config(**common))
    sampled, events = _events(tiny_config(**common, folders__output=str(tmp_path / "sampled"),
                                          sampling__prompts=["red thing --s 2", "blue --s 2"],
                                          sampling__every_n_steps=1, sampling__sampler="euler_a"))
    assert len([e for e in events if e["type"] == "sample"]) == 4
    a, b = load_file(str(plain.outputs[-1])), load_file(str(sampled.outputs[-1]))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert all(m.training for m in sampled.trainer.model.base.unet.modules())


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_memory_returns_to_its_baseline_after_sampling(tiny_config):
    result, _ = _events(tiny_config(sampling__prompts=["red thing --s 2"]))
    trainer = result.trainer
    extension = trainer.extensions[0]
    torch.cuda.synchronize()
    baseline = torch.cuda.memory_allocated()
    extension.last_step = None
    assert extension.sample(trainer, step=99, epoch=1)
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() == baseline
