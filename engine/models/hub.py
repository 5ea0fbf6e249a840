"""Generic helpers for loading base models: the Hugging Face cache, dtype keywords, errors as problems.

Used by every family's loader; nothing here names a family. Cheap to import (no torch).
"""

from __future__ import annotations

import os
from typing import Any

from engine.hub_cache import cached_snapshot
from engine.problems import Problem, ProblemError, error


def hub_offline() -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}:
        return True
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def cached_hub_snapshot(repo_id: str) -> str | None:
    return cached_snapshot(repo_id)  # no huggingface_hub (nor httpx) import when plainly not cached


def hub_download_problem(repo_id: str, offline: bool, detail: str = "") -> Problem:
    reason = "this machine is offline (HF_HUB_OFFLINE)" if offline else "it could not be downloaded"
    return error(
        "model.path",
        f"{repo_id} is not in the local Hugging Face cache and {reason}" + (f": {detail}" if detail else ""),
        f"on a machine with internet run `hf download {repo_id}` (older: `huggingface-cli download {repo_id}`) "
        "and copy its Hugging Face cache here, or download the model folder and set model.path to it",
    )


def raise_errors(problems: list[Problem]) -> None:
    if any(p.is_error for p in problems):
        raise ProblemError(problems)


def dtype_kwarg(dtype: Any) -> dict[str, Any]:
    # transformers renamed `torch_dtype` to `dtype` in 4.56.
    import transformers
    from packaging.version import Version

    return {"dtype": dtype} if Version(transformers.__version__) >= Version("4.56") else {"torch_dtype": dtype}


def is_not_found(exc: Exception) -> bool:
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError

    chain: BaseException | None = exc
    while chain is not None:
        if isinstance(chain, (LocalEntryNotFoundError, EntryNotFoundError, RepositoryNotFoundError, OSError)):
            return True
        chain = chain.__cause__ or chain.__context__
    return False


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
