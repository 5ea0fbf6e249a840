"""The bucket limits have one rule (dataset/buckets.py check_bucket_settings), used by `validate`
and by the dataset scan alike; and their defaults follow the model, as the resolution does."""

from __future__ import annotations

import json

import pytest

from engine.config import load_run_file
from engine.plan import plan_run
from engine.problems import ProblemError


def _run_file(tmp_path, text: str):
    images = tmp_path / "images" / "1_thing"
    images.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    Image.new("RGB", (64, 64), (10, 20, 30)).save(images / "a.png")
    path = tmp_path / "run.yaml"
    path.write_text(f"folders: {{images: {tmp_path / 'images'}, output: {tmp_path / 'out'}}}\n" + text)
    return path


def test_a_resolution_above_the_bucket_maximum_is_refused_by_validate_as_by_the_scan(tmp_path):
    path = _run_file(tmp_path, "training: {max_resolution: [1024, 1024]}\nbuckets: {max_resolution: 768}\n")
    with pytest.raises(ProblemError) as info:
        load_run_file(path)
    (problem,) = [p for p in info.value.errors if p.field.startswith("buckets")]
    assert problem.field == "buckets.max_resolution" and "1024x1024" in problem.message


def test_limits_that_pass_validate_pass_the_scan(tmp_path):
    path = _run_file(tmp_path, "training: {max_resolution: [768, 768]}\nbuckets: {max_resolution: 768, min_resolution: 256}\n")
    cfg, _ = load_run_file(path)
    assert not [p for p in plan_run(cfg).problems if p.is_error and p.field.startswith("buckets")]


def _small_custom_model(folder):
    """The configs of a diffusers SD 1.x folder whose model is made for 64 px (8 latents × 8)."""
    (folder / "unet").mkdir(parents=True)
    (folder / "vae").mkdir()
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    (folder / "unet" / "config.json").write_text(json.dumps({"sample_size": 8}))
    (folder / "vae" / "config.json").write_text(json.dumps({"block_out_channels": [32, 32, 64, 64]}))
    return folder


def test_a_64_px_custom_model_with_nothing_set_about_buckets_validates(tmp_path):
    model = _small_custom_model(tmp_path / "model")
    path = _run_file(tmp_path, f"model: {{quick_pick: custom, path: {model}, family: sd1}}\n")
    cfg, _ = load_run_file(path)  # raised before: bucket minimum 256 above the 64 px resolution
    assert cfg.training.max_resolution == [64, 64] or tuple(cfg.training.max_resolution) == (64, 64)
    assert cfg.values["buckets.min_resolution"] == 64
    assert not [p for p in plan_run(cfg).problems if p.is_error]
