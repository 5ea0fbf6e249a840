"""Z-Image loads from a diffusers folder and from ComfyUI's single files (native transformer with fused
qkv, `model.`-prefixed Qwen3 with its output head, the autoencoder), with configs from a folder."""

from __future__ import annotations

import shutil

import pytest

torch = pytest.importorskip("torch")

from engine.families.zimage import loading  # noqa: E402
from engine.families.zimage.tiny import ensure_tiny_zimage_model  # noqa: E402
from engine.problems import ProblemError  # noqa: E402
from tests.test_zimage_key_compat import comfyui_z_image_to_diffusers  # noqa: E402


def native_transformer_state(diffusers_state: dict, config: dict) -> dict:
    """ComfyUI's layout of a diffusers Z-Image transformer (its `z_image_to_diffusers` map, inverted)."""
    native, fused = {}, {}
    for key, value in diffusers_state.items():
        target = comfyui_z_image_to_diffusers(config).get(key, key)
        if isinstance(target, tuple):
            fused.setdefault(target[0], []).append((target[1][1], value))
        else:
            native[target] = value
    for name, parts in fused.items():
        native[name] = torch.cat([value for _, value in sorted(parts, key=lambda p: p[0])])
    return native


@pytest.fixture(scope="module")
def tiny_folder(model_cache):
    return ensure_tiny_zimage_model(model_cache)


def test_the_tiny_folder_is_told_apart_by_its_structure(tiny_folder, tmp_path):
    assert loading.is_zimage_folder(tiny_folder)
    other = tmp_path / "other"
    other.mkdir()
    (other / "model_index.json").write_text('{"_class_name": "FluxPipeline", "transformer": ["diffusers", "FluxTransformer2DModel"]}')
    assert not loading.is_zimage_folder(other)


def test_single_files_in_comfyui_layout_load_to_the_same_weights(tiny_folder, tmp_path):
    from safetensors.torch import load_file, save_file

    parts = loading.load_parts(str(tiny_folder), hub=False, local_only=True, dtype=torch.float32)
    transformer, vae, (qwen,), _, _ = parts
    state = load_file(str(tiny_folder / "transformer" / "diffusion_pytorch_model.safetensors"))
    native = native_transformer_state(state, dict(transformer.config))
    assert "layers.1.attention.qkv.weight" in native and loading.is_zimage_keys(native)
    save_file(native, str(tmp_path / "z_image_turbo.safetensors"))
    qwen_state = {f"model.{k}": v for k, v in qwen.state_dict().items()}
    qwen_state["lm_head.weight"] = qwen.state_dict()["embed_tokens.weight"].clone()
    save_file(qwen_state, str(tmp_path / "qwen_3_4b.safetensors"))
    shutil.copy(tiny_folder / "vae" / "diffusion_pytorch_model.safetensors", tmp_path / "ae.safetensors")
    config_dir = tmp_path / "configs"
    shutil.copytree(tiny_folder, config_dir, ignore=shutil.ignore_patterns("*.safetensors"))

    single = loading.load_single_file(str(tmp_path / "z_image_turbo.safetensors"), qwen3=str(tmp_path / "qwen_3_4b.safetensors"),
                                      ae=str(tmp_path / "ae.safetensors"), config_dir=str(config_dir), dtype=torch.float32)
    for loaded, original in zip((single[0], single[1], single[2][0]), (transformer, vae, qwen)):
        reference = original.state_dict()
        got = loaded.state_dict()
        assert set(got) == set(reference)
        assert all(torch.equal(got[k], reference[k]) for k in reference)
    prompt = single[3][0].apply_chat_template([{"role": "user", "content": "a dog"}], tokenize=False,
                                              add_generation_prompt=True, enable_thinking=True)
    assert prompt.startswith("<|im_start|>user")


def test_missing_companion_files_name_their_settings(tiny_folder, tmp_path):
    with pytest.raises(ProblemError) as caught:
        loading.load_single_file(str(tmp_path / "z.safetensors"), qwen3=None, ae=str(tmp_path / "nope.safetensors"),
                                 config_dir=None, dtype=torch.float32)
    fields = {p.field for p in caught.value.problems}
    assert fields == {"model.qwen3", "model.ae", "model.config_dir"}


def test_a_qwen_file_of_another_model_is_refused(tiny_folder, tmp_path):
    from safetensors.torch import save_file

    save_file({"model.embed_tokens.weight": torch.zeros(4, 4)}, str(tmp_path / "clip.safetensors"))
    with pytest.raises(ProblemError) as caught:
        loading.load_qwen3_file(tiny_folder / "text_encoder", str(tmp_path / "clip.safetensors"), torch.float32)
    assert caught.value.problems[0].field == "model.qwen3"
