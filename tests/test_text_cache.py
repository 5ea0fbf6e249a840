"""training.cache_text_encoder_outputs on an SD family: the same implementation as FLUX.1's, over SD's
conditioning (hidden states), with the disk cache reused across runs and the encoder let go."""

from __future__ import annotations

import pytest

from tests.helpers import small_run, write_small_concepts

pytestmark = pytest.mark.slow


def _run(root, **changes):
    result, events = small_run(root, "builtin-tiny-sd1", **changes)
    return result, [e["loss"] for e in events if e["type"] == "step"], [
        (e["reused"], e["encoded"]) for e in events if e["type"] == "log" and "text encoder cache" in e["message"]]


def test_sd_text_encoder_outputs_are_cached_to_disk_reused_and_change_no_loss(tmp_path):
    write_small_concepts(tmp_path / "images")
    _, plain, none = _run(tmp_path)
    cached = dict(training__cache_text_encoder_outputs=True, training__cache_text_encoder_outputs_to_disk=True)
    first, first_losses, first_log = _run(tmp_path, **cached)
    _, second_losses, second_log = _run(tmp_path, **cached)
    assert none == [] and first_log == [(0, 2)] and second_log == [(2, 0)]
    assert first.trainer.model.base.text_encoders == []
    assert plain == first_losses == second_losses
    _, _, skipped_log = _run(tmp_path, training__clip_skip=2, **cached)  # other states: encoded again
    assert skipped_log == [(0, 2)]
