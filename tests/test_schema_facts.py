"""Facts about a setting live on the setting: what the engine does with a path, and whether the
LoRA's metadata records it under its Kohya name. Code that needs them reads the schema."""

from __future__ import annotations

from engine.config import SETTINGS, RunConfig
from tui_lora.checks import path_check


def test_every_path_setting_says_what_the_engine_does_with_it():
    for setting in SETTINGS:
        if setting.kind == "path":
            assert setting.disk in ("read_folder", "read_file", "write_folder"), setting.key
        else:
            assert setting.disk == "", setting.key


def test_disk_checks_follow_the_schema(tmp_path):
    afile = tmp_path / "a.safetensors"
    afile.write_bytes(b"")
    for setting in SETTINGS:
        if setting.disk == "read_folder":
            assert "is a file, not a folder" in path_check(setting.key, str(afile))[0][0].message
            assert "does not exist" in path_check(setting.key, str(tmp_path / "missing"))[0][0].message
        elif setting.disk == "read_file":
            assert "is a folder, not a file" in path_check(setting.key, str(tmp_path))[0][0].message
            assert path_check(setting.key, str(afile)) == ([], "file found")
        elif setting.disk == "write_folder":
            assert path_check(setting.key, str(tmp_path / "new")) == ([], "will be created")
    assert path_check("folders.output", "")[0][0].message == "needs a value"  # nowhere to write
    assert path_check("folders.logging", "") == ([], "")  # optional: logging is off


def test_lora_metadata_extras_come_from_the_schema_and_leak_no_paths():
    from engine.train.saving import extra_metadata

    cfg = RunConfig({"folders.images": "/home/me/secret-images", "model.quick_pick": "custom",
                     "model.path": "/home/me/models/base.safetensors", "network.scale_weight_norms": 1.0})
    extra = extra_metadata(cfg)
    assert extra["scale_weight_norms"] == 1.0 and "gradient_checkpointing" in extra
    # a family's own section (flux:, sd35:, zimage:) describes that family's LoRAs only; this run names none
    from engine import families

    sections = {family.settings_section for family in families.REGISTRY.values() if family.settings_section}
    assert {"flux", "sd35", "zimage"} <= sections
    expected = {s.kohya for s in SETTINGS if s.kohya and s.ss_extra and s.kind != "path" and s.section not in sections}
    assert set(extra) == expected
    assert not any("/home/me" in str(value) for value in extra.values())
    assert "network_dim" not in extra  # sd-scripts' own ss_network_dim holds the rank
