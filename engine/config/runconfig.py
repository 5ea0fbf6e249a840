"""`RunConfig`: one run's settings, complete and typed, read as `cfg.network.rank`.

Values live in a flat mapping keyed by the schema's dotted keys. `parse_nested` turns a YAML
document into that mapping (reporting unknown keys and wrong types), `complete` fills defaults
(model-dependent ones from the model pick), and `RunConfig` gives attribute access.
"""

from __future__ import annotations

import copy
from typing import Any, Iterator, Mapping

from .. import families
from ..problems import Problem, error
from .renamed import RENAMED, renamed_note
from ..schema import SettingsTable
from .text_encoder import text_encoder_lr, text_encoder_trained
from .settings_model import FOLDER_SETTINGS, MODEL_SETTINGS, fill_family
from .settings_network import NETWORK_SETTINGS
from .settings_lycoris import LYCORIS_SETTINGS
from .settings_dylora import DYLORA_SETTINGS
from .settings_dataset import DATASET_SETTINGS
from .settings_memory import MEMORY_FLUX_SETTINGS, MEMORY_SETTINGS
from .settings_subsets import SUBSET_SETTINGS
from .settings_objective import OBJECTIVE_SETTINGS
from .settings_step_saves import STEP_SAVE_SETTINGS
from .settings_loading import LOADING_SETTINGS
from .settings_optimizer import OPTIMIZER_SETTINGS
from .settings_scheduler_class import SCHEDULER_CLASS_SETTINGS
from .settings_run import RUN_SETTINGS
from .settings_sampling import SAMPLING_SETTINGS
from .settings_training import TRAINING_SETTINGS
from .values import coerce, did_you_mean

SCHEMA_VERSION = 1

def _family_settings(place: str) -> list:
    """The registered families' own settings that go at `place` in the schema (see ModelFamily)."""
    return [setting for family in families.REGISTRY.values()
            for setting in family.settings_sections().get(place, ())]


def _adjusted(settings: list) -> list:
    for family in families.REGISTRY.values():
        settings = family.adjust_settings(settings)
    return settings


# Order here is the order of the YAML file and of the wizard within a screen.
SETTINGS = SettingsTable(_adjusted(
    MODEL_SETTINGS + _family_settings("model") + FOLDER_SETTINGS + NETWORK_SETTINGS + LYCORIS_SETTINGS
    + DYLORA_SETTINGS + TRAINING_SETTINGS + LOADING_SETTINGS + _family_settings("loading") + MEMORY_SETTINGS + STEP_SAVE_SETTINGS
    + OBJECTIVE_SETTINGS + _family_settings("objective") + MEMORY_FLUX_SETTINGS + OPTIMIZER_SETTINGS + SCHEDULER_CLASS_SETTINGS
    + DATASET_SETTINGS + SUBSET_SETTINGS + SAMPLING_SETTINGS + RUN_SETTINGS
))
FAMILY_FLAGS = ("model.family",)  # set by the quick pick


def parse_nested(document: Any, *, source: str = "run file") -> tuple[dict[str, Any], list[Problem]]:
    """Flatten a loaded YAML document into typed values; unknown keys and bad values are problems."""
    problems: list[Problem] = []
    values: dict[str, Any] = {}
    if document is None:
        document = {}
    if not isinstance(document, dict):
        return {}, [error(source, "the file must be a mapping of sections (model:, folders:, …)",
                          "start from a file saved by the wizard or `tui-lora import-kohya`")]
    sections = SETTINGS.sections()
    all_names = {s.name: s.key for s in SETTINGS}
    for top_key, top_value in document.items():
        key = str(top_key)
        if key == "version":
            if top_value != SCHEMA_VERSION:
                problems.append(error("version", f"version {top_value!r} is not supported",
                                      f"this tui-lora reads version {SCHEMA_VERSION}"))
            continue
        if key in SETTINGS and "." not in key:  # top-level settings such as `overwrite`
            _take(key, top_value, values, problems)
            continue
        if key not in sections or key == "":
            hint = did_you_mean(key, [s for s in sections if s] + [k for k in SETTINGS.keys() if "." not in k])
            if not hint and key in all_names:
                hint = f"did you mean '{all_names[key]}'? (it belongs in the '{all_names[key].split('.')[0]}' section)"
            problems.append(error(key or source, f"unknown section '{key}'", hint or "sections: " + ", ".join(s for s in sections if s)))
            continue
        if top_value is None:
            continue
        if not isinstance(top_value, dict):
            problems.append(error(key, f"'{key}' must be a mapping of settings", f"indent its settings under '{key}:'"))
            continue
        section_keys = [s.name for s in SETTINGS if s.section == key]
        for sub_key, sub_value in top_value.items():
            full = f"{key}.{sub_key}"
            if full in RENAMED:
                new = RENAMED[full]
                both = new.split(".")[-1] in top_value
                problems.append(renamed_note(full, both))
                if not both:
                    _take(new, sub_value, values, problems)
                continue
            if full not in SETTINGS:
                hint = did_you_mean(str(sub_key), section_keys)
                if not hint and str(sub_key) in all_names:
                    hint = f"did you mean '{all_names[str(sub_key)]}'?"
                problems.append(error(full, f"unknown setting '{sub_key}' in '{key}'",
                                      hint or "settings here: " + ", ".join(section_keys)))
                continue
            _take(full, sub_value, values, problems)
    return values, problems


def _take(key: str, raw: Any, values: dict[str, Any], problems: list[Problem]) -> None:
    value, problem = coerce(SETTINGS[key], raw)
    if problem:
        problems.append(problem)
    else:
        values[key] = value


def complete(values: Mapping[str, Any]) -> dict[str, Any]:
    """Fill every missing setting with its default, in schema order (model first)."""
    filled = dict(values)
    fill_family(filled)
    for setting in SETTINGS:
        if setting.key not in filled or (filled[setting.key] is None and setting.model_default is not None):
            filled[setting.key] = setting.default_for(filled)
    return filled


class _Section:
    """Attribute view of one section: `cfg.network.rank`."""

    def __init__(self, config: "RunConfig", name: str):
        self._config = config
        self._name = name

    def __getattr__(self, item: str) -> Any:
        key = f"{self._name}.{item}"
        if key not in SETTINGS:
            raise AttributeError(f"no setting '{key}'")
        return self._config.values[key]


class RunConfig:
    """A complete, typed set of run settings. Build with `RunConfig.from_values` or the loader."""

    def __init__(self, values: Mapping[str, Any]):
        self.values: dict[str, Any] = complete(values)

    @classmethod
    def from_values(cls, values: Mapping[str, Any] | None = None) -> "RunConfig":
        return cls(values or {})

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name == "values":
            raise AttributeError(name)
        if name in SETTINGS:  # top-level settings
            return self.values[name]
        if name in SETTINGS.sections():
            return _Section(self, name)
        raise AttributeError(f"no setting section '{name}'")

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunConfig) and self.values == other.values

    def replace(self, **changes: Any) -> "RunConfig":
        """A copy with some settings changed; keys use '__' for dots: replace(network__rank=4)."""
        values = copy.deepcopy(self.values)
        values.update({k.replace("__", "."): v for k, v in changes.items()})
        return RunConfig(values)

    def non_default(self) -> dict[str, Any]:
        """Settings whose value differs from the default they would get in this config."""
        return {s.key: self.values[s.key] for s in SETTINGS if self.values[s.key] != s.default_for(self.values)}

    # Derived conveniences the engine and the wizard both need.
    @property
    def epochs(self) -> int:
        return self.values["training.max_train_epochs"] or self.values["training.epochs"]

    @property
    def unet_lr(self) -> float:
        lr = self.values["optimizer.unet_lr"]
        return self.values["optimizer.learning_rate"] if lr is None else lr

    @property
    def text_encoder_lr(self) -> float:
        return text_encoder_lr(self.values)

    @property
    def trains_text_encoder(self) -> bool:
        return text_encoder_trained(self.values)
