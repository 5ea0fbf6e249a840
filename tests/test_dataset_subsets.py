"""`dataset.subsets`: per-folder repeats, caption extension, class tokens, caption options,
augmentation and regularisation, judged by the schema and honoured by the scan and the loop."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.config import RunConfig, config_from_document, load_run_file, save_run_file, validate_values
from engine.dataset.color_aug import jitter_colours
from engine.dataset.subsets import caption_for
from engine.plan import plan_run
from engine.problems import ProblemError
from tui_lora.cli import main

ALPHA_TAGS = "alpha, red, square, small, bright"
BETA_TAGS = "beta, blue, round, large, dark"


def _image(path: Path, colour: tuple[int, int, int]) -> None:
    image = Image.new("RGB", (64, 64), colour)
    for x in range(0, 64, 8):
        image.putpixel((x, x), (255, 255, 255))
    image.save(path)


@pytest.fixture
def two_folders(tmp_path) -> Path:
    """`5_alpha`: two images with .txt captions; `beta` (no repeat count in its name): one image
    with a .caption file and a decoy .txt; `1_people` in a regularisation folder."""
    root = tmp_path / "images"
    alpha, beta = root / "5_alpha", root / "beta"
    alpha.mkdir(parents=True)
    beta.mkdir()
    for index in range(2):
        _image(alpha / f"a{index}.png", (200, 40, 40))
        (alpha / f"a{index}.txt").write_text(ALPHA_TAGS)
    _image(beta / "b0.png", (40, 40, 200))
    (beta / "b0.caption").write_text(BETA_TAGS)
    (beta / "b0.txt").write_text("the wrong caption file")
    reg = tmp_path / "reg" / "1_people"
    reg.mkdir(parents=True)
    for index in range(3):
        _image(reg / f"r{index}.png", (90, 90, 90))
    return tmp_path


def _values(data: Path, subsets: list, **more) -> dict:
    values = {"model.quick_pick": "builtin-tiny-sd1", "folders.images": str(data / "images"),
              "buckets.step": 32, "training.max_resolution": [64, 64], "training.batch_size": 1,
              "dataset.subsets": subsets}
    values.update({k.replace("__", "."): v for k, v in more.items()})
    return values


SUBSETS = [{"image_dir": "5_alpha", "num_repeats": 3, "keep_tokens": 2, "shuffle_caption": True},
           {"image_dir": "beta", "num_repeats": 2, "caption_extension": "caption", "keep_tokens": 1,
            "shuffle_caption": True, "flip_aug": True}]


def _problems(values: dict) -> dict[str, str]:
    return {p.field: f"{p.message} ({p.hint})" for p in validate_values(values)[1]}


def test_each_folder_scans_with_its_own_repeats_caption_file_and_options(two_folders):
    plan = plan_run(RunConfig(_values(two_folders, SUBSETS)))
    data = plan.dataset
    assert not data.errors, data.errors
    by_folder = {c.name: c for c in data.concepts}
    assert (by_folder["5_alpha"].repeats, by_folder["beta"].repeats) == (3, 2)
    assert (by_folder["5_alpha"].subset, by_folder["beta"].subset) == (0, 1)
    assert data.num_train_images == 2 * 3 + 1 * 2
    beta_item = next(i for i in data.items if i.concept == "beta")
    assert beta_item.caption == BETA_TAGS and beta_item.caption_from_file  # from .caption, not the .txt
    alpha_item = next(i for i in data.items if i.concept == "5_alpha")
    assert (alpha_item.options.keep_tokens, alpha_item.options.flip) == (2, False)
    assert (beta_item.options.keep_tokens, beta_item.options.flip) == (1, True)


def test_captions_keep_each_folders_own_leading_tags_while_the_rest_shuffle(two_folders):
    items = {i.concept: i for i in plan_run(RunConfig(_values(two_folders, SUBSETS))).dataset.items}
    rng = random.Random(0)
    alpha = [caption_for(items["5_alpha"], rng).split(", ") for _ in range(60)]
    beta = [caption_for(items["beta"], rng).split(", ") for _ in range(60)]
    assert all(tags[:2] == ["alpha", "red"] for tags in alpha)
    assert all(tags[0] == "beta" for tags in beta)
    assert len({tuple(tags[2:]) for tags in alpha}) > 1 and len({tags[1] for tags in beta}) > 1


def test_folders_without_an_entry_keep_the_run_wide_values(two_folders):
    values = _values(two_folders, SUBSETS[1:], captions__shuffle=False, augment__flip=False)
    items = {i.concept: i for i in plan_run(RunConfig(values)).dataset.items}
    assert items["5_alpha"].repeats == 5 and not items["5_alpha"].options.shuffle
    assert caption_for(items["5_alpha"], random.Random(1)) == ALPHA_TAGS


def test_a_regularisation_subset_counts_as_regularisation_images(two_folders):
    reg_dir = two_folders / "reg"
    values = _values(two_folders, [{"image_dir": "beta", "is_reg": True, "num_repeats": 1}],
                     folders__regularization=str(reg_dir))
    data = plan_run(RunConfig(values)).dataset
    kinds = {c.name: c.is_regularization for c in data.concepts}
    assert kinds == {"5_alpha": False, "beta": True, "1_people": True}
    assert data.num_train_images == 2 * 5 and data.num_reg_images == 1 + 3
    assert all(i.is_reg == (i.concept != "5_alpha") for i in data.items)


def test_a_subset_folder_that_does_not_exist_is_an_error_naming_the_entry(two_folders):
    data = plan_run(RunConfig(_values(two_folders, [{"image_dir": "7_gone"}]))).dataset
    assert [(p.field, "is not a concept folder" in p.message) for p in data.errors] == [
        ("dataset.subsets[0].image_dir", True)]
    gone = str(two_folders / "images" / "7_gone")
    data = plan_run(RunConfig(_values(two_folders, [{"image_dir": gone}]))).dataset
    assert [(p.field, "does not exist" in p.message) for p in data.errors] == [("dataset.subsets[0].image_dir", True)]


@pytest.mark.parametrize("entry, field, words", [
    ({"image_dir": "beta", "keep_token": 1}, "dataset.subsets[0].keep_token", "did you mean 'keep_tokens'?"),
    ({"image_dir": "beta", "num_repeats": "many"}, "dataset.subsets[0].num_repeats", "is not a whole number"),
    ({"image_dir": "beta", "num_repeats": 0}, "dataset.subsets[0].num_repeats", "out of range"),
    ({"image_dir": "beta", "caption_dropout_rate": 2}, "dataset.subsets[0].caption_dropout_rate", "≤ 1"),
    ({"image_dir": "beta", "flip_aug": "sometimes"}, "dataset.subsets[0].flip_aug", "true or false"),
    ({"num_repeats": 2}, "dataset.subsets[0].image_dir", "needs the concept folder"),
    ({"image_dir": "/elsewhere/10_x"}, "dataset.subsets[0].image_dir", "directly inside folders.images"),
    ("beta", "dataset.subsets[0]", "mapping"),
])
def test_bad_entries_name_the_entry_and_key_with_the_fix(two_folders, entry, field, words):
    problems = _problems(_values(two_folders, [entry]))
    assert field in problems and words in problems[field], problems


def test_augmentations_that_change_every_step_are_refused_with_cached_latents(two_folders):
    values = _values(two_folders, [{"image_dir": "beta", "color_aug": True}], training__cache_latents=True)
    assert "cached latents" in _problems(values)["dataset.subsets[0].color_aug"]


def test_subsets_survive_a_run_file_round_trip(two_folders, tmp_path):
    cfg = RunConfig(_values(two_folders, SUBSETS))
    loaded, _ = load_run_file(save_run_file(cfg, tmp_path / "run.yaml"))
    assert loaded.dataset.subsets == [{**SUBSETS[0]}, {**SUBSETS[1], "caption_extension": ".caption"}]
    with pytest.raises(ProblemError) as info:
        config_from_document({"folders": {"images": "x"}, "dataset": {"subset": []}}, "run.yaml")
    assert "did you mean 'subsets'?" in str(info.value)


def test_colour_jitter_changes_some_draws_only_slightly():
    pixels = np.tile(np.array([[[180, 60, 40]]], dtype=np.uint8), (8, 8, 1))
    rng = random.Random(3)
    draws = [jitter_colours(pixels, rng) for _ in range(300)]
    changed = [d for d in draws if not np.array_equal(d, pixels)]
    assert 0.2 < len(changed) / len(draws) < 0.45
    assert max(int(np.abs(d.astype(int) - pixels).max()) for d in changed) < 60


def test_validate_prints_each_subsets_image_counts(two_folders, tmp_path, capsys):
    run_file = save_run_file(RunConfig(_values(two_folders, SUBSETS, folders__output=str(tmp_path / "out"))),
                             tmp_path / "run.yaml")
    assert main(["validate", str(run_file)]) == 0
    out = capsys.readouterr().out
    assert "  5_alpha: 2 images × 3 repeats" in out and "dataset.subsets[0]: num_repeats 3, keep_tokens 2" in out
    assert "  beta: 1 images × 2 repeats" in out and "caption_extension .caption" in out


@pytest.mark.slow
def test_a_real_run_trains_each_folder_with_its_own_repeats_and_captions(two_folders, monkeypatch):
    from engine.train import loop
    from tests.helpers import small_run

    seen: list[tuple[str, str]] = []

    def recording(item, rng):
        caption = caption_for(item, rng)
        seen.append((item.concept, caption))
        return caption

    monkeypatch.setattr(loop, "caption_for", recording)
    result, events = small_run(two_folders, "builtin-tiny-sd1", dataset__subsets=SUBSETS, training__epochs=2,
                               training__batch_size=1)
    started = next(e for e in events if e["type"] == "run_started")
    assert started["dataset"]["num_train_images"] == 8 and started["total_steps"] == 16
    draws = Counter(concept for concept, _ in seen)
    assert draws == {"5_alpha": 2 * 3 * 2, "beta": 1 * 2 * 2}  # images × repeats × epochs
    assert all(c.split(", ")[:2] == ["alpha", "red"] for f, c in seen if f == "5_alpha")
    assert all(c.startswith("beta, ") and len(c.split(", ")) == 5 for f, c in seen if f == "beta")
    # the file records each folder's values as sd-scripts' ss_datasets does
    from safetensors import safe_open

    with safe_open(str(result.outputs[0]), "np") as handle:
        (dataset,) = json.loads(handle.metadata()["ss_datasets"])
    recorded = {s["image_dir"]: (s["num_repeats"], s["keep_tokens"], s["flip_aug"]) for s in dataset["subsets"]}
    assert recorded == {"5_alpha": (3, 2, False), "beta": (2, 1, True)}
    assert dataset["num_train_images"] == 8
