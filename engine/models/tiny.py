"""Built-in tiny models: the cache they are built into, and building one in place.

Each family that has a built-in tiny model declares it as a `TinyModel` (name, seed, how to build
the diffusers pipeline and finish its folder); see `engine/families/common/tiny_sd.py` and
`engine/families/flux1/tiny.py`. They let the demo, the tests and CPU users run every code path with
no download. This module knows no family: `engine.families.builtin` finds a model by name.

A model is built on first use into the cache (`<cache root>/models/<name>`) through a temporary
folder renamed into place, so a crash never leaves a half-written model, and reused afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

STAMP_FILE = "tui_lora_builtin.json"


@dataclass(frozen=True)
class TinyModel:
    """One built-in model: `build()` returns the in-memory pipeline (deterministic), `finish(folder)`
    completes the saved folder (tokenizer files save_pretrained does not write)."""

    name: str  # "builtin-tiny-sd1": a `model.path` value
    family: str  # the `model.family` it is
    seed: int
    description: str
    builder_version: int  # part of the stamp: bump when the builder changes, so old builds are rebuilt
    build: Callable[[], Any]
    finish: Callable[[Path], None]


def default_cache_root() -> Path:
    """tui-lora's cache folder: `$TUI_LORA_CACHE`, else `$XDG_CACHE_HOME/tui-lora`, else `~/.cache/tui-lora`."""
    override = os.environ.get("TUI_LORA_CACHE")
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "tui-lora"


def builtin_model_dir(name: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where a built-in model lives (built or not). `cache_dir` replaces the cache root."""
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_root()
    return root / "models" / name


def read_stamp(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / STAMP_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def move_into_place(staging: Path, target: Path, expected: dict[str, Any]) -> None:
    """Rename the finished build onto `target`; a concurrent builder's finished copy wins ties."""
    if target.exists():
        if read_stamp(target) == expected:
            return  # another process finished first
        # rename() may replace an empty folder, so move the old build onto a fresh one, then delete it
        stale = Path(tempfile.mkdtemp(prefix=f".{target.name}-stale-", dir=target.parent))
        os.replace(target, stale)
        shutil.rmtree(stale, ignore_errors=True)
    try:
        os.replace(staging, target)
    except OSError:
        if read_stamp(target) != expected:
            raise


def nest_text_encoder_keys(folder: Path) -> None:
    """Save CLIPTextModel weights under `text_model.…`, the layout of real SD repos.

    transformers ≥ 5.6 saves a flattened CLIPTextModel (no `text_model.` prefix) that older
    versions cannot read; it still loads the nested layout, so that is what we write.
    """
    from safetensors.torch import load_file, save_file

    weights = folder / "model.safetensors"
    tensors = load_file(str(weights))
    # a CLIPTextModelWithProjection's projection sits beside `text_model`, as in real SD3/SDXL repos
    outside = ("text_model.", "text_projection.")
    if all(key.startswith(outside) for key in tensors):
        return
    nested = {key if key.startswith(outside) else f"text_model.{key}": value for key, value in tensors.items()}
    save_file(nested, str(weights), metadata={"format": "pt"})


def ensure_built(model: TinyModel, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the diffusers folder of a built-in model, building it first if needed."""
    target = builtin_model_dir(model.name, cache_dir)
    expected = _stamp(model)
    if read_stamp(target) == expected:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{model.name}-", dir=target.parent))
    os.chmod(staging, 0o755)  # mkdtemp makes it private; the model folder is an ordinary one
    try:
        model.build().save_pretrained(str(staging), safe_serialization=True)
        model.finish(staging)
        nest_text_encoder_keys(staging / "text_encoder")
        (staging / STAMP_FILE).write_text(json.dumps(expected, indent=2) + "\n", encoding="utf-8")
        move_into_place(staging, target, expected)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _stamp(model: TinyModel) -> dict[str, Any]:
    import transformers

    # The transformers version is part of the stamp: 5.6 changed CLIPTextModel's saved key names,
    # so a folder written by one side of that change may not load on the other.
    return {"name": model.name, "builder_version": model.builder_version, "seed": model.seed,
            "transformers": transformers.__version__}
