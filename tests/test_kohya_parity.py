"""sd-scripts options honoured the way sd-scripts applies them (issue 17), and YAML read as Kohya users write it."""

from __future__ import annotations

import textwrap

import pytest

from engine.config import dump_run_yaml, load_run_file
from engine.problems import ProblemError


def load_text(tmp_path, text: str):
    path = tmp_path / "run.yaml"
    path.write_text(textwrap.dedent(text))
    return load_run_file(path)


def errors_of(tmp_path, text: str) -> list[str]:
    with pytest.raises(ProblemError) as info:
        load_text(tmp_path, text)
    return [f"{p.field}: {p.message}" for p in info.value.errors]


# --- YAML booleans in choice settings ---------------------------------------------------------

def test_mixed_precision_no_in_yaml_means_the_choice_no_not_false(tmp_path):
    cfg, _ = load_text(tmp_path, """
        folders: {images: imgs}
        training:
          mixed_precision: no
    """)
    assert cfg.training.mixed_precision == "no"
    again, _ = load_text(tmp_path, dump_run_yaml(cfg))  # written back and read again: still the choice
    assert again.training.mixed_precision == "no"


def test_false_for_a_choice_spelled_like_a_boolean_is_that_choice_and_other_words_still_fail(tmp_path):
    cfg, _ = load_text(tmp_path, "folders: {images: imgs}\ntraining: {mixed_precision: false}\n")
    assert cfg.training.mixed_precision == "no"
    assert any("save_precision" in e for e in errors_of(tmp_path, "folders: {images: imgs}\ntraining: {save_precision: no}\n"))


def test_bool_settings_still_accept_yes_no_on_off_in_yaml(tmp_path):
    cfg, _ = load_text(tmp_path, "folders: {images: imgs}\ntraining: {cache_latents: no, gradient_checkpointing: on}\n")
    assert cfg.training.cache_latents is False and cfg.training.gradient_checkpointing is True
    assert any("cache_latents" in e for e in errors_of(tmp_path, "folders: {images: imgs}\ntraining: {cache_latents: maybe}\n"))
