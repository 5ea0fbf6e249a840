"""training.cache_text_encoder_outputs_to_disk on Z-Image: Qwen3's states and mask are written once and
read back into Z-Image's own conditioning by the next run (no caption encoded), with the same losses."""

from __future__ import annotations

import pytest

from engine.families.registry import get
from engine.families.zimage.objective import ZImageConditioning
from tests.helpers import small_run, write_small_concepts


def test_each_family_names_the_conditioning_its_encoder_returns():
    assert get("zimage").conditioning_class() is ZImageConditioning
    assert get("flux1").conditioning_class().__name__ == "FluxConditioning"
    assert get("sd1").conditioning_class().__name__ == "Conditioning"  # the name SD cache files carry


@pytest.mark.slow
def test_a_second_zimage_run_reads_the_text_cache_and_trains_the_same(tmp_path):
    write_small_concepts(tmp_path / "images")

    def run():
        _, events = small_run(tmp_path, "builtin-tiny-zimage", training__epochs=2,
                              training__cache_text_encoder_outputs=True, training__cache_text_encoder_outputs_to_disk=True)
        log = [(e["reused"], e["encoded"]) for e in events if e["type"] == "log" and "text encoder cache" in e["message"]]
        return log, [e["loss"] for e in events if e["type"] == "step"]

    first_log, first_losses = run()
    second_log, second_losses = run()
    assert first_log == [(0, 2)] and second_log == [(2, 0)]
    assert first_losses and first_losses == second_losses
