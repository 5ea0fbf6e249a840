"""The settings schema, run-file loading/saving and every validation rule."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from engine.config import (
    SETTINGS,
    RunConfig,
    validate_values,
    config_from_document,
    dump_run_yaml,
    load_run_file,
    load_yaml_text,
    save_run_file,
)
from engine.problems import ProblemError


def load_text(tmp_path, text: str):
    path = tmp_path / "run.yaml"
    path.write_text(textwrap.dedent(text))
    return load_run_file(path)


def errors_of(tmp_path, text: str):
    with pytest.raises(ProblemError) as info:
        load_text(tmp_path, text)
    return info.value.errors


def problems_for(**values):
    base = {"folders.images": "imgs"}
    base.update({k.replace("__", "."): v for k, v in values.items()})
    return validate_values(base)[1]


def fields(problems, severity):
    return {p.field for p in problems if p.severity == severity}


def test_importing_config_does_not_import_torch():
    code = "import sys, engine.config; print('torch' in sys.modules, 'textual' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_every_setting_has_hint_help_screen_and_valid_default():
    for s in SETTINGS:
        assert s.hint and s.help and s.label, s.key
        assert s.screen in ("model", "folders", "basic", "advanced")
        if s.kind == "choice":
            assert s.default in s.choices, s.key


def test_save_then_load_gives_equal_config(tmp_path):
    cfg = RunConfig.from_values({
        "folders.images": "data/img", "network.rank": 16, "network.alpha": 8.0, "network.type": "locon",
        "optimizer.extra_args": ["weight_decay=0.01", "betas=0.9,0.99"], "training.seed": 42,
        "sampling.prompts": ["a photo", {"prompt": "a cat", "negative": "blurry", "seed": 3}],
        "hardware.gpu_ids": [0, 1], "folders.training_comment": "it's: tricky # text",
        "model.quick_pick": "custom", "model.path": "/models/x.safetensors", "overwrite": True,
    })
    path = save_run_file(cfg, tmp_path / "run.yaml")
    loaded, _ = load_run_file(path)
    assert loaded == cfg
    assert "version: 1" in path.read_text()
    assert "# Size of the LoRA matrices" in path.read_text()


def test_save_refuses_to_replace_existing_file(tmp_path):
    target = tmp_path / "run.yaml"
    target.write_text("mine")
    with pytest.raises(FileExistsError):
        save_run_file(RunConfig.from_values({"folders.images": "x"}), target)
    assert target.read_text() == "mine"


def test_missing_keys_take_defaults_and_model_defaults(tmp_path):
    cfg, _ = load_text(tmp_path, """
        model: {quick_pick: builtin-tiny-sd1}
        folders: {images: imgs}
    """)
    assert cfg.training.max_resolution == [64, 64]
    assert (cfg.buckets.min_resolution, cfg.buckets.max_resolution) == (64, 128)
    assert cfg.model.path == "builtin-tiny-sd1"
    cfg, _ = load_text(tmp_path, "model: {quick_pick: sd21-768-v}\nfolders: {images: imgs}\n")
    assert cfg.training.max_resolution == [768, 768] and cfg.model.family == "sd2-v"
    cfg, _ = load_text(tmp_path, "model: {quick_pick: sdxl-base}\nfolders: {images: imgs}\n")
    assert cfg.model.family == "sdxl" and cfg.training.max_resolution == [1024, 1024] and cfg.buckets.max_resolution == 2048


def test_unknown_key_suggests_the_right_one(tmp_path):
    (problem,) = errors_of(tmp_path, "folders: {images: x}\nnetwork: {rnak: 4}\n")
    assert problem.field == "network.rnak" and "network" in problem.message
    assert "rank" in problem.hint


def test_setting_in_wrong_section_is_pointed_at(tmp_path):
    (problem,) = errors_of(tmp_path, "folders: {images: x}\nrank: 4\n")
    assert "network.rank" in problem.hint


def test_unknown_section_is_an_error(tmp_path):
    (problem,) = errors_of(tmp_path, "folders: {images: x}\nnetwrok: {rank: 4}\n")
    assert problem.field == "netwrok" and "network" in problem.hint


@pytest.mark.parametrize("text, field, word", [
    ("network: {rank: eight}", "network.rank", "whole number"),
    ("network: {rank: 0}", "network.rank", "out of range"),
    ("network: {rank: 2000}", "network.rank", "out of range"),
    ("network: {alpha: 0}", "network.alpha", "out of range"),
    ("network: {dropout: 1.0}", "network.dropout", "out of range"),
    ("training: {mixed_precision: fp8}", "training.mixed_precision", "not a known value"),
    ("training: {cache_latents: maybe}", "training.cache_latents", "true or false"),
    ("training: {max_resolution: [512]}", "training.max_resolution", "exactly 2"),
    ("optimizer: {name: adamw9bit}", "optimizer.name", "not a known value"),
    ("optimizer: {warmup_percent: 150}", "optimizer.warmup_percent", "out of range"),
    ("training: {batch_size: true}", "training.batch_size", "whole number"),
    ("sampling: {prompts: [{prompt: a, sead: 1}]}", "sampling.prompts[0]", "unknown key"),
])
def test_wrong_types_and_ranges_name_the_field(tmp_path, text, field, word):
    problems = errors_of(tmp_path, "folders: {images: x}\n" + text + "\n")
    assert [p.field for p in problems] == [field]
    assert word in problems[0].message
    assert problems[0].hint


def test_choice_error_suggests_close_value(tmp_path):
    (problem,) = errors_of(tmp_path, "folders: {images: x}\noptimizer: {scheduler: cosin}\n")
    assert "cosine" in problem.hint


def test_images_folder_is_required(tmp_path):
    problems = errors_of(tmp_path, "network: {rank: 4}\n")
    assert fields(problems, "error") == {"folders.images"}


def test_version_must_be_supported(tmp_path):
    problems = errors_of(tmp_path, "version: 7\nfolders: {images: x}\n")
    assert fields(problems, "error") == {"version"}


@pytest.mark.parametrize("text, word", [
    ("a: 1\na: 2\n", "duplicate key"),
    ("base: &b {rank: 4}\nnetwork: *b\n", "aliases"),
    ("folders:\n\timages: x\n", "tab"),
    ("folders: [unclosed\n", "line"),
])
def test_broken_yaml_is_a_clear_error_with_place(tmp_path, text, word):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ProblemError) as info:
        load_run_file(path)
    (problem,) = info.value.problems
    assert word in (problem.message + problem.field + problem.hint).lower()
    assert "bad.yaml" in problem.field


def test_billion_laughs_is_refused_quickly(tmp_path):
    bomb = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{c}: &{c} [{','.join('*' + p for _ in range(9))}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
    with pytest.raises(ProblemError):
        load_yaml_text(bomb, "bomb.yaml")


def test_huge_file_is_refused(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text("# x\n" * 400_000)
    with pytest.raises(ProblemError) as info:
        load_run_file(path)
    assert "larger" in info.value.problems[0].message


def test_non_mapping_document_is_an_error():
    with pytest.raises(ProblemError):
        config_from_document(["a", "b"], "list.yaml")


def test_alpha_above_rank_warns():
    assert "network.alpha" in fields(problems_for(network__rank=4, network__alpha=8.0), "warning")
    assert "network.alpha" not in fields(problems_for(network__rank=8, network__alpha=8.0), "warning")


def test_dim_from_weights_without_weights_is_an_error():
    assert "network.dim_from_weights" in fields(problems_for(network__dim_from_weights=True), "error")
    ok = problems_for(network__dim_from_weights=True, network__weights="old.safetensors")
    assert "network.dim_from_weights" not in fields(ok, "error")


def test_old_family_flags_are_read_once_as_model_family(tmp_path):
    cfg, notes = load_text(tmp_path, """
        model: {quick_pick: custom, path: m, v2: true, v_parameterization: true}
        folders: {images: imgs}
    """)
    assert cfg.model.family == "sd2-v"
    assert {"model.v2", "model.v_parameterization"} <= fields(notes, "warning")
    assert any("model.v2 is the old spelling: write model.family: sd2-v" in p.message for p in notes)
    saved = dump_run_yaml(cfg)
    assert "family: sd2-v" in saved and "v2:" not in saved and "v_parameterization" not in saved
    assert "model.v2" not in SETTINGS and "model.sdxl" not in SETTINGS  # nothing after the reader sees them
    cfg, _ = load_text(tmp_path, "model: {quick_pick: custom, path: m, sdxl: true}\nfolders: {images: imgs}\n")
    assert cfg.model.family == "sdxl"
    cfg, _ = load_text(tmp_path, "model: {quick_pick: sdxl-base, v2: false}\nfolders: {images: imgs}\n")
    assert cfg.model.family == "sdxl"  # a flag the file leaves out follows the pick


def test_v_parameterization_without_v2_warns_and_is_not_a_family(tmp_path):
    cfg, notes = load_text(tmp_path, """
        model: {quick_pick: custom, path: m, v_parameterization: true}
        folders: {images: imgs}
    """)
    assert cfg.model.family == "sd1"
    assert any(p.field == "model.v_parameterization" and "does not fit" in p.message for p in notes)


def test_quick_pick_flags_must_agree(tmp_path):
    errors = errors_of(tmp_path, "model: {quick_pick: sd15, sdxl: true}\nfolders: {images: imgs}\n")
    assert "model.family" in {p.field for p in errors}


def test_sdxl_and_v2_together_is_an_error(tmp_path):
    errors = errors_of(tmp_path, "model: {quick_pick: custom, path: m, sdxl: true, v2: true}\nfolders: {images: imgs}\n")
    assert "model.v2" in {p.field for p in errors}


def test_old_flags_that_contradict_model_family_are_an_error(tmp_path):
    errors = errors_of(tmp_path, "model: {quick_pick: custom, path: m, family: sd1, sdxl: true}\n"
                                 "folders: {images: imgs}\n")
    assert "model.sdxl" in {p.field for p in errors}


def test_ckpt_output_warns():
    assert "model.save_as" in fields(problems_for(model__save_as="ckpt"), "warning")


@pytest.mark.parametrize("scheduler", ["constant", "adafactor"])
def test_warmup_with_scheduler_without_warmup_warns(scheduler):
    extra = {"optimizer__name": "Adafactor"} if scheduler == "adafactor" else {}
    assert "optimizer.warmup_percent" in fields(problems_for(optimizer__scheduler=scheduler, **extra), "warning")
    assert "optimizer.warmup_percent" not in fields(
        problems_for(optimizer__scheduler=scheduler, optimizer__warmup_percent=0.0, **extra), "warning")


def test_adafactor_schedule_needs_adafactor_optimizer():
    assert "optimizer.scheduler" in fields(problems_for(optimizer__scheduler="adafactor"), "error")


def test_resolution_must_be_multiple_of_bucket_step():
    probs = problems_for(training__max_resolution=[500, 512])
    assert "training.max_resolution" in fields(probs, "error")
    assert "buckets.min_resolution" in fields(problems_for(buckets__min_resolution=200), "error")
    assert not fields(problems_for(training__max_resolution=[512, 768]), "error")


def test_bucket_limits_out_of_order_is_an_error():
    assert "buckets.min_resolution" in fields(problems_for(buckets__min_resolution=1024, buckets__max_resolution=512), "error")


def test_text_encoder_stop_with_zero_te_lr_warns():
    probs = problems_for(training__stop_text_encoder_percent=50.0, optimizer__text_encoder_lr=0.0)
    assert "training.stop_text_encoder_percent" in fields(probs, "warning")


def test_random_crop_with_cached_latents_is_an_error():
    assert "augment.random_crop" in fields(problems_for(augment__random_crop=True), "error")
    assert not fields(problems_for(augment__random_crop=True, training__cache_latents=False), "error")


def test_disk_cache_needs_memory_cache():
    probs = problems_for(training__cache_latents=False, training__cache_latents_to_disk=True)
    assert "training.cache_latents_to_disk" in fields(probs, "error")


@pytest.mark.parametrize("name", ["../evil", "/abs/path", "a/b", "a\\b", "", " padded", ".."])
def test_output_name_cannot_escape_output_folder(name):
    assert "folders.output_name" in fields(problems_for(folders__output_name=name), "error")


def test_malformed_extra_args_are_errors():
    assert "optimizer.extra_args" in fields(problems_for(optimizer__extra_args=["weight_decay"]), "error")
    assert not fields(problems_for(optimizer__extra_args=["weight_decay=0.1"]), "error")


def test_lr_free_optimizer_with_small_lr_warns():
    assert "optimizer.learning_rate" in fields(problems_for(optimizer__name="Prodigy"), "warning")
    assert "optimizer.learning_rate" not in fields(
        problems_for(optimizer__name="Prodigy", optimizer__learning_rate=1.0, optimizer__text_encoder_lr=1.0), "warning")


def test_gpu_ids_must_cover_processes():
    assert "hardware.gpu_ids" in fields(problems_for(hardware__num_processes=2, hardware__gpu_ids=[0]), "error")


def test_piecewise_schedule_needs_rules():
    assert "optimizer.step_rules" in fields(problems_for(optimizer__scheduler="piecewise_constant"), "error")
    assert not fields(problems_for(optimizer__scheduler="piecewise_constant", optimizer__step_rules="1:10,0.5:20,0.1"), "error")


def test_keep_tokens_without_shuffle_warns():
    assert "captions.keep_tokens" in fields(problems_for(captions__keep_tokens=1), "warning")


def test_wizard_text_values_are_parsed_leniently():
    assert not fields(problems_for(network__rank="16", training__max_resolution="512,768", augment__flip="true"), "error")
    assert "network.rank" in fields(problems_for(network__rank="1.5"), "error")


def test_lr_inheritance():
    cfg = RunConfig.from_values({"folders.images": "x", "optimizer.learning_rate": 3e-4,
                                 "optimizer.text_encoder_lr": None})
    assert cfg.unet_lr == 3e-4 and cfg.text_encoder_lr == 3e-4
    assert cfg.replace(optimizer__unet_lr=1e-5).unet_lr == 1e-5


def test_max_train_epochs_replaces_epochs():
    cfg = RunConfig.from_values({"folders.images": "x", "training.epochs": 3, "training.max_train_epochs": 5})
    assert cfg.epochs == 5


def test_dumped_yaml_is_readable_and_parses():
    text = dump_run_yaml(RunConfig.from_values({"folders.images": "x"}))
    assert text.startswith("# tui-lora run file")
    document = load_yaml_text(text, "t")
    assert document["network"]["rank"] == 8


def test_a_resolution_may_be_one_number_or_kohyas_w_comma_h_text(tmp_path):
    from engine.config import load_run_file

    for text, expected in (("512", [512, 512]), ('"512,768"', [512, 768]), ("[640, 448]", [640, 448])):
        run_file = tmp_path / "run.yaml"
        run_file.write_text(f"folders: {{images: {tmp_path}}}\ntraining: {{max_resolution: {text}}}\n")
        cfg, _ = load_run_file(run_file)
        assert cfg.training.max_resolution == expected, text
    from tui_lora.draft import Draft

    for text, expected in (("512", [512, 512]), ("512,768", [512, 768]), ("512 x 768", [512, 768])):
        draft = Draft({"model.quick_pick": "builtin-tiny-sd1", "training.max_resolution": text})
        assert draft.typed()["training.max_resolution"] == expected, text  # as typed in the wizard


def test_each_section_appears_once_in_the_dumped_yaml_wherever_its_settings_are_declared():
    # Settings of one section may live in several schema modules (hardware.vram_gb came after
    # queue.stop_on_failure): the file must still hold each section once, or it will not load.
    text = dump_run_yaml(RunConfig.from_values({"folders.images": "x"}))
    headers = [line for line in text.splitlines() if line and not line.startswith((" ", "#")) and line.endswith(":")]
    assert len(headers) == len(set(headers)), headers
    from engine.config import SETTINGS

    assert {s.section for s in SETTINGS if s.section} == {h[:-1] for h in headers}
