"""The estimate's memory-saver terms: each moves the estimate the right way by the bytes it moves, and
`validate` finds settings that fit the common cards for FLUX.1 [dev]. Torch-free."""

from __future__ import annotations

import subprocess
import sys

import pytest

from engine.config import SETTINGS, RunConfig, validate_values
from engine.vram import GIB, estimate_vram, plan_to_fit
from engine.vram.counts import denoiser_parameters, text_encoder_parameters
from engine.vram.parts import reference_parts
from engine.vram.savers import NF4_BYTES, flux_block_parameters, swapped_parameters, text_linear_weights

FLUX = reference_parts("flux1")
# sd-scripts' documented 12 GB FLUX.1 setup (docs/flux_train_network.md, "12GB VRAM")
TWELVE_GB = {"model.quick_pick": "flux1-dev", "folders.images": "/data", "training.mixed_precision": "bf16",
             "optimizer.name": "AdamW8bit", "training.fp8_base": True, "training.cache_text_encoder_outputs": True,
             "optimizer.text_encoder_lr": 0.0, "training.max_resolution": [1024, 1024], "training.batch_size": 1,
             "training.gradient_checkpointing": True, "training.blocks_to_swap": 16}


def _values(**changes):
    return RunConfig.from_values({**TWELVE_GB, **{k.replace("__", "."): v for k, v in changes.items()}}).values


def _lines(values):
    return {line.name: line.bytes for line in estimate_vram(values).lines}


def test_sd_scripts_12_gb_flux_setup_fits_12_gib_and_needs_the_swap():
    values = _values()
    assert not [p for p in validate_values(values)[1] if p.is_error]
    swapped = estimate_vram(values).total_gib
    assert swapped <= 12
    assert estimate_vram(_values(training__blocks_to_swap=0)).total_gib >= swapped + 3


def test_nf4_base_at_512_px_fits_10_gib():
    values = _values(training__blocks_to_swap=0, training__fp8_base=False, training__base_quantization="nf4",
                     training__max_resolution=[512, 512])
    assert estimate_vram(values).total_gib <= 10


def test_sample_prompts_keep_the_cached_text_encoders_on_the_gpu():
    quiet = _values(training__blocks_to_swap=0)
    sampling = _values(training__blocks_to_swap=0, sampling__prompts=["a photo of sks"])
    t5 = text_encoder_parameters(FLUX.text_encoders[1])
    assert _lines(quiet)["text encoder 2 weights (T5)"] == 0
    assert _lines(sampling)["text encoder 2 weights (T5)"] == 2 * t5  # bf16, as text_cache.py keeps it
    assert estimate_vram(sampling).total_gib >= 25  # the "about 26", no longer 16.3


def test_block_swap_takes_the_swapped_blocks_weights_off_and_one_block_per_list_in_flight():
    per = flux_block_parameters(FLUX.denoiser)
    assert per["transformer_blocks"] + 0 > 2 * per["single_transformer_blocks"] * 0.8  # a double ≈ 2.4 singles
    off, flight = swapped_parameters(FLUX.denoiser, {"transformer_blocks": 8, "single_transformer_blocks": 16})
    assert off == 8 * per["transformer_blocks"] + 16 * per["single_transformer_blocks"]
    before, after = _lines(_values(training__blocks_to_swap=0)), _lines(_values())
    assert before["transformer weights"] - after["transformer weights"] == off  # fp8: a byte a weight
    assert after["swapped blocks in flight"] == flight == per["transformer_blocks"] + per["single_transformer_blocks"]


def test_full_bf16_halves_the_lora_its_gradients_and_adamw_state():
    values = _values(training__blocks_to_swap=0, optimizer__name="AdamW")
    full = _lines({**values, "training.full_bf16": True})
    plain = _lines(values)
    for name in ("LoRA parameters", "LoRA gradients"):
        assert full[name] * 2 == plain[name]
    assert full["optimizer state"] == pytest.approx(plain["optimizer state"] / 2, rel=1e-3)
    eight = _values(training__blocks_to_swap=0)  # AdamW8bit keeps 8-bit moments whatever the parameter is
    assert _lines({**eight, "training.full_bf16": True})["optimizer state"] == _lines(eight)["optimizer state"]


def test_quantized_bases_store_a_byte_or_half_a_byte_a_weight():
    count = denoiser_parameters(FLUX.denoiser)
    base = _values(training__blocks_to_swap=0, training__fp8_base=False)
    assert _lines(base)["transformer weights"] == 2 * count
    assert _lines({**base, "training.base_quantization": "fp8"})["transformer weights"] == count
    assert _lines({**base, "training.base_quantization": "nf4"})["transformer weights"] == int(count * NF4_BYTES)
    assert _lines({**base, "training.base_quantization": "int8"})["transformer weights"] == pytest.approx(count * (1 + 4 / 3072))  # + an fp32 scale per row


def test_text_encoders_in_8_bits_halve_their_linear_layers():
    values = _values(training__blocks_to_swap=0, training__cache_text_encoder_outputs=False)
    t5 = FLUX.text_encoders[1]
    total, linears = text_encoder_parameters(t5), text_linear_weights(t5)
    plain = _lines(values)["text encoder 2 weights (T5)"]
    fp8 = _lines({**values, "training.text_encoder_quantization": "fp8"})["text encoder 2 weights (T5)"]
    assert plain - fp8 == linears and linears > 0.95 * total


def test_training_single_blocks_only_shrinks_the_lora_to_the_single_blocks_share():
    from engine.vram.lora_params import flux_layers

    values = _values()
    single = _lines({**values, "flux.train_blocks": "single"})["LoRA parameters"]
    rank = values["network.rank"]
    numbers = sum(rank * (fan_in + fan_out) for fan_in, fan_out, _, _ in flux_layers(FLUX.denoiser, "single"))
    assert single == 4 * numbers
    assert single < _lines(values)["LoRA parameters"]


def test_offloaded_checkpoints_leave_two_block_inputs_of_the_kept_activations():
    values = _values(training__blocks_to_swap=0)
    kept = _lines(values)["activations"]
    offloaded = _lines({**values, "training.cpu_offload_checkpointing": True})["activations"]
    units = FLUX.denoiser["num_layers"] + FLUX.denoiser["num_single_layers"]
    assert offloaded == int(kept * 2 / units)


@pytest.mark.parametrize("gib", [8, 12, 16, 24, 48])
def test_plan_for_common_cards_picks_valid_settings_that_fit_flux_dev(gib):
    values = RunConfig.from_values({"model.quick_pick": "flux1-dev", "folders.images": "/data",
                                    "hardware.vram_gb": gib}).values
    changes, fixes = plan_to_fit(values, gib * GIB, set(SETTINGS.keys()))
    planned = {**values, **changes}
    assert estimate_vram(planned).total_bytes <= gib * GIB
    checked, problems = validate_values(planned)
    assert not [p for p in problems if p.is_error], problems
    assert fixes and len(fixes) <= 4


def test_validate_prints_a_plan_for_a_12_gib_card(tmp_path):
    from engine.config import save_run_file

    images = tmp_path / "img" / "1_x"
    images.mkdir(parents=True)
    cfg = RunConfig.from_values({"model.quick_pick": "flux1-dev", "folders.images": str(tmp_path / "img"),
                                 "hardware.vram_gb": 12})
    run_file = save_run_file(cfg, tmp_path / "run.yaml")
    done = subprocess.run([sys.executable, "-m", "tui_lora.cli", "validate", str(run_file)], capture_output=True,
                          text=True)
    out = done.stdout
    assert "does not fit this 12 GiB GPU" in out, out + done.stderr
    assert "ways to fit, cheapest first" in out and "to fit 12 GiB, set (estimate" in out
    planned = float(out.split("to fit 12 GiB, set (estimate ")[1].split()[0])
    assert planned <= 12
