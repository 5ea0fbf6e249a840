"""The table of registered families, looked up by `model.family` name. A leaf: imports no family.

`engine/families/__init__.py` fills it, one `register(...)` line per family package, when the
package is imported; code inside a family may read it (say, to name another family in a message)
without importing a sibling family.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:  # the registry holds families but needs none of their code
    from engine.families.base import ModelFamily

REGISTRY: dict[str, ModelFamily] = {}
AUTO = "auto"  # `model.family: auto`: take the family the model itself shows


def register(*found: ModelFamily) -> None:
    """Add families (a package may hold several, as sd2 holds sd2 and sd2-v); names must be new."""
    for family in found:
        if family.name in REGISTRY or family.name == AUTO:
            raise ValueError(f"a model family named {family.name!r} is already registered")
        REGISTRY[family.name] = family


def names() -> tuple[str, ...]:
    return tuple(REGISTRY)


def get(name: str) -> ModelFamily:
    """The family called `name`; ValueError naming the known ones otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model family {name!r}; expected one of {', '.join(REGISTRY)}") from None


def label(name: str | None) -> str:
    """The UI words for a family name (the name itself when unknown)."""
    return REGISTRY[name].label if name in REGISTRY else str(name)


def from_flags(*, v2: bool = False, v_parameterization: bool = False, sdxl: bool = False) -> str:
    """The family the old `model.v2` / `model.v_parameterization` / `model.sdxl` booleans describe."""
    for family in REGISTRY.values():
        if family.matches_legacy_flags(v2=v2, v_parameterization=v_parameterization, sdxl=sdxl):
            return family.name
    raise ValueError("no registered family matches the old model flags")


def with_naming(naming: str) -> ModelFamily:
    """The first family whose LoRA files use this Kohya naming (`sd2` → SD 2.x)."""
    for family in REGISTRY.values():
        if family.naming == naming:
            return family
    raise ValueError(f"no family uses the {naming!r} naming")


def for_file(naming: str, v_parameterization: bool) -> ModelFamily:
    """The family a LoRA file's naming and objective describe (SD 2.x 768 is its own family)."""
    matches = [family for family in REGISTRY.values() if family.naming == naming]
    if not matches:
        known = tuple(dict.fromkeys(family.naming for family in REGISTRY.values()))
        raise ValueError(f"unknown family {naming!r}; expected one of {known}")
    return next((f for f in matches if f.is_v_prediction == bool(v_parameterization)), matches[0])


def split_by_prediction(family: ModelFamily) -> bool:
    """Whether families of the same layout differ only by objective (SD 2.x and SD 2.x v)."""
    return sum(other.naming == family.naming for other in REGISTRY.values()) > 1


def of_values(values: Mapping[str, Any]) -> ModelFamily:
    """The family a run's settings name: `model.family`, else (`auto`) the one unnamed models are taken as."""
    name = values.get("model.family")
    return REGISTRY[name] if name in REGISTRY else REGISTRY[from_flags()]


def requested_family(values: Mapping[str, Any]) -> str:
    """The family a run asks for: `model.family` (a registered name), else `auto`."""
    name = values.get("model.family")
    return name if name in REGISTRY else AUTO


def read_family(metadata: Mapping[str, str]) -> str | None:
    """The naming a LoRA file's metadata names, if any (ss_base_model_version, modelspec, ss_v2)."""
    version = metadata.get("ss_base_model_version", "")
    arch = metadata.get("modelspec.architecture", "")
    for family in REGISTRY.values():
        if version and version.startswith(family.metadata_prefixes[0]):
            return family.naming
    for family in REGISTRY.values():
        if arch and arch.startswith(family.metadata_prefixes[1]):
            return family.naming
    if metadata.get("ss_v2") == "True":
        return next(f.naming for f in REGISTRY.values() if f.legacy_flags()["v2"])
    return None


def unique_families() -> list[ModelFamily]:
    """One family per package section: families that share settings sections are listed once."""
    return list(REGISTRY.values())
