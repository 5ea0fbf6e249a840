"""The memory savers train the tiny models on the CPU: each run's losses against the run without it,
on the same draws (exactly for block swapping and offloaded checkpoints; within a stated tolerance
for 16-bit and 4/8-bit storage), and what each saver did to the model."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import replace
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from tests.helpers import small_run, write_small_concepts  # noqa: E402

pytestmark = pytest.mark.slow


def _losses(events):
    return [e["loss"] for e in events if e["type"] == "step"]


def _saver_logs(events):
    return [e["message"] for e in events if e["type"] == "log" and e["message"].startswith("memory savers")]


@pytest.fixture
def data(tmp_path):
    write_small_concepts(tmp_path / "images")
    return tmp_path


@pytest.fixture
def fresh_accelerate_state():
    """accelerate keeps one mixed-precision choice per process; a bf16 run needs its own."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def _run(root, pick, **changes):
    return small_run(root, pick, **{"training__epochs": 2, **changes})


# -- block swapping -----------------------------------------------------------------------------

class TakingTransfer:
    """A transfer that really takes a block's weights away: an offloaded weight is an empty tensor,
    so a block that ran while off would fail. Counts every move."""

    def __init__(self):
        self.device = self.offload = torch.device("cpu")
        self.kept: dict[int, torch.Tensor] = {}
        self.moves = {"in": 0, "out": 0}

    def _away(self, params):
        for param in params:
            if id(param) not in self.kept:
                self.kept[id(param)] = param.data
                param.data = torch.empty(0, dtype=param.dtype)
        self.moves["out"] += 1

    def _back(self, params):
        for param in params:
            if id(param) in self.kept:
                param.data = self.kept.pop(id(param))
        self.moves["in"] += 1

    def to_device(self, params):
        self._back(params)
        return "copy"

    def to_offload(self, params):
        self._away(params)

    def wait(self, handle):
        assert handle == "copy"

    def place(self, params, on_device):
        (self._back if on_device else self._away)(params)


@pytest.fixture(scope="module")
def swap_flux(tmp_path_factory):
    """A small FLUX.1 folder with 4 double and 8 single blocks (the built-in tiny one has too few to swap)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("gpu_check_for_swap", path)
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    from engine.vram.parts import reference_parts

    parts = reference_parts("flux1")
    denoiser = dict(parts.denoiser, num_layers=4, num_single_layers=8, attention_head_dim=16, num_attention_heads=2,
                    joint_attention_dim=32, pooled_projection_dim=32, axes_dims_rope=[4, 6, 6])
    clip = dict(parts.text_encoders[0], hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                num_attention_heads=2, projection_dim=32)
    t5 = dict(parts.text_encoders[1], d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4)
    vae = dict(parts.vae, block_out_channels=[32, 32], layers_per_block=1, norm_num_groups=16,
               down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2)
    folder = tmp_path_factory.mktemp("swapflux") / "model"
    torch.manual_seed(0)
    small = replace(parts, denoiser=denoiser, text_encoders=[clip, t5], vae=vae)
    gpu_check.save_flux_folder(gpu_check.flux_pipeline(small, "cpu", torch.float32), folder)
    return folder


def _swap_run(root, folder, **changes):
    return _run(root, "custom", model__path=str(folder), model__family="flux1", network__rank=2,
                optimizer__learning_rate=1e-2, buckets__step=32, buckets__min_resolution=32, **changes)


@pytest.mark.parametrize("checkpointing", [False, True])
def test_block_swap_trains_flux_with_the_same_losses_while_swapped_weights_are_really_away(
        data, swap_flux, monkeypatch, checkpointing):
    from engine.families import REGISTRY
    from engine.train import block_swap

    _, plain = _swap_run(data, swap_flux, training__gradient_checkpointing=checkpointing)
    transfer = TakingTransfer()
    monkeypatch.setattr(block_swap, "make_transfer", lambda device: transfer)
    result, events = _swap_run(data, swap_flux, training__blocks_to_swap=3,
                               training__gradient_checkpointing=checkpointing)
    assert _losses(events) == _losses(plain)  # exactly: every block had its weights whenever it ran
    swap = result.trainer.model.savers.swap
    assert REGISTRY["flux1"].swap_split(3) == {"transformer_blocks": 1, "single_transformer_blocks": 4}
    doubles, singles = swap.swaps["transformer_blocks"], swap.swaps["single_transformer_blocks"]
    assert (doubles.count, singles.count) == (1, 4)
    steps = len(_losses(events))
    assert transfer.moves["out"] >= steps * (2 * 1 + 2 * 4)  # each swapped block left in forward and backward
    for group in (doubles, singles):
        assert not any(kind == "late" for kind, _ in group.log)  # every block was brought in ahead of its use
    assert any("swapping 1 of 4 transformer_blocks, 4 of 8 single_transformer_blocks" in m for m in _saver_logs(events))
    # the LoRA's own parameters never moved: the optimizer kept updating them in place
    assert all(p.numel() for p in result.trainer.model.unet_parameters())
    # what the engine kept off the device is what the estimate takes off (fp32 run: 4 bytes a weight)
    from engine.vram.savers import swapped_parameters

    off, _ = swapped_parameters(dict(result.trainer.model.base.unet.config), {"transformer_blocks": 1,
                                                                             "single_transformer_blocks": 4})
    assert result.trainer.model.savers.swapped_bytes == 4 * off


def test_block_swap_schedule_slides_down_in_forward_and_back_up_in_backward():
    from engine.train.block_swap import BlockSwap

    blocks = [torch.nn.Linear(4, 4) for _ in range(5)]
    for block in blocks:
        block.weight.requires_grad_(False)
    lora = torch.nn.Parameter(torch.zeros(4))
    transfer = TakingTransfer()
    swap = BlockSwap(blocks, 2, transfer)
    swap.reset()
    assert swap.on_device() == [True, True, True, False, False]
    swap.log.clear()
    x = torch.ones(1, 4)
    for block in blocks:
        x = block(x + lora)
    assert swap.on_device() == [False, False, True, True, True]
    x.sum().backward()
    assert swap.on_device() == [True, True, True, False, False]
    assert swap.log == [("out", 0), ("in", 3), ("out", 1), ("in", 4),
                        ("out", 4), ("in", 1), ("out", 3), ("in", 0)]


def test_block_swap_is_refused_for_sd_and_above_the_family_limit(data, swap_flux):
    from engine.config import RunConfig, validate_values

    _, problems = validate_values({"model.quick_pick": "builtin-tiny-sdxl", "folders.images": "x",
                                   "training.blocks_to_swap": 4})
    assert any(p.field == "training.blocks_to_swap" and "SD UNets" in p.message for p in problems if p.is_error)
    from engine.train.entry import run_config

    cfg = RunConfig.from_values({"model.quick_pick": "custom", "model.path": str(swap_flux), "model.family": "flux1",
                                 "folders.images": str(data / "images"), "folders.output": str(data / "o"),
                                 "training.blocks_to_swap": 6, "buckets.step": 32, "training.max_resolution": [64, 64],
                                 "buckets.min_resolution": 32})
    result = run_config(cfg)
    assert result.status == "failed" and "at most 5 blocks" in result.message


# -- offloaded checkpoints ----------------------------------------------------------------------

def test_cpu_offload_checkpointing_parks_the_block_inputs_and_changes_no_loss(data):
    from engine.vram import estimate_vram

    _, plain = _run(data, "builtin-tiny-flux1", training__gradient_checkpointing=True)
    result, events = _run(data, "builtin-tiny-flux1", training__gradient_checkpointing=True,
                          training__cpu_offload_checkpointing=True)
    assert _losses(events) == _losses(plain)
    offload = result.trainer.model.savers.offload
    config = result.trainer.model.base.unet.config
    d = config.num_attention_heads * config.attention_head_dim
    tokens = 2 * ((64 // 16) ** 2 + 512)  # batch 2 × (image tokens at 64 px + T5 tokens)
    block_inputs = (config.num_layers + config.num_single_layers) * tokens * d * 4  # fp32 run
    assert block_inputs <= offload.packed_bytes <= 3 * block_inputs  # plus rotary tables and time embeddings
    values = dict(result.trainer.cfg.values)
    on = estimate_vram(values).lines
    off = estimate_vram({**values, "training.cpu_offload_checkpointing": False}).lines
    kept = {line.name: line.bytes for line in off}["activations"] - {line.name: line.bytes for line in on}["activations"]
    assert kept > 0


# -- 16-bit training state ----------------------------------------------------------------------

@pytest.mark.parametrize("pick", ["builtin-tiny-flux1", "builtin-tiny-sdxl"])
def test_full_bf16_holds_lora_gradients_and_optimizer_state_in_bf16_and_tracks_the_bf16_run(
        data, fresh_accelerate_state, pick):
    from accelerate.state import AcceleratorState

    _, mixed = _run(data, pick, training__mixed_precision="bf16")
    AcceleratorState._reset_state(reset_partial_state=True)
    result, events = _run(data, pick, training__mixed_precision="bf16", training__full_bf16=True)
    params = result.trainer.model.unet_parameters()
    assert params and all(p.dtype == torch.bfloat16 for p in params)
    states = [s for s in result.trainer.optimizer.state.values() if "exp_avg" in s]
    assert states and all(s["exp_avg"].dtype == torch.bfloat16 for s in states)
    # tolerance: bf16 keeps 8 bits of mantissa, so updates of 1e-4 on small weights round: 2 % of the loss
    assert _losses(events) == pytest.approx(_losses(mixed), rel=2e-2)
    assert any("LoRA held in 16 bits" in m for m in _saver_logs(events))
    saved = Path(result.trainer.cfg.folders.output) / "lora.safetensors"
    from safetensors import safe_open

    with safe_open(str(saved), "pt") as handle:
        assert handle.metadata()["ss_full_bf16"] == "True"


def test_full_fp16_lets_the_grad_scaler_unscale_fp16_gradients():
    from engine.train.full_precision import allow_fp16_gradients

    param = torch.nn.Parameter(torch.ones(4, dtype=torch.float16))
    optimizer = torch.optim.SGD([param], lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)  # 2 × 1024 fits fp16
    scaler.scale((param.float() * 2).sum()).backward()
    with pytest.raises(ValueError, match="FP16"):
        scaler.unscale_(optimizer)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)  # 2 × 1024 fits fp16
    assert allow_fp16_gradients(scaler)
    optimizer.zero_grad()
    scaler.scale((param.float() * 2).sum()).backward()
    scaler.step(optimizer)
    assert torch.allclose(param.float(), torch.full((4,), 0.8), atol=1e-3)  # unscaled: 1 − 0.1 × 2


# -- quantized frozen weights -------------------------------------------------------------------

@pytest.mark.parametrize("pick", ["builtin-tiny-flux1", "builtin-tiny-sdxl"])
@pytest.mark.parametrize("kind,tolerance", [("int8", 5e-3), ("nf4", 5e-2)])
def test_quantized_base_stores_frozen_linears_in_bitsandbytes_layers_and_tracks_the_plain_run(
        data, pick, kind, tolerance):
    import bitsandbytes as bnb

    from engine.networks.quantize import stored_bytes

    plain_result, plain = _run(data, pick)
    result, events = _run(data, pick, training__base_quantization=kind)
    layer = bnb.nn.Linear4bit if kind == "nf4" else bnb.nn.Linear8bitLt
    unet = result.trainer.model.base.unet
    turned = [m for m in unet.modules() if isinstance(m, layer)]
    plain_linears = [m for m in plain_result.trainer.model.base.unet.modules()
                     if type(m) is torch.nn.Linear and not m.weight.requires_grad]
    assert len(turned) == len(plain_linears) > 0
    assert not any(type(m) is torch.nn.Linear and not m.weight.requires_grad for m in unet.modules())
    # stated tolerance: int8 rounds each weight to 1/127 of its row's largest, nf4 to one of 16 levels
    assert _losses(events) == pytest.approx(_losses(plain), rel=tolerance)
    weights = sum(m.weight.numel() for m in plain_linears)
    saved = stored_bytes(plain_result.trainer.model.base.unet) - stored_bytes(unet)
    # fp32 before; int8 after: 1 byte a weight + an fp32 scale per row; nf4: half a byte + an 8-bit scale per
    # 64 weights + (double quantization) a 1 KiB table per layer, which only matters at this tiny size
    rows = sum(m.weight.shape[0] for m in plain_linears)
    expected = {"int8": weights * 3 - 4 * rows, "nf4": weights * (3.5 - 1 / 64) - 1092 * len(plain_linears)}[kind]
    assert saved == pytest.approx(expected, rel=0.15)  # the trained model also holds the adapters' wrappers


def test_quantize_counts_exactly_what_nf4_and_int8_store_on_the_bare_tiny_flux():
    from engine.families.load import load_base_model
    from engine.networks.quantize import quantize_frozen_linears, stored_bytes

    for kind in ("nf4", "int8"):
        unet = load_base_model("builtin-tiny-flux1").unet.requires_grad_(False)
        linears = [m for m in unet.modules() if type(m) is torch.nn.Linear]
        weights, rows = sum(m.weight.numel() for m in linears), sum(m.weight.shape[0] for m in linears)
        before = stored_bytes(unet)
        assert quantize_frozen_linears(unet, kind, torch.float32, torch.device("cpu")) == len(linears)
        expected = {"int8": weights * 3 - 4 * rows, "nf4": weights * (3.5 - 1 / 64) - 1092 * len(linears)}[kind]
        assert before - stored_bytes(unet) == expected


def test_text_encoders_in_int8_and_fp8_train_flux(data, fresh_accelerate_state):
    import bitsandbytes as bnb
    from accelerate.state import AcceleratorState

    _, plain = _run(data, "builtin-tiny-flux1")
    result, events = _run(data, "builtin-tiny-flux1", training__text_encoder_quantization="int8")
    t5 = result.trainer.model.base.text_encoders[1]
    assert any(isinstance(m, bnb.nn.Linear8bitLt) for m in t5.modules())
    assert _losses(events) == pytest.approx(_losses(plain), rel=5e-3)
    AcceleratorState._reset_state(reset_partial_state=True)
    result, events = _run(data, "builtin-tiny-flux1", training__mixed_precision="bf16",
                          training__text_encoder_quantization="fp8")
    t5 = result.trainer.model.base.text_encoders[1]
    frozen = [m for m in t5.modules() if type(m) is torch.nn.Linear]
    assert frozen and all(m.weight.dtype == torch.float8_e4m3fn for m in frozen)


# -- training a subset of FLUX.1 blocks ---------------------------------------------------------

def test_flux_train_blocks_single_adapts_and_saves_only_single_blocks(data):
    from safetensors import safe_open

    result, events = _run(data, "builtin-tiny-flux1", flux__train_blocks="single")
    adapted = result.trainer.model.adapted["unet"]
    assert adapted and all(path.startswith("single_transformer_blocks.") for path in adapted)
    with safe_open(str(Path(result.trainer.cfg.folders.output) / "lora.safetensors"), "pt") as handle:
        keys = list(handle.keys())
        metadata = handle.metadata()
    assert keys and all(k.startswith("lora_unet_single_blocks_") for k in keys)
    assert json.loads(metadata["ss_network_args"])["train_blocks"] == "single"
    from engine.vram.lora_params import flux_layers  # the estimate counts the same numbers

    rank = result.trainer.cfg.network.rank
    layers = flux_layers(dict(result.trainer.model.base.unet.config), "single")
    assert sum(p.numel() for p in result.trainer.model.unet_parameters()) == \
        sum(rank * (fan_in + fan_out) for fan_in, fan_out, _, _ in layers)


def test_train_blocks_is_refused_once_auto_finds_an_sd_model(data):
    from engine.config import RunConfig
    from engine.train.entry import run_config

    cfg = RunConfig.from_values({"model.quick_pick": "custom", "model.path": "builtin-tiny-sd1", "model.family": "auto",
                                 "folders.images": str(data / "images"), "folders.output": str(data / "o"),
                                 "flux.train_blocks": "single", "training.max_resolution": [64, 64],
                                 "buckets.min_resolution": 32, "buckets.step": 32})
    result = run_config(cfg)
    assert result.status == "failed" and "no separate block groups" in result.message
