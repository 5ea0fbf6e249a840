"""One validation path: the run-file loader, the wizard's draft and the Kohya importer judge the
same values the same way (engine.config.validation)."""

from __future__ import annotations

import pytest

from engine.config import config_from_document
from engine.config.kohya_import import convert_kohya_settings
from engine.problems import ProblemError
from tui_lora.draft import Draft

BROKEN = {"augment.random_crop": True, "training.cache_latents": True, "network.rank": 4, "network.alpha": 8.0}
KOHYA = {"random_crop": True, "cache_latents": True, "network_dim": 4, "network_alpha": 8}


def nested(flat: dict) -> dict:
    document: dict = {"folders": {"images": "imgs"}}
    for key, value in flat.items():
        section, name = key.split(".")
        document.setdefault(section, {})[name] = value
    return document


def test_loader_draft_and_importer_find_the_same_problems():
    with pytest.raises(ProblemError) as loaded:
        config_from_document(nested(BROKEN), "run.yaml")
    from_file = {(p.field, p.is_error) for p in loaded.value.problems}
    draft = Draft({**{k: str(v) if not isinstance(v, bool) else v for k, v in BROKEN.items()}, "folders.images": "imgs"})
    from_wizard = {(p.field, p.is_error) for p in draft.problems()}
    imported = convert_kohya_settings({**KOHYA, "train_data_dir": "imgs"}).notes
    from_import = {p.field for p in imported if p.field in ("augment.random_crop", "network.alpha")}
    assert from_file == from_wizard == {("augment.random_crop", True), ("network.alpha", False)}
    assert from_import == {"augment.random_crop", "network.alpha"}  # as warnings: the import itself succeeds


def test_a_run_file_reports_a_bad_value_and_a_broken_rule_elsewhere_together():
    document = nested({"network.rank": "eight", "augment.random_crop": True, "training.cache_latents": True})
    with pytest.raises(ProblemError) as info:
        config_from_document(document, "run.yaml")
    assert {p.field for p in info.value.errors} == {"network.rank", "augment.random_crop"}


def test_a_rule_adds_nothing_to_a_setting_that_already_has_an_error():
    # The only prompt line cannot be read, so no prompt is left and the "interval without prompts"
    # rule would fire on the same setting; the line's own error is the one worth showing.
    draft = Draft({"folders.images": "imgs", "sampling.prompts": "--n blurry", "sampling.every_n_steps": "5"})
    assert [(p.field, p.is_error) for p in draft.problems() if p.field.startswith("sampling.prompts")] == [
        ("sampling.prompts[0]", True)]
    draft.set("sampling.prompts", "")
    assert [(p.field, p.is_error) for p in draft.problems() if p.field.startswith("sampling.prompts")] == [
        ("sampling.prompts", False)]
