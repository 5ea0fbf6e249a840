"""Every LoRA preset shipped with the Kohya SS GUI imports, and only what tui-lora cannot do is named (issue 17)."""

from __future__ import annotations

import pytest

from engine.config.kohya_import import convert_kohya_settings
from engine.problems import ProblemError

from .kohya_gui_presets import PRESETS, REFUSED, preset

# Words of the importer's "this was dropped" notes (as opposed to notes on how a value was converted).
UNSUPPORTED = ("has no counterpart", "is not a Kohya LoRA setting tui-lora knows")
# What the GUI's presets still ask for that tui-lora does not do, and why (kept in the closing note):
# Every preset imports whole (LyCORIS train_norm is network.train_norm).
REMAINING: set[tuple[str, str]] = set()


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_gui_preset_imports_with_only_the_known_gaps_named(name):
    result = convert_kohya_settings(preset(name), source=name)
    dropped = {(name, note.field) for note in result.notes if any(words in note.message for words in UNSUPPORTED)}
    assert dropped == {gap for gap in REMAINING if gap[0] == name}


def _config(name):
    return convert_kohya_settings(preset(name)).config


def test_gui_presets_keep_their_lycoris_loader_and_scheduler_options():
    one_image = _config("SDXL - 1 image LoRA v1.0")
    assert one_image.network.type == "lokr" and one_image.network.lokr_full_matrix and one_image.network.lokr_factor == 6
    assert (one_image.optimizer.scheduler_type, one_image.optimizer.scheduler_args) == (
        "CosineAnnealingLR", ["T_max=1000", "eta_min=0e-0"])
    lokr = _config("sd15 - LoKr v1.1").network
    assert lokr.lokr_decompose_both and lokr.rank_dropout_scale and lokr.use_tucker  # use_cp is LoKr's Tucker switch
    assert lokr.train_norm  # LyCORIS train_norm: the LoKr trains its blocks' norm layers too
    assert _config("SDXL - LoKR v1.0").network.use_tucker
    kudou = _config("SDXL - LoRA kudou-reira prodigy v4.0")
    assert kudou.optimizer.scheduler_type == "CosineAnnealingLR" and kudou.optimizer.text_encoder_lr == 0
    workers = _config("dadaptation").training
    assert workers.max_data_loader_n_workers == 1 and workers.persistent_data_loader_workers
    bleaf = _config("sdxl-loha-AdamW8bit-kBlueLeafv1")
    assert bleaf.logging.log_prefix == "xl-loha" and bleaf.buckets.min_resolution == 512


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_presets_of_network_types_tui_lora_refuses_say_why(name):
    with pytest.raises(ProblemError) as refused:
        convert_kohya_settings({**preset("SDXL - LoRA AI_characters standard v1.1"), **REFUSED[name]})
    assert {p.field for p in refused.value.problems} & {"LoRA_type"}
