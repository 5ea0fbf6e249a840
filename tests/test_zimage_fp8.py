"""fp8 base weights on Z-Image keep the timestep and caption embedders (diffusers' skip patterns) in
the compute dtype, while every other frozen linear of the transformer is stored in float8."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn

from engine.config import RunConfig
from engine.families.load import load_base_model
from engine.families.zimage.objective import ZImageConditioning, predict_velocity
from engine.train.memory_savers import SaverState, store_frozen


def test_fp8_base_leaves_the_zimage_embedders_in_the_compute_dtype(small_data, tmp_path):
    base = load_base_model("builtin-tiny-zimage")
    base.unet.requires_grad_(False)
    base.unet.to(torch.bfloat16)
    cfg = RunConfig.from_values({
        "model.quick_pick": "builtin-tiny-zimage", "folders.images": str(small_data),
        "folders.output": str(tmp_path / "out"), "training.fp8_base": True, "training.mixed_precision": "bf16",
    })
    store_frozen(SimpleNamespace(base=base), cfg, torch.device("cpu"), torch.bfloat16, SaverState())
    dtypes = {name: module.weight.dtype for name, module in base.unet.named_modules() if type(module) is nn.Linear}
    kept = {name for name in dtypes if name.startswith(("t_embedder.", "cap_embedder."))}
    assert len(kept) == 3, kept  # t_embedder.mlp.0, t_embedder.mlp.2, cap_embedder.1
    assert {dtypes[name] for name in kept} == {torch.bfloat16}
    assert {dtype for name, dtype in dtypes.items() if name not in kept} == {torch.float8_e4m3fn}

    # the mixed model still predicts: fp8 layers widen to bf16 and meet the bf16 embedders' outputs
    generator = torch.Generator().manual_seed(0)
    noisy = torch.randn(1, 16, 8, 8, generator=generator)
    cond = ZImageConditioning(hidden=torch.randn(1, 4, 32, generator=generator), mask=torch.ones(1, 4, dtype=torch.bool))
    velocity = predict_velocity(base.unet, noisy, torch.tensor([0.5]), cond, torch.bfloat16)
    assert velocity.shape == noisy.shape and torch.isfinite(velocity).all()
