"""`tui-lora demo --family`: each family with a built-in tiny model trains end to end on the CPU."""

from __future__ import annotations

import pytest

from tui_lora.cli import main
from tui_lora.commands.demo import demo_settings, tiny_picks


def test_every_family_with_a_tiny_model_is_a_demo_choice():
    assert tiny_picks() == {"sd1": "builtin-tiny-sd1", "sdxl": "builtin-tiny-sdxl", "flux1": "builtin-tiny-flux1",
                            "sd35": "builtin-tiny-sd35", "zimage": "builtin-tiny-zimage"}
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
    said = capsys.readouterr().out.split("Your LoRA:", 1)[-1].split()  # the path may sit on its own line
    assert said[0] == str(lora.resolve())
    with safe_open(str(lora), "pt") as handle:
        keys, metadata = set(handle.keys()), handle.metadata()
    assert "lora_unet_double_blocks_1_img_attn_qkv.lora_down.weight" in keys
    assert "lora_unet_single_blocks_1_linear1.alpha" in keys
    assert metadata["ss_base_model_version"] == "flux1"
    assert (folder / "demo_flux1.yaml").exists() and not (folder / "demo.yaml").exists()


@pytest.mark.slow
def test_sd35_demo_trains_the_tiny_model_into_a_file_every_loader_takes_whole(tmp_path, capsys):
    """The demo writes sd-scripts' names (ComfyUI, Forge and sd-scripts load them: their key handling is
    checked in test_sd35_key_compat.py); diffusers 0.42 reads only its own names for SD 3, so the demo's
    weights, read back and named diffusers' way, must load there with no key left over."""
    from diffusers import StableDiffusion3Pipeline
    from safetensors import safe_open
    from safetensors.torch import save_file

    from engine.families.sd35.lora_io import read_sd35_lora, sd35_state_dict
    from engine.families.sd35.tiny import ensure_tiny_sd35_model
    from tests.helpers import load_lora_noting_complaints
    from tests.test_sd35_key_compat import comfyui_every_key_loads, sd_scripts_every_key_loads

    folder = tmp_path / "demo"
    assert main(["demo", "--family", "sd35", "--dir", str(folder)]) == 0
    lora = folder / "output" / "demo_sd35_lora.safetensors"
    assert lora.exists() and "Your LoRA" in capsys.readouterr().out
    with safe_open(str(lora), "pt") as handle:
        keys, metadata = set(handle.keys()), handle.metadata()
        state = {key: handle.get_tensor(key) for key in keys}
    assert "lora_unet_joint_blocks_1_x_block_attn2_qkv.lora_down.weight" in keys
    assert metadata["ss_base_model_version"] == "5-medium" and metadata["ss_network_module"] == "networks.lora_sd3"
    pipe = StableDiffusion3Pipeline.from_pretrained(str(ensure_tiny_sd35_model()))
    assert comfyui_every_key_loads(state, pipe) and sd_scripts_every_key_loads(state, pipe)
    back = read_sd35_lora(lora, num_blocks=pipe.transformer.config.num_layers)
    save_file(sd35_state_dict(back.weights, num_blocks=pipe.transformer.config.num_layers, key_format="diffusers"),
              str(tmp_path / "diffusers.safetensors"))
    assert load_lora_noting_complaints(pipe, tmp_path / "diffusers.safetensors") == []
    assert set(pipe.get_list_adapters()) >= {"transformer"}


@pytest.mark.slow
def test_zimage_demo_trains_the_tiny_model_into_a_file_diffusers_takes_whole(tmp_path, capsys):
    from diffusers import ZImagePipeline
    from safetensors import safe_open

    from engine.families.zimage.tiny import ensure_tiny_zimage_model
    from tests.helpers import load_lora_noting_complaints

    folder = tmp_path / "demo"
    assert main(["demo", "--family", "zimage", "--dir", str(folder)]) == 0
    lora = folder / "output" / "demo_zimage_lora.safetensors"
    assert lora.exists() and "Your LoRA" in capsys.readouterr().out
    with safe_open(str(lora), "pt") as handle:
        keys, metadata = set(handle.keys()), handle.metadata()
    assert metadata["ss_base_model_version"] == "zimage"
    modules = {key.removeprefix("diffusion_model.").rsplit(".", 2)[0] for key in keys if key.endswith(".weight")}
    assert any(module.startswith("layers.1.") for module in modules)  # indices above 0 are written
    pipe = ZImagePipeline.from_pretrained(str(ensure_tiny_zimage_model()))
    assert load_lora_noting_complaints(pipe, lora) == []
    loaded = {name for name, module in pipe.transformer.named_modules()
              if hasattr(module, "lora_A") and "default_0" in module.lora_A}
    assert loaded == modules  # every module of the file became a LoRA layer, and no other
