"""A Z-Image LoRA file we write is loaded by diffusers' `ZImagePipeline.load_lora_weights`: every key
becomes a LoRA layer with the file's values (alpha folded in), and the output changes."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from engine.families.zimage.lora_io import read_zimage_lora, save_zimage_lora  # noqa: E402
from engine.families.zimage.tiny import ensure_tiny_zimage_model  # noqa: E402
from tests.helpers import load_lora_noting_complaints  # noqa: E402
from tests.test_zimage_key_compat import random_weights  # noqa: E402


@pytest.fixture(scope="module")
def tiny_pipeline(model_cache):
    from diffusers import ZImagePipeline

    return ZImagePipeline.from_pretrained(str(ensure_tiny_zimage_model(model_cache)))


def _image(pipe) -> torch.Tensor:
    out = pipe("a photo of sks dog", height=64, width=64, num_inference_steps=2, guidance_scale=0.0,
               generator=torch.Generator().manual_seed(0), output_type="pt").images
    return out[0]


def test_diffusers_loads_every_key_of_our_file_and_the_image_changes(tiny_pipeline, tmp_path):
    pipe = tiny_pipeline
    weights = random_weights(pipe.transformer, rank=4, seed=1)
    path = tmp_path / "zimage.safetensors"
    save_zimage_lora(path, weights, metadata={"ss_network_dim": "4"}, save_dtype=torch.float32)
    before = _image(pipe)
    assert load_lora_noting_complaints(pipe, path) == []
    modules = dict(pipe.transformer.named_modules())
    for module_path, tensors in weights["unet"].items():
        layer = modules[module_path]
        assert "default_0" in layer.lora_A, f"{module_path}: no LoRA layer loaded"
        rank = tensors["lora_down.weight"].shape[0]
        scale = float(tensors["alpha"]) / rank
        # diffusers folds alpha / rank into the two matrices (split between them); their product keeps it
        loaded = layer.lora_B["default_0"].weight @ layer.lora_A["default_0"].weight * layer.scaling["default_0"]
        torch.testing.assert_close(loaded, tensors["lora_up.weight"] @ tensors["lora_down.weight"] * scale)
    lora_layers = [name for name, module in modules.items() if hasattr(module, "lora_A") and "default_0" in module.lora_A]
    assert sorted(lora_layers) == sorted(weights["unet"])
    after = _image(pipe)
    assert (after - before).abs().max() > 1e-3
    pipe.unload_lora_weights()


def test_a_written_file_reads_back_to_the_same_weights(tiny_pipeline, tmp_path):
    weights = random_weights(tiny_pipeline.transformer, rank=2, seed=3)
    path = tmp_path / "zimage.safetensors"
    save_zimage_lora(path, weights, metadata={}, save_dtype=torch.float32)
    known = {name for name, _ in tiny_pipeline.transformer.named_modules()}
    back = read_zimage_lora(path, known)
    assert back.family_guess == "zimage"
    assert set(back.weights["unet"]) == set(weights["unet"])
    for module_path, tensors in weights["unet"].items():
        for suffix, value in tensors.items():
            torch.testing.assert_close(back.weights["unet"][module_path][suffix].float(), value.float())


def test_a_file_naming_modules_the_base_lacks_is_refused_with_the_field(tiny_pipeline, tmp_path):
    from safetensors.torch import save_file

    from engine.problems import ProblemError

    path = tmp_path / "other.safetensors"
    save_file({"diffusion_model.layers.7.attention.to_q.lora_A.weight": torch.zeros(2, 64),
               "diffusion_model.layers.7.attention.to_q.lora_B.weight": torch.zeros(64, 2)}, str(path))
    known = {name for name, _ in tiny_pipeline.transformer.named_modules()}
    with pytest.raises(ProblemError) as caught:
        read_zimage_lora(path, known)
    problem = caught.value.problems[0]
    assert problem.field == "network.weights" and "layers.7.attention.to_q" in problem.message
