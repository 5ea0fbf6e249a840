"""Z-Image samples take the family's own steps and guidance when a prompt sets none: Turbo is
step-distilled (8 steps, no CFG), the base takes ZImagePipeline's defaults; other families keep 20/7."""

from __future__ import annotations

from types import SimpleNamespace

import contextlib

import diffusers
import torch

from engine.families.registry import get as family_named
from engine.train.sampling import DEFAULT_CFG, DEFAULT_STEPS, SampleImages, resolve_prompts


def test_each_zimage_variant_has_its_own_sample_defaults_and_other_families_keep_the_generic_ones():
    zimage = family_named("zimage")
    assert zimage.sample_defaults("Tongyi-MAI/Z-Image-Turbo") == {"steps": 8, "cfg": 0.0}
    assert zimage.sample_defaults("builtin-tiny-zimage") == {"steps": 8, "cfg": 0.0}
    assert zimage.sample_defaults("/cache/models/builtin-tiny-zimage") == {"steps": 8, "cfg": 0.0}
    assert zimage.sample_defaults("/models/Z-Image") == {"steps": 50, "cfg": 5.0}
    assert family_named("sd1").sample_defaults("builtin-tiny-sd1") == {}
    turbo = resolve_prompts(["plain", "own --s 3 --l 2"], width=64, height=64, seed=1,
                            defaults=zimage.sample_defaults("Tongyi-MAI/Z-Image-Turbo"))
    assert [(p.steps, p.cfg) for p in turbo] == [(8, 0.0), (3, 2.0)]
    generic = resolve_prompts(["plain"], width=64, height=64, seed=1, defaults={})
    assert (generic[0].steps, generic[0].cfg) == (DEFAULT_STEPS, DEFAULT_CFG)


def test_turbo_samples_run_the_pipeline_with_eight_steps_and_no_guidance(tmp_path, monkeypatch):
    from engine.families.load import load_base_model

    base = load_base_model("builtin-tiny-zimage")
    calls = []
    real_call = diffusers.ZImagePipeline.__call__

    def spy(self, *args, **kwargs):
        calls.append((kwargs["num_inference_steps"], kwargs["guidance_scale"]))
        return real_call(self, *args, **kwargs)

    monkeypatch.setattr(diffusers.ZImagePipeline, "__call__", spy)
    cfg = SimpleNamespace(
        sampling=SimpleNamespace(every_n_epochs=None, every_n_steps=None, sampler="euler",
                                 prompts=["red thing", {"prompt": "blue thing", "steps": 2, "cfg": 1.5}]),
        folders=SimpleNamespace(output=str(tmp_path), output_name="z"),
        training=SimpleNamespace(max_resolution=(64, 64), clip_skip=1))
    events = []
    trainer = SimpleNamespace(
        seed=3, model=SimpleNamespace(base=base), device=torch.device("cpu"), phase=lambda *a: None,
        emit=lambda kind, **fields: events.append((kind, fields)),
        accelerator=SimpleNamespace(autocast=contextlib.nullcontext, trackers=[]))
    paths = SampleImages(cfg).sample(trainer, step=1, epoch=1)
    assert [kind for kind, _ in events] == ["sample"], events
    assert len(paths) == 2 and all(p.is_file() for p in paths)
    assert calls == [(8, 0.0), (2, 1.5)]
