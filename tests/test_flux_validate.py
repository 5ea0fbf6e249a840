"""`tui-lora validate` on FLUX.1 run files: the plan with its VRAM and file-size lines, the clear errors,
and the VRAM estimate following the Flux settings that change memory."""

from __future__ import annotations

import math
import textwrap

import pytest

from engine.config import RunConfig
from engine.lora_size import count_parameters, estimate_file_size, model_configs
from engine.vram import estimate_vram
from tui_lora.cli import main


def _run_file(tmp_path, body: str, images) -> str:
    path = tmp_path / "flux.yaml"
    path.write_text(f"folders:\n  images: {images}\n  output: {tmp_path / 'out'}\n" + textwrap.dedent(body))
    return str(path)


def test_validate_prints_a_flux_plan_with_the_transformer_and_t5_in_its_vram_lines(tmp_path, small_data, capsys):
    run_file = _run_file(tmp_path, """\
        model: {quick_pick: flux1-dev}
        training: {mixed_precision: bf16, gradient_checkpointing: true, fp8_base: true}
        """, small_data)
    main(["validate", run_file])  # the hub model is not cached here (offline): only that may be an error
    out, err = capsys.readouterr()
    assert [line.split(":")[1].strip() for line in err.splitlines() if line.startswith("error:")] == ["model.path"]
    assert "model.family: flux1" in out and "estimated file size:" in out and "MiB" in out
    transformer = next(line for line in out.splitlines() if line.strip().startswith("transformer weights"))
    assert "11,901M parameters in fp8" in transformer
    assert "text encoder 2 weights (T5)" in out


def test_validate_names_the_missing_files_of_a_single_flux_transformer(tmp_path, small_data, capsys):
    run_file = _run_file(tmp_path, """\
        model: {quick_pick: custom, family: flux1, path: /models/flux1-dev.safetensors}
        """, small_data)
    assert main(["validate", run_file]) == 2
    err = capsys.readouterr().err
    for key in ("model.clip_l", "model.t5xxl", "model.ae"):
        assert f"error: {key}:" in err and f"set {key} to the matching .safetensors file" in err


def test_validate_refuses_fp8_base_without_mixed_precision(tmp_path, small_data, capsys):
    run_file = _run_file(tmp_path, """\
        model: {quick_pick: flux1-dev}
        training: {mixed_precision: "no", fp8_base: true}
        """, small_data)
    assert main(["validate", run_file]) == 2
    assert "error: training.fp8_base:" in capsys.readouterr().err


def test_validate_refuses_sd_objective_settings_in_a_flux_run(tmp_path, small_data, capsys):
    run_file = _run_file(tmp_path, """\
        model: {quick_pick: flux1-schnell}
        training: {min_snr_gamma: 5, noise_offset: 0.05}
        """, small_data)
    assert main(["validate", run_file]) == 2
    err = capsys.readouterr().err
    assert "error: training.min_snr_gamma: does not apply to FLUX.1" in err
    assert "error: training.noise_offset: does not apply to FLUX.1" in err


def test_validate_warns_that_flux_options_do_nothing_on_an_sd_model(tmp_path, small_data, capsys):
    run_file = _run_file(tmp_path, """\
        model: {quick_pick: sd15}
        flux: {guidance_scale: 1.0, timestep_sampling: shift}
        """, small_data)
    main(["validate", run_file])
    out, err = capsys.readouterr()
    assert "error: flux." not in err  # warnings only: the run still trains
    assert "warning: flux.guidance_scale: does nothing: only for FLUX.1 models (this run is SD 1.x)" in out
    assert "warning: flux.timestep_sampling:" in out


def _flux(**changes) -> dict:
    values = {"model.quick_pick": "flux1-dev", "training.mixed_precision": "bf16", "network.rank": 16,
              "training.gradient_checkpointing": True, "training.max_resolution": [512, 512]}
    values.update(changes)
    return RunConfig.from_values(values).values


def _lines(values) -> dict[str, int]:
    return {line.name: line.bytes for line in estimate_vram(values).lines}


def test_vram_estimate_follows_fp8_base_text_encoder_caching_and_t5_length():
    base = estimate_vram(_flux()).total_bytes
    fp8 = _lines(_flux(**{"training.fp8_base": True}))
    assert fp8["transformer weights"] == pytest.approx(_lines(_flux())["transformer weights"] / 2, rel=0.01)
    assert estimate_vram(_flux(**{"training.fp8_base": True})).total_bytes < base - 10 * 2**30
    cached = _flux(**{"training.cache_text_encoder_outputs": True, "optimizer.text_encoder_lr": 0.0})
    assert estimate_vram(cached).total_bytes < estimate_vram(_flux(**{"optimizer.text_encoder_lr": 0.0})).total_bytes
    short = _lines(_flux(**{"flux.t5xxl_max_token_length": 128}))["activations"]
    assert short < _lines(_flux(**{"flux.t5xxl_max_token_length": 512}))["activations"]


def test_vram_estimate_reads_t5_length_of_each_variant_when_unset():
    # empty t5xxl_max_token_length: [dev] reads 512 T5 tokens, [schnell] 256, as sd-scripts does
    dev = _lines(_flux())["activations"]
    assert dev == _lines(_flux(**{"flux.t5xxl_max_token_length": 512}))["activations"]
    schnell = _lines(_flux(**{"model.quick_pick": "flux1-schnell"}))["activations"]
    assert schnell == _lines(_flux(**{"model.quick_pick": "flux1-schnell", "flux.t5xxl_max_token_length": 256}))["activations"]
    assert schnell < dev


def test_file_size_counts_exactly_the_numbers_a_trained_tiny_flux_file_holds(tmp_path, model_cache):
    torch = pytest.importorskip("torch")
    from peft import LoraConfig
    from diffusers import FluxTransformer2DModel
    from transformers import CLIPTextModel

    from engine.families.flux1.lora_names import default_targets, loras_from_peft, to_kohya
    from engine.families.flux1.tiny import ensure_tiny_flux_model

    folder = ensure_tiny_flux_model(model_cache)
    transformer = FluxTransformer2DModel.from_pretrained(str(folder / "transformer"))
    clip = CLIPTextModel.from_pretrained(str(folder / "text_encoder"))
    transformer.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=default_targets(2, 2)))
    clip.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]))
    state = to_kohya(loras_from_peft(transformer), loras_from_peft(clip))
    stored = sum(math.prod(tensor.shape) for tensor in state.values())
    modules = len({key.split(".")[0] for key in state})

    values = RunConfig.from_values({"model.quick_pick": "builtin-tiny-flux1", "network.rank": 4}).values
    denoiser, encoders, _ = model_configs(values)
    assert count_parameters(denoiser, encoders, rank=4, conv_rank=0, network_type="lora",
                            train_text_encoder=True) == (stored, modules)
    assert torch.is_tensor(next(iter(state.values())))


def test_real_size_flux_file_estimate_is_sd_scripts_fused_layout():
    values = RunConfig.from_values({"model.quick_pick": "flux1-dev", "network.rank": 16, "optimizer.text_encoder_lr": 0.0,
                                    "training.save_precision": "bf16"}).values
    size, note = estimate_file_size(values)
    assert "304 layers" in note  # 19 double blocks × 10 modules + 38 single blocks × 3, as sd-scripts names them
    assert 250e6 < size < 300e6  # block-diagonal fused q/k/v(+mlp) rows make it larger than the unfused count


def test_fp8_base_estimate_holds_only_the_transformer_in_fp8_as_the_engine_does():
    # engine/networks/fp8.py stores the denoiser's linears in fp8; T5 stays in the mixed-precision type
    plain, fp8 = _lines(_flux(**{"optimizer.text_encoder_lr": 0.0})), _lines(
        _flux(**{"optimizer.text_encoder_lr": 0.0, "training.fp8_base": True}))
    assert fp8["text encoder 2 weights (T5)"] == plain["text encoder 2 weights (T5)"] > 9 * 10**9
    assert fp8["transformer weights"] < plain["transformer weights"]
