"""The next free output name: one rule for the wizard's offer, the engine's refusal and the demo."""

from __future__ import annotations

from pathlib import Path

from engine.output_names import next_free_name


def test_next_free_name_starts_at_v2_and_skips_existing_files(tmp_path):
    assert next_free_name(tmp_path, "mychar", "safetensors") == "mychar_v2"
    (tmp_path / "mychar_v2.safetensors").write_bytes(b"")
    assert next_free_name(tmp_path, "mychar", "safetensors") == "mychar_v3"


def test_a_versioned_name_counts_on_instead_of_adding_another_suffix(tmp_path):
    (tmp_path / "mylora_v2.safetensors").write_bytes(b"")
    assert next_free_name(tmp_path, "mylora_v2", "safetensors") == "mylora_v3"
    (tmp_path / "mylora_v3.safetensors").write_bytes(b"")
    assert next_free_name(tmp_path, "mylora_v2", ".safetensors") == "mylora_v4"


def test_only_files_of_the_same_format_are_in_the_way(tmp_path):
    (tmp_path / "mychar_v2.ckpt").write_bytes(b"")
    assert next_free_name(tmp_path, "mychar", "safetensors") == "mychar_v2"
    assert next_free_name(tmp_path, "mychar", "ckpt") == "mychar_v3"


def test_the_engine_refusal_suggests_the_same_name_as_the_wizard(tiny_config):
    from engine.plan import plan_run
    from engine.train.preflight import preflight

    cfg = tiny_config(**{"folders.output_name": "mylora_v2"})
    output = Path(cfg.folders.output)
    output.mkdir(parents=True, exist_ok=True)
    (output / "mylora_v2.safetensors").write_bytes(b"")
    problems = [p for p in preflight(cfg, plan_run(cfg)) if p.field == "folders.output_name"]
    assert problems and "'mylora_v3'" in problems[0].hint
