"""Pure parts of the wizard: derived numbers, the file-size estimate, prompt lines, free names,
and how a run file's text becomes field values."""

from __future__ import annotations

import pytest

from engine.config import RunConfig, complete
from engine.plan import plan_before_scan, plan_run, scan_for, text_encoder_stop_step, warmup_steps_for
from tui_lora.dashboard.formatting import size as format_size
from tui_lora.screens.review import derived_content
from tui_lora.checks import path_check
from tui_lora.draft import Draft, format_number
from engine.lora_size import REFERENCE_CONFIGS, count_parameters, estimate_file_size
from tui_lora.prompt_lines import format_prompts, parse_prompt_text


def typed(**changes):
    return complete({k.replace("__", "."): v for k, v in changes.items()})


def test_warmup_and_text_encoder_stop_step_follow_the_documented_rounding():
    cfg = RunConfig(typed(optimizer__warmup_percent=10.0, training__stop_text_encoder_percent=30.0))
    assert warmup_steps_for(cfg, 25) == round(10 * 25 / 100)
    assert text_encoder_stop_step(cfg, 25) == 8  # ceil(7.5)
    assert warmup_steps_for(cfg.replace(optimizer__scheduler="constant"), 25) == 0
    assert text_encoder_stop_step(cfg.replace(optimizer__text_encoder_lr=0.0), 25) is None


def test_epochs_and_scales_come_from_the_settings_before_the_scan():
    cfg = RunConfig(typed(training__epochs=3, network__rank=16, network__alpha=4.0, network__type="locon",
                          network__conv_rank=8, network__conv_alpha=8.0))
    plan = plan_before_scan(cfg)
    assert (plan.epochs, plan.total_steps, plan.warmup_steps, plan.dataset) == (3, None, None, None)
    assert plan.lora_scale == 0.25 and plan.conv_scale == 1.0
    assert plan_before_scan(RunConfig(typed(training__max_train_epochs=5))).epochs == 5


def test_review_numbers_after_the_scan_are_the_plan_the_run_uses(small_data):
    cfg = RunConfig(typed(model__quick_pick="builtin-tiny-sd1", folders__images=str(small_data), training__epochs=3,
                          optimizer__warmup_percent=10.0))
    summary = scan_for(cfg)
    plan = plan_run(cfg, summary)
    assert plan.dataset is summary and plan.total_steps == summary.steps_per_epoch * 3 == summary.total_steps
    assert plan.warmup_steps == warmup_steps_for(cfg, plan.total_steps)
    text = derived_content(plan, "").plain
    assert f"Total steps{' ' * 20}{plan.total_steps}" in text


def test_file_sizes_read_the_same_on_the_review_screen_and_the_dashboard():
    plan = plan_before_scan(RunConfig(typed(model__quick_pick="sd15", network__rank=32)))
    assert plan.estimated_file_bytes is not None
    shown = format_size(plan.estimated_file_bytes)
    assert shown.endswith(" MiB") and f"≈ {shown}" in derived_content(plan, "").plain
    assert (format_size(512), format_size(1536), format_size(3 * 2**30)) == ("512 B", "1.5 KiB", "3.0 GiB")


@pytest.mark.parametrize("family, layers, megabytes", [("sd1", 264, 37.7), ("sdxl", 986, 228.0)])
def test_lora_size_matches_published_kohya_files_at_rank_32(family, layers, megabytes):
    config = REFERENCE_CONFIGS[family]
    numbers, counted = count_parameters(config["unet"], config["text_encoders"], rank=32, conv_rank=1,
                                        network_type="lora", train_text_encoder=True)
    assert counted == layers  # Kohya's module count for the family
    assert numbers * 2 / 1e6 == pytest.approx(megabytes, rel=0.01)


def test_lora_size_grows_with_conv_layers_and_precision_and_shrinks_without_text_encoder():
    base = typed(model__quick_pick="sd15", network__rank=8)
    size, note = estimate_file_size(base)
    assert "reference SD1" in note
    assert estimate_file_size({**base, "network.type": "locon", "network.conv_rank": 8})[0] > size
    assert estimate_file_size({**base, "training.save_precision": "float"})[0] > 1.9 * size
    assert estimate_file_size({**base, "optimizer.text_encoder_lr": 0.0})[0] < size


def test_prompt_lines_round_trip_through_run_file_entries():
    entries, problems = parse_prompt_text("a cat --n dog, blurry --d 42 --s 20 --l 7.5 --w 64 --h 96\n\nplain one")
    assert problems == []
    assert entries == [{"prompt": "a cat", "negative": "dog, blurry", "seed": 42, "steps": 20, "cfg": 7.5,
                        "width": 64, "height": 96}, "plain one"]
    assert parse_prompt_text(format_prompts(entries))[0] == entries


def test_prompt_line_with_a_bad_option_names_the_line():
    _, problems = parse_prompt_text("ok\nx --d many")
    assert problems and problems[0].field == "sampling.prompts[1]" and "line 2" in problems[0].message
    _, problems = parse_prompt_text("x --q 1")
    assert "unknown option --q" in problems[0].message


def test_path_checks_tell_read_folders_from_created_ones(tmp_path):
    assert path_check("folders.images", str(tmp_path / "none"))[0][0].is_error
    assert path_check("folders.images", str(tmp_path)) == ([], "folder found")
    assert path_check("folders.output", str(tmp_path / "new")) == ([], "will be created")
    (tmp_path / "file").write_text("x")
    assert path_check("folders.output", str(tmp_path / "file"))[0][0].is_error
    assert path_check("network.weights", str(tmp_path / "file")) == ([], "file found")


def test_a_run_file_with_wrong_values_opens_with_each_value_in_its_field():
    document = {"network": {"rank": "lots", "alpha": 2, "colour": "red"}, "folders": {"images": "imgs"}}
    draft = Draft.from_document(document)
    assert draft.values["network.rank"] == "lots"  # kept where the error will show
    assert draft.values["network.alpha"] == "2"
    assert [p.field for p in draft.notes] == ["network.colour"]
    assert {p.field for p in draft.errors()} == {"network.rank"}


def test_draft_round_trips_a_config_and_leaves_model_defaults_following_the_pick():
    config = RunConfig({"model.quick_pick": "builtin-tiny-sd1", "folders.images": "x", "optimizer.unet_lr": 5e-5})
    draft = Draft.from_config(config)
    assert draft.values["training.max_resolution"] == ""  # follows the model: 64 for tiny
    assert draft.values["optimizer.unet_lr"] == "5e-05"
    assert draft.to_config() == config
    draft.set("model.quick_pick", "sd15")
    draft.apply_quick_pick()
    assert draft.to_config().training.max_resolution == [512, 512]


def test_numbers_are_shown_as_typed():
    assert [format_number(v) for v in (10.0, 0.0001, 5e-05, 3, 0.1)] == ["10", "0.0001", "5e-05", "3", "0.1"]
