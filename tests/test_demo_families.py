"""`tui-lora demo --family`: each family with a built-in tiny model trains end to end on the CPU."""

from __future__ import annotations

import pytest

from tui_lora.cli import main
from tui_lora.commands.demo import demo_settings, tiny_picks


def test_every_family_with_a_tiny_model_is_a_demo_choice():
    assert tiny_picks() == {"sd1": "builtin-tiny-sd1", "sdxl": "builtin-tiny-sdxl", "flux1": "builtin-tiny-flux1"}
    assert demo_settings("flux1")["model.quick_pick"] == "builtin-tiny-flux1"
    with pytest.raises(ValueError, match="sd2"):
        demo_settings("sd2")


def test_cli_refuses_a_family_without_a_tiny_model(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--family", "sd2-v"])
    assert "flux1" in capsys.readouterr().err  # the choices are named


@pytest.mark.slow
def test_flux_demo_trains_the_tiny_flux_model_into_a_kohya_flux_lora_beside_the_sd_demo(tmp_path, capsys):
    from safetensors import safe_open

    folder = tmp_path / "demo"
    assert main(["demo", "--family", "flux1", "--dir", str(folder)]) == 0
    lora = folder / "output" / "demo_flux1_lora.safetensors"
    assert f"Your LoRA: {lora.resolve()}" in capsys.readouterr().out
    with safe_open(str(lora), "pt") as handle:
        keys, metadata = set(handle.keys()), handle.metadata()
    assert "lora_unet_double_blocks_1_img_attn_qkv.lora_down.weight" in keys
    assert "lora_unet_single_blocks_1_linear1.alpha" in keys
    assert metadata["ss_base_model_version"] == "flux1"
    assert (folder / "demo_flux1.yaml").exists() and not (folder / "demo.yaml").exists()
