"""The settings schema: every setting's type, default, bounds, screen and explanation, once.

The YAML loader, the validator, the wizard's forms and help panel, the Kohya importer and the
LoRA file's `ss_*` metadata all read `SETTINGS`; nothing else keeps a list of settings.
This module must stay cheap to import (no torch, no textual).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping

Kind = Literal["bool", "int", "float", "str", "path", "choice", "pair", "list", "int_list", "prompts", "subsets"]
Screen = Literal["model", "folders", "basic", "advanced"]
# What the engine does with a path: reads a folder or a file (so it must exist), or writes into a
# folder (created when missing). The wizard's disk checks follow it.
Disk = Literal["", "read_folder", "read_file", "write_folder"]

# `applies` callbacks get the flat values mapping and return a reason the setting does not apply
# (shown as a disabled field in the wizard), or None when it applies.
AppliesFn = Callable[[Mapping[str, Any]], "str | None"]
ModelDefaultFn = Callable[[Mapping[str, Any]], Any]
# A setting with its own structure (a list of mappings) types its value itself: (setting, raw value,
# lenient) → (typed value, problem or None), like `values.coerce`.
ParseFn = Callable[["Setting", Any, bool], "tuple[Any, Any]"]


@dataclass(frozen=True)
class Setting:
    key: str  # dotted YAML path, e.g. "network.rank"
    kind: Kind
    default: Any
    label: str
    hint: str  # one line, shown under the field
    help: str  # the longer explanation, shown in the help panel
    screen: Screen
    kohya: str | None = None  # key in Kohya SS GUI .json configs
    optional: bool = False  # an empty value (None) is allowed
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    min_exclusive: bool = False  # minimum itself is not allowed
    max_exclusive: bool = False
    choices: tuple[Any, ...] = ()
    tier: Literal["core", "expected"] = "core"
    applies: AppliesFn | None = None
    model_default: ModelDefaultFn | None = None  # default that depends on the model pick
    empty_means: str = ""  # what an empty value does, e.g. "uses optimizer.learning_rate"
    suffix: str = ""  # unit shown after the input, e.g. "%"
    disk: Disk = ""  # for kind "path": see Disk
    # Recorded in the LoRA's metadata as `ss_<kohya key>`. False where sd-scripts' own metadata keys
    # already hold it (ss_network_dim, ss_num_epochs, modelspec.title, …) or it would leak local paths;
    # path settings are never recorded.
    ss_extra: bool = True
    parse: ParseFn | None = None  # see ParseFn; the other kinds are typed by `values.coerce`

    @property
    def section(self) -> str:
        return self.key.split(".")[0] if "." in self.key else ""

    @property
    def name(self) -> str:
        return self.key.split(".")[-1]

    def default_for(self, values: Mapping[str, Any]) -> Any:
        if self.model_default is not None:
            return self.model_default(values)
        if isinstance(self.default, list):
            return list(self.default)
        return self.default

    def bounds_text(self) -> str:
        """Human form of the allowed values, used in error messages and the help panel."""
        if self.kind == "choice":
            return "one of: " + ", ".join(str(c) for c in self.choices)
        if self.kind == "bool":
            return "true or false"
        parts = []
        if self.minimum is not None:
            parts.append(f"{'>' if self.min_exclusive else '≥'} {_num(self.minimum)}")
        if self.maximum is not None:
            parts.append(f"{'<' if self.max_exclusive else '≤'} {_num(self.maximum)}")
        noun = {"int": "a whole number", "float": "a number", "pair": "two whole numbers [W, H]",
                "int_list": "a list of whole numbers"}.get(self.kind, "")
        text = noun + (" " + " and ".join(parts) if parts else "")
        if self.optional:
            text += " (or empty)"
        return text.strip()


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


@dataclass
class SettingsTable:
    """Ordered registry of settings, looked up by dotted key."""

    settings: list[Setting] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._by_key = {s.key: s for s in self.settings}
        if len(self._by_key) != len(self.settings):
            raise ValueError("duplicate setting key in schema")

    def __iter__(self):
        return iter(self.settings)

    def __len__(self) -> int:
        return len(self.settings)

    def __contains__(self, key: str) -> bool:
        return key in self._by_key

    def __getitem__(self, key: str) -> Setting:
        return self._by_key[key]

    def get(self, key: str) -> Setting | None:
        return self._by_key.get(key)

    def keys(self) -> list[str]:
        return [s.key for s in self.settings]

    def sections(self) -> list[str]:
        seen: list[str] = []
        for s in self.settings:
            if s.section not in seen:
                seen.append(s.section)
        return seen

    def on_screen(self, screen: Screen) -> list[Setting]:
        return [s for s in self.settings if s.screen == screen]

    def by_kohya_key(self) -> dict[str, Setting]:
        return {s.kohya: s for s in self.settings if s.kohya}
