"""Prompt options have one parser (engine/config/prompt_options.py): `validate`, the wizard's
prompt box and the sampler give the same verdict on every line, and the sampler never drops an
option silently."""

from __future__ import annotations

import pytest

from engine.problems import ProblemError
from engine.train.sampling import resolve_prompts
from tests.helpers import load_text
from tui_lora.prompt_lines import parse_prompt_text

LINES = {
    "a cat --x 3 --d -1": False,  # an unknown option and a negative seed
    "a cat --d 1.5": False,
    "a cat --l seven": False,
    "--n blurry": False,  # no prompt text
    "a cat --n blurry --d 42 --s 20 --l 7.5 --w 512 --h 384": True,
    "a plain cat": True,
}


def _validate_ok(tmp_path, line: str) -> bool:
    quoted = line.replace("'", "''")
    try:
        load_text(tmp_path, f"folders: {{images: {tmp_path}}}\nsampling:\n  prompts: ['{quoted}']\n")
    except ProblemError as exc:
        assert any(p.field.startswith("sampling.prompts") for p in exc.errors), exc.problems
        return False
    return True


def _sampler_ok(line: str) -> bool:
    try:
        resolve_prompts([line], width=64, height=64, seed=1)
    except ProblemError:
        return False
    return True


@pytest.mark.parametrize("line", sorted(LINES))
def test_validate_the_wizard_and_the_sampler_agree(tmp_path, line):
    wizard_ok = not parse_prompt_text(line)[1]
    assert _validate_ok(tmp_path, line) == wizard_ok == _sampler_ok(line) == LINES[line]


def test_what_passes_is_sampled_with_every_option():
    (prompt,) = resolve_prompts(["a cat --n blurry --d 42 --s 20 --l 7.5 --w 512 --h 384"], width=64, height=64, seed=1)
    assert (prompt.prompt, prompt.negative, prompt.seed, prompt.steps, prompt.cfg, prompt.width, prompt.height) == (
        "a cat", "blurry", 42, 20, 7.5, 512, 384)

