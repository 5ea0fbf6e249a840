"""The registry of base-model families: one `ModelFamily` per family, looked up by name.

Everything outside this package asks the family object (its words, metadata, objective, native size,
pipeline) instead of branching on a family name or flag. Importing this package needs no torch.
"""

from __future__ import annotations

from typing import Any, Mapping

from engine.families.base import ModelFamily
from engine.families.native import native_resolution_of, native_resolution_of_folder
from engine.families.sd1 import SD1
from engine.families.sd2 import SD2, SD2_V
from engine.families.sdxl import SDXL
from engine.families.flux1 import FLUX1

REGISTRY: dict[str, ModelFamily] = {family.name: family for family in (SD1, SD2, SD2_V, SDXL, FLUX1)}
FAMILY_NAMES: tuple[str, ...] = tuple(REGISTRY)
AUTO = "auto"  # `model.family: auto`: take the family the model itself shows


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
    if sdxl:
        return "sdxl"
    if v2:
        return "sd2-v" if v_parameterization else "sd2"
    return "sd1"


def with_naming(naming: str) -> ModelFamily:
    """The first family whose LoRA files use this Kohya naming (`sd2` → SD 2.x)."""
    for family in REGISTRY.values():
        if family.naming == naming:
            return family
    raise ValueError(f"no family uses the {naming!r} naming")


def split_by_prediction(family: ModelFamily) -> bool:
    """Whether families of the same layout differ only by objective (SD 2.x and SD 2.x v)."""
    return sum(other.naming == family.naming for other in REGISTRY.values()) > 1


def of_values(values: Mapping[str, Any]) -> ModelFamily:
    """The family a run's settings name: `model.family` unless `auto`, else the old flags."""
    name = values.get("model.family")
    if name in REGISTRY:
        return REGISTRY[name]
    return REGISTRY[from_flags(v2=bool(values.get("model.v2")),
                               v_parameterization=bool(values.get("model.v_parameterization")),
                               sdxl=bool(values.get("model.sdxl")))]


def requested_family(values: Mapping[str, Any]) -> str:
    """The family a run asks for: `model.family`, else one the old booleans name, else `auto`."""
    name = values.get("model.family")
    if name in REGISTRY:
        return name
    flags = {flag: bool(values.get(f"model.{flag}")) for flag in ("v2", "v_parameterization", "sdxl")}
    return from_flags(**flags) if any(flags.values()) else AUTO


__all__ = ["AUTO", "FAMILY_NAMES", "REGISTRY", "ModelFamily", "from_flags", "get", "label",
           "native_resolution_of", "native_resolution_of_folder", "of_values", "requested_family", "split_by_prediction", "with_naming"]
