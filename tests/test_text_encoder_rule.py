""""Is the text encoder trained?" has one answer (engine/config/text_encoder.py): an empty
text_encoder_lr means the main learning rate, for the trainer, the plan, the rules, the VRAM
estimate and fixes, and the file-size estimate alike."""

from __future__ import annotations

import pytest

from engine.config import RunConfig
from engine.config.rules import check_rules
from engine.config.text_encoder import text_encoder_trained
from engine.lora_size import estimate_file_size
from engine.plan import text_encoder_stop_step

CASES = [  # (learning_rate, text_encoder_lr, trained)
    (1e-4, None, True), (0.0, None, False), (1e-4, 0.0, False), (0.0, 5e-5, True),
]


def _values(lr, te_lr, **more):
    values = {"model.quick_pick": "sd15", "network.rank": 8, "optimizer.learning_rate": lr,
              "optimizer.unet_lr": 1e-4, "optimizer.text_encoder_lr": te_lr,
              "training.stop_text_encoder_percent": 50, **more}
    return RunConfig.from_values(values)


@pytest.mark.parametrize("lr, te_lr, trained", CASES)
def test_every_reader_gives_the_same_answer(lr, te_lr, trained):
    cfg = _values(lr, te_lr)
    assert text_encoder_trained(cfg.values) is trained and cfg.trains_text_encoder is trained
    assert (text_encoder_stop_step(cfg, 100) is not None) is trained
    warned = any(p.field == "training.stop_text_encoder_percent" for p in check_rules(cfg.values))
    assert warned is not trained
    # the file-size estimate counts text-encoder layers exactly when they are trained
    unet_only = estimate_file_size(_values(lr, 0.0).values)[0]
    assert (estimate_file_size(cfg.values)[0] > unet_only) is trained

