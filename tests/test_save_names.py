"""The names of a run's saves have one definition (engine/output_names.py); the collision check,
resume and the clean-up after a kill all read them through it, whatever the step count."""

from __future__ import annotations

import re

from engine.output_names import epoch_save_stem, sample_stem, save_stem_pattern, step_save_stem
from engine.outputs import LONGEST_DERIVED, existing_outputs
from engine.train.interrupted_saves import clean_interrupted_saves
from engine.train.resume_state import find_latest_state


def test_every_kind_of_save_name_matches_the_one_pattern():
    pattern = re.compile(save_stem_pattern("my.lora") + "$")
    for stem in ("my.lora", epoch_save_stem("my.lora", 3), step_save_stem("my.lora", 500),
                 step_save_stem("my.lora", 123_456_789), epoch_save_stem("my.lora", 1_234_567)):
        assert pattern.match(stem), stem
    assert step_save_stem("x", 500) == "x-step00000500" and epoch_save_stem("x", 3) == "x-000003"
    assert not pattern.match("myXlora-step00000500") and not pattern.match("my.lora-step500")
    assert sample_stem("x", 2, 30, 1) == "x_e000002_s000030_01"
    assert LONGEST_DERIVED.format(name="n") == "." + step_save_stem("n", 0) + ".safetensors.abcdefgh.partial"


def test_a_step_save_past_99_999_999_steps_is_found_by_resume_cleaning_and_the_collision_check(tiny_config, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    stem = step_save_stem("test_lora", 123_456_789)  # nine digits
    state = out / f"{stem}-state"
    state.mkdir()
    (state / "progress.json").write_text("{}")
    assert find_latest_state(out, "test_lora") == state
    partial = out / f".{stem}.safetensors.abcd1234.partial"
    partial.write_bytes(b"half")
    assert partial.name in clean_interrupted_saves(out, "test_lora") and not partial.exists()
    (out / f"{stem}.safetensors").write_bytes(b"x")
    found = {p.name for p in existing_outputs(tiny_config(folders__output=str(out)), 1)}
    assert {f"{stem}.safetensors", f"{stem}-state"} <= found


def test_the_scan_options_are_built_once_for_the_plan_and_the_doctor(tiny_config):
    """Every keyword of scan_dataset (but the folders and the header reader) comes from
    scan_options, which the plan and the doctor both use."""
    import inspect

    from engine.dataset.doctor.run import DoctorOptions
    from engine.dataset.scan import scan_dataset
    from engine.dataset.scan_options import SCAN_OPTION_NAMES, scan_options

    keywords = [p.name for p in inspect.signature(scan_dataset).parameters.values() if p.kind == p.KEYWORD_ONLY]
    assert sorted(SCAN_OPTION_NAMES) == sorted(k for k in keywords if k != "read_header")
    cfg = tiny_config(training__batch_size=3, buckets__no_upscale=True)
    options = DoctorOptions.from_config(cfg, find_tokenizer=False)
    assert {name: getattr(options, name) for name in SCAN_OPTION_NAMES} == scan_options(cfg)
