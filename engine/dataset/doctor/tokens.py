"""Counting a caption's CLIP tokens: with the model's own tokenizer when it is on disk, else an estimate.

The wizard runs the doctor in its own process, so `transformers` (about 2 s to import here) is
not used. The Rust `tokenizers` library (a transformers dependency, imported in a tenth of a
second) reads the model's `tokenizer.json`, or builds CLIP's BPE from `vocab.json` + `merges.txt`
(what SD 1.x/2.x/SDXL repositories ship) with CLIP's text clean-up: NFC, whitespace collapsed,
lower case, the CLIP word pattern, byte-level symbols and `</w>` word ends.

Without a local tokenizer the count is an estimate (`method = "estimate"`): CLIP's word pattern
splits the caption into letter runs, single digits and punctuation runs; each digit and each
punctuation run is one token; a letter run of up to 7 letters is one token (most common English
words are single CLIP tokens), a longer one counts one token per 6 letters, rounded up. It is
usually within a few tokens of the real count on tag-style captions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
import re

_WORDS = re.compile(r"[^\W\d_]+|\d|[^\s\w]+|_+")  # letter runs, single digits, punctuation runs
ESTIMATE_SOURCE = "estimate: words of up to 7 letters count 1, longer ones 1 per 6 letters; digits and punctuation 1 each"


@dataclass
class TokenCounter:
    count: Callable[[str], int]
    method: str  # "tokenizer" or "estimate"
    source: str  # the tokenizer folder, or how the estimate works


def estimate_tokens(text: str) -> int:
    total = 0
    for piece in _WORDS.findall(text.lower()):
        if piece[0].isalpha() and len(piece) > 7:
            total += math.ceil(len(piece) / 6)
        else:
            total += 1
    return total


def tokenizer_folder(model_path: str, config_dir: str = "") -> Path | None:
    """The local `tokenizer/` folder of the base model, or None (hub ids are looked up in the
    local Hugging Face cache only; nothing is downloaded)."""
    text = (model_path or "").strip()
    candidates: list[Path] = []
    if text.startswith("builtin-"):
        from engine.models.tiny import builtin_model_dir

        candidates.append(builtin_model_dir(text) / "tokenizer")
    elif text:
        local = Path(text).expanduser()
        if local.is_dir():
            candidates.append(local / "tokenizer")
        elif local.is_file() and config_dir:
            candidates.append(Path(config_dir).expanduser() / "tokenizer")
        elif "/" in text and not local.exists():
            found = _hub_cached(text)
            if found:
                candidates.append(found)
    return next((c for c in candidates if _has_tokenizer(c)), None)


def _hub_cached(repo_id: str) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache

        for name in ("tokenizer/tokenizer.json", "tokenizer/vocab.json"):
            found = try_to_load_from_cache(repo_id, name)
            if isinstance(found, str):
                return Path(found).parent
    except Exception:  # noqa: BLE001 - a cache layout we cannot read means "not cached"
        return None
    return None


def _has_tokenizer(folder: Path) -> bool:
    return (folder / "tokenizer.json").is_file() or ((folder / "vocab.json").is_file() and (folder / "merges.txt").is_file())


def load_counter(folder: Path | None) -> TokenCounter:
    """A counter over the tokenizer in `folder`, or the estimate when there is none (or it fails)."""
    if folder is not None:
        try:
            tokenizer = _load_tokenizer(folder)
        except Exception:  # noqa: BLE001 - a broken tokenizer folder falls back to the estimate
            tokenizer = None
        if tokenizer is not None:
            return TokenCounter(lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids),
                                "tokenizer", str(folder))
    return TokenCounter(estimate_tokens, "estimate", ESTIMATE_SOURCE)


def _load_tokenizer(folder: Path):
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

    if (folder / "tokenizer.json").is_file():
        return Tokenizer.from_file(str(folder / "tokenizer.json"))
    bpe = models.BPE.from_file(str(folder / "vocab.json"), str(folder / "merges.txt"),
                               end_of_word_suffix="</w>", unk_token="<|endoftext|>")
    tokenizer = Tokenizer(bpe)
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    clip_words = r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(clip_words), behavior="removed", invert=True),
         pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer

