"""The model families: one package per family, registered here by one line each.

Everything that differs between base-model families lives in its package (`sd1/`, `sd2/`, `sdxl/`,
`flux1/`) as a `ModelFamily` (see `base.py` for the hooks); the rest of the engine asks the family
object, found here by its `model.family` name, instead of branching on a name or flag. Importing
this package needs no torch. To add a family: a new folder, and one `register(...)` line below.
"""

from __future__ import annotations

from engine.families.base import ModelFamily
from engine.families.native import native_resolution_of, native_resolution_of_folder
from engine.families.registry import (AUTO, REGISTRY, for_file, from_flags, get, label, of_values, read_family, register,
                                      requested_family, split_by_prediction, with_naming)
from engine.families import flux1, sd1, sd2, sd35, sdxl, zimage

# One line per family package, in the order the UI lists them.
register(*sd1.FAMILIES)
register(*sd2.FAMILIES)
register(*sdxl.FAMILIES)
register(*flux1.FAMILIES)
register(*sd35.FAMILIES)
register(*zimage.FAMILIES)

FAMILY_NAMES: tuple[str, ...] = tuple(REGISTRY)

__all__ = ["AUTO", "FAMILY_NAMES", "REGISTRY", "ModelFamily", "for_file", "from_flags", "get", "label",
           "native_resolution_of", "native_resolution_of_folder", "of_values", "read_family", "register",
           "requested_family", "split_by_prediction", "with_naming"]
