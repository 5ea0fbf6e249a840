"""Is a Hugging Face hub model in the local cache? Answered without importing huggingface_hub when
it is plainly not there.

`validate` and the wizard ask this for every hub pick; importing huggingface_hub (and httpx with
it) cost 0.2 s of `tui-lora validate`'s 1.2 s. The cache keeps each repository in
`<cache>/models--<org>--<name>/`, so a missing folder means "not cached" for certain; only when the
folder exists does huggingface_hub resolve the snapshot (refs, revisions) exactly as it loads it.
"""

from __future__ import annotations

import os
from pathlib import Path


def hub_cache_dir() -> Path:
    """The cache huggingface_hub uses, from the same variables in the same order."""
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(name):
            return Path(os.environ[name]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def cached_snapshot(repo_id: str, filename: str = "model_index.json") -> str | None:
    """The snapshot folder holding `filename` of `repo_id`, or None when it is not cached."""
    cache = hub_cache_dir()
    if not (cache / ("models--" + repo_id.replace("/", "--"))).is_dir():
        return None  # certainly not cached: no import needed
    from huggingface_hub import try_to_load_from_cache

    try:  # the folder named explicitly: huggingface_hub reads its variables once, when first imported
        found = try_to_load_from_cache(repo_id, filename, cache_dir=str(cache))
    except Exception:  # an id the cache layout cannot hold is simply not cached
        return None
    return str(Path(found).parent) if isinstance(found, str) else None
