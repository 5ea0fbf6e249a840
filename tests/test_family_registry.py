"""The model-family registry: `model.family`, the old booleans, and the native resolution."""

from __future__ import annotations

import json

import pytest

from engine.config import RunConfig, check_rules
from engine.config.yamlio import config_from_document, load_yaml_text
from engine import families
from engine.problems import ProblemError

from . import wizard_support
from .wizard_support import choose, run_async, settle

wizard_env = wizard_support.wizard_env  # a fixture shared by the wizard's tests


def _write_folder(root, *, sample_size: int, vae_levels: int, unet_dir: str = "unet"):
    (root / unet_dir).mkdir(parents=True)
    (root / "vae").mkdir()
    (root / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    (root / unet_dir / "config.json").write_text(json.dumps({"sample_size": sample_size}))
    (root / "vae" / "config.json").write_text(json.dumps({"block_out_channels": [32] * vae_levels}))
    return root


@pytest.mark.parametrize("flags, family", [
    ({}, "sd1"),
    ({"v2": True}, "sd2"),
    ({"v2": True, "v_parameterization": True}, "sd2-v"),
    ({"sdxl": True}, "sdxl"),
])
def test_run_files_with_the_old_booleans_load_as_a_family(flags, family):
    text = "model:\n  quick_pick: custom\n  path: /models/x\n" + "".join(
        f"  {flag}: {str(value).lower()}\n" for flag, value in flags.items()) + "folders:\n  images: /data\n"
    if not flags:
        text = text.replace("  path: /models/x\n", "  path: /models/x\n  v2: false\n")
    cfg, _ = config_from_document(load_yaml_text(text, 'run.yaml'), 'run.yaml')
    assert cfg.model.family == family


def test_the_old_booleans_are_no_settings_once_a_file_is_read():
    cfg = RunConfig.from_values({"model.quick_pick": "custom", "model.path": "/m", "model.family": "sd2-v"})
    assert not {"model.v2", "model.v_parameterization", "model.sdxl"} & set(cfg.values)


def test_a_custom_model_with_no_family_detects_it():
    cfg = RunConfig.from_values({"model.quick_pick": "custom", "model.path": "/m"})
    assert cfg.model.family == "auto"
    assert families.requested_family(cfg.values) == "auto"


def test_a_family_the_booleans_contradict_is_an_error_on_the_boolean():
    text = "model:\n  quick_pick: custom\n  path: /m\n  family: sdxl\n  v2: true\nfolders:\n  images: x\n"
    with pytest.raises(ProblemError) as caught:
        config_from_document(load_yaml_text(text, "run.yaml"), "run.yaml")
    assert {p.field for p in caught.value.errors} == {"model.v2"}
    assert any("model.family is sdxl" in p.message for p in caught.value.errors)


def test_a_quick_pick_fixes_the_family():
    values = RunConfig.from_values({"model.quick_pick": "sd15", "model.family": "sdxl", "folders.images": "x"}).values
    assert "model.family" in {p.field for p in check_rules(values) if p.is_error}


@pytest.mark.parametrize("pick, side", [("sd15", 512), ("sd21-base", 512), ("sd21-768-v", 768), ("sdxl-base", 1024),
                                        ("builtin-tiny-sd1", 64)])
def test_automatic_resolution_is_the_quick_picks_native_size(pick, side):
    assert RunConfig.from_values({"model.quick_pick": pick}).training.max_resolution == [side, side]


def test_automatic_resolution_of_a_custom_folder_comes_from_its_configs(tmp_path):
    # sample_size 96 latents × a 4-level VAE (factor 8) = 768 px, whatever family the flags say
    folder = _write_folder(tmp_path / "custom", sample_size=96, vae_levels=4)
    cfg = RunConfig.from_values({"model.quick_pick": "custom", "model.path": str(folder)})
    assert cfg.training.max_resolution == [768, 768]
    odd = _write_folder(tmp_path / "odd", sample_size=80, vae_levels=3)
    assert RunConfig.from_values({"model.quick_pick": "custom", "model.path": str(odd)}).training.max_resolution == [320, 320]


def test_a_single_file_takes_the_native_size_from_its_config_folder(tmp_path):
    configs = _write_folder(tmp_path / "configs", sample_size=128, vae_levels=4)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"")
    cfg = RunConfig.from_values({"model.quick_pick": "custom", "model.path": str(weights),
                                 "model.config_dir": str(configs)})
    assert cfg.training.max_resolution == [1024, 1024]


def test_a_resolution_far_above_the_native_size_warns(tmp_path):
    folder = _write_folder(tmp_path / "custom", sample_size=32, vae_levels=4)  # a 256 px model
    values = RunConfig.from_values({"model.quick_pick": "custom", "model.path": str(folder), "folders.images": "x",
                                    "training.max_resolution": [512, 512]}).values
    warned = [p for p in check_rules(values) if p.field == "training.max_resolution"]
    assert len(warned) == 1 and not warned[0].is_error and "256" in warned[0].message
    at_native = RunConfig.from_values({"model.quick_pick": "custom", "model.path": str(folder), "folders.images": "x"})
    assert not [p for p in check_rules(at_native.values) if p.field == "training.max_resolution"]


def test_sd15_at_1024_warns_but_sdxl_at_1024_does_not():
    sd15 = RunConfig.from_values({"model.quick_pick": "sd15", "folders.images": "x",
                                  "training.max_resolution": [1024, 1024]})
    sdxl = RunConfig.from_values({"model.quick_pick": "sdxl-base", "folders.images": "x"})
    assert "training.max_resolution" in {p.field for p in check_rules(sd15.values)}
    assert "training.max_resolution" not in {p.field for p in check_rules(sdxl.values)}


def test_every_family_names_its_metadata_as_sd_scripts_does():
    from engine.families import for_file, read_family
    from engine.lorafile.metadata import architecture, base_model_version

    expected = {("sd1", False): ("sd_v1", "stable-diffusion-v1/lora"),
                ("sd1", True): ("sd_v1_v", "stable-diffusion-v1/lora"),
                ("sd2", False): ("sd_v2", "stable-diffusion-v2-512/lora"),
                ("sd2", True): ("sd_v2_v", "stable-diffusion-v2-768-v/lora"),
                ("sdxl", False): ("sdxl_base_v1-0", "stable-diffusion-xl-v1-base/lora")}
    for (naming, v), (version, arch) in expected.items():
        family = for_file(naming, v)
        assert (base_model_version(family, v), architecture(family)) == (version, arch)
        assert read_family({"ss_base_model_version": version}) == naming
        assert read_family({"modelspec.architecture": arch}) == naming


def test_auto_accepts_whatever_family_the_model_is_and_a_named_one_is_checked(model_cache):
    from engine.families.load import load_base_model

    assert load_base_model("builtin-tiny-sdxl", family=None).family == "sdxl"
    with pytest.raises(ProblemError) as caught:
        load_base_model("builtin-tiny-sdxl", family=families.get("sd1"))
    assert "model.family" in {p.field for p in caught.value.errors}


def test_no_family_is_registered_twice_and_each_has_a_label():
    assert len(set(families.REGISTRY)) == len(families.REGISTRY)
    assert all(family.label and family.base_model_version for family in families.REGISTRY.values())
    with pytest.raises(ValueError, match="unknown model family"):
        families.get("sd9")


@run_async
async def test_the_wizard_shows_no_old_booleans_and_keeps_the_chosen_family(wizard_env):
    from tui_lora.app import WizardApp
    from tui_lora.draft import Draft

    app = WizardApp(Draft())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await choose(pilot, "model.quick_pick", "custom", tab=False)
        await choose(pilot, "model.family", "sdxl", tab=False)
        fields = app.screen.fields()
        assert not {"model.v2", "model.v_parameterization", "model.sdxl"} & set(fields)
        assert app.draft.values["model.family"] == "sdxl" and app.draft.typed()["model.family"] == "sdxl"


def test_a_draft_built_with_only_a_quick_pick_trains_that_pick_family():
    # The family fields are disabled under a well-known pick, so stale values there (a draft made
    # in code, or one whose pick changed) must not decide the family.
    from tui_lora.draft import Draft

    typed = Draft({"model.quick_pick": "sdxl-base", "model.family": "sd1"}).typed()
    assert typed["model.family"] == "sdxl"
    assert typed["buckets.max_resolution"] == 2048
