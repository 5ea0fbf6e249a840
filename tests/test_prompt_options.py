"""One reader of Kohya's sample-prompt options, shared by the wizard, the importer and the sampler."""

from __future__ import annotations

from engine.config.kohya_import import convert_kohya_settings
from engine.config.prompt_options import parse_prompt_line
from tui_lora.prompt_lines import parse_prompt_text


def test_options_become_a_prompt_mapping_and_a_line_without_options_stays_text():
    assert parse_prompt_line("a cat --n dog, blurry --D 42 --s 20 --l 7.5 --w 64 --h 96", 1) == (
        {"prompt": "a cat", "negative": "dog, blurry", "seed": 42, "steps": 20, "cfg": 7.5, "width": 64, "height": 96}, [])
    assert parse_prompt_line("  plain words -- and dashes  ", 3) == ("plain words -- and dashes", [])


def test_unreadable_options_are_dropped_and_described_with_the_line_number():
    entry, dropped = parse_prompt_line("a fox --q 7 --s 2.5 --d -1 --w 64", 4)
    assert entry == {"prompt": "a fox", "width": 64}
    assert dropped == ["line 4: unknown option --q", "line 4: --s needs a whole number ≥ 0, got '2.5'",
                       "line 4: --d needs a whole number ≥ 0, got '-1'"]
    assert parse_prompt_line("--n blurry", 2) == (None, ["line 2 has no prompt text before its options"])


def test_importer_reports_an_unknown_option_on_line_one_as_line_one():
    result = convert_kohya_settings({"sample_prompts": "a cat --q 7\n\nsecond --s x"})
    messages = [note.message for note in result.notes if note.field == "sample_prompts"]
    assert messages == ["line 1: unknown option --q; not imported", "line 3: --s needs a whole number ≥ 0, got 'x'; not imported"]
    assert result.config.sampling.prompts == ["a cat", "second"]


def test_wizard_counts_lines_as_the_text_box_shows_them():
    entries, problems = parse_prompt_text("ok\n\nx --d many")
    assert entries == ["ok", "x"]
    assert [(p.field, p.message, p.is_error) for p in problems] == [
        ("sampling.prompts[1]", "line 3: --d needs a whole number ≥ 0, got 'many'", True)]
