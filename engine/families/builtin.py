"""The built-in tiny models of the registered families, by name (`model.path: builtin-tiny-sd1`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from engine.families.registry import REGISTRY
from engine.models.tiny import TinyModel, ensure_built


def tiny_models() -> dict[str, TinyModel]:
    """Every registered family's built-in model, by name, in registration order."""
    return {family.tiny_model.name: family.tiny_model for family in REGISTRY.values() if family.tiny_model}


def builtin_names() -> tuple[str, ...]:
    return tuple(tiny_models())


def builtin_family(name: str) -> str:
    """The family a built-in model belongs to (known without building it)."""
    return tiny_models()[name].family


def ensure_builtin_model(name: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the diffusers folder of a built-in model, building it first if needed."""
    models = tiny_models()
    if name not in models:
        raise KeyError(f"unknown built-in model {name!r}; known: {', '.join(models)}")
    return ensure_built(models[name], cache_dir)


def build_pipeline(name: str) -> Any:
    """The in-memory diffusers pipeline of a built-in model (deterministic for a name)."""
    return tiny_models()[name].build()
