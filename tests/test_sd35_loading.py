"""SD 3.5 from single files (SAI's MMDiT+VAE file with CLIP-L, CLIP-G and T5 files) and from a diffusers folder."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from engine.families.sd35.loading import load_sd35_parts, load_sd35_single_file  # noqa: E402
from engine.problems import ProblemError  # noqa: E402
from tests.sd35_support import ldm_vae_state, sai_transformer_state  # noqa: E402


@pytest.fixture(scope="module")
def tiny_folder(model_cache):
    from engine.families.sd35.tiny import ensure_tiny_sd35_model

    return ensure_tiny_sd35_model(model_cache)


@pytest.fixture(scope="module")
def single_files(tiny_folder, tmp_path_factory):
    """The tiny model as ComfyUI users hold SD 3.5: one SAI file (MMDiT + VAE) and three encoder files."""
    from safetensors.torch import load_file, save_file

    root = tmp_path_factory.mktemp("sd35-files")
    transformer = load_file(str(tiny_folder / "transformer" / "diffusion_pytorch_model.safetensors"))
    vae = load_file(str(tiny_folder / "vae" / "diffusion_pytorch_model.safetensors"))
    save_file({**sai_transformer_state(transformer, 3), **ldm_vae_state(vae, 3)}, str(root / "sd3.5_tiny.safetensors"))
    files = {}
    for key, sub, name in (("model.clip_l", "text_encoder", "clip_l"), ("model.clip_g", "text_encoder_2", "clip_g"),
                           ("model.t5xxl", "text_encoder_3", "t5xxl_fp16")):
        save_file(load_file(str(tiny_folder / sub / "model.safetensors")), str(root / f"{name}.safetensors"))
        files[key] = str(root / f"{name}.safetensors")
    return root / "sd3.5_tiny.safetensors", files


def test_a_single_sai_file_with_its_encoder_files_loads_the_same_model_as_the_folder(tiny_folder, single_files):
    from safetensors import safe_open

    path, files = single_files
    with safe_open(str(path), "pt") as handle:
        keys = list(handle.keys())
    single = load_sd35_single_file(str(path), files=files, ae=None, config_dir=str(tiny_folder), dtype=torch.float32, keys=keys)
    folder = load_sd35_parts(str(tiny_folder), from_hub=False, local_only=True, dtype=torch.float32)
    for ours, theirs in zip((single[0], single[1], *single[2]), (folder[0], folder[1], *folder[2])):
        mine, reference = ours.state_dict(), theirs.state_dict()
        assert set(mine) >= {k for k in reference if "position_ids" not in k}
        for key, value in reference.items():
            assert torch.equal(mine[key], value), key
    assert [type(t).__name__ for t in single[3]] == [type(t).__name__ for t in folder[3]]


def test_a_single_file_names_each_missing_companion_and_the_config_folder(single_files, tmp_path):
    path, files = single_files
    with pytest.raises(ProblemError) as caught:
        load_sd35_single_file(str(path), files={"model.clip_l": files["model.clip_l"]}, ae=None, config_dir=None,
                              dtype=torch.float32, keys=[])
    fields = {p.field for p in caught.value.problems}
    assert fields == {"model.clip_g", "model.t5xxl", "model.config_dir", "model.ae"}  # no VAE inside: keys=[]
    with pytest.raises(ProblemError, match="not a diffusers SD 3.5 folder"):
        load_sd35_single_file(str(path), files=files, ae=None, config_dir=str(tmp_path), dtype=torch.float32,
                              keys=["first_stage_model.x"])


def test_an_encoder_file_of_the_wrong_model_is_refused_by_its_setting(tiny_folder, single_files):
    path, files = single_files
    wrong = dict(files, **{"model.clip_g": files["model.t5xxl"]})
    with pytest.raises(ProblemError) as caught:
        load_sd35_single_file(str(path), files=wrong, ae=None, config_dir=str(tiny_folder), dtype=torch.float32,
                              keys=["first_stage_model.x"])
    assert [p.field for p in caught.value.problems] == ["model.clip_g"]


@pytest.mark.slow
def test_a_single_file_run_with_companion_files_trains_through_the_engine(tiny_folder, single_files, tmp_path):
    from tests.helpers import small_run, write_small_concepts

    path, files = single_files
    write_small_concepts(tmp_path / "images")
    result, events = small_run(tmp_path, "custom", model__path=str(path), model__family="auto",
                               model__clip_l=files["model.clip_l"], model__clip_g=files["model.clip_g"],
                               model__t5xxl=files["model.t5xxl"], model__config_dir=str(tiny_folder),
                               buckets__min_resolution=32)
    base = result.trainer.model.base
    assert base.family == "sd35" and base.kind == "single_file" and len(base.text_encoders) == 3
    assert [e["loss"] for e in events if e["type"] == "step"]
    assert (tmp_path / "out" / "lora.safetensors").exists()
