"""Whether a run trains the text encoder, and at what rate: one answer for every reader (the
trainer, the plan, the rules, the VRAM and file-size estimates, the VRAM fixes).

`optimizer.text_encoder_lr` left empty (None) means "the main learning rate", as in sd-scripts;
the text encoder is trained when that resolved rate is not 0. Torch-free.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def text_encoder_lr(values: Mapping[str, Any]) -> float:
    lr = values.get("optimizer.text_encoder_lr")
    return values.get("optimizer.learning_rate") if lr is None else lr


def text_encoder_trained(values: Mapping[str, Any]) -> bool:
    return text_encoder_lr(values) not in (0, None)
