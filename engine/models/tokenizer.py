"""A small CLIP-style BPE tokenizer made locally, for the built-in tiny models.

Real CLIP vocabularies hold 49408 entries and must be downloaded. The tiny models only need a
tokenizer that behaves like CLIP's (byte-level BPE, `</w>` word ends, start/end tokens, 77
positions), so we generate one: every byte as a token (alone and as a word end), a few merges that
turn common caption words into single tokens, then the two special tokens last, as in CLIP.
"""

from __future__ import annotations

import json
from pathlib import Path

START_TOKEN = "<|startoftext|>"
END_TOKEN = "<|endoftext|>"
MAX_LENGTH = 77  # CLIP's context: 75 caption tokens plus start and end

# Words that become single tokens, so prompts tokenize into realistic short sequences.
_COMMON_WORDS = (
    "a an the of in on with and at by for is photo picture painting drawing portrait style art "
    "woman man girl boy person dog cat bird house tree car sky sea city street room "
    "red blue green yellow white black dark light small large old young beautiful "
    "background detailed high quality sks ohwx"
).split()


def _byte_symbols() -> list[str]:
    """One printable character per byte value, in the order GPT-2 and CLIP use.

    Printable Latin-1 bytes stand for themselves; the rest are shifted above 255 so every symbol
    is visible and none is whitespace.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    symbol_of = {b: chr(b) for b in printable}
    shifted = 0
    for b in range(256):
        if b not in symbol_of:
            symbol_of[b] = chr(256 + shifted)
            shifted += 1
    return [symbol_of[b] for b in printable] + [symbol_of[b] for b in range(256) if b not in printable]


def clip_vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The vocabulary (token → id) and ranked merges; deterministic, start/end tokens get the last ids."""
    symbols = _byte_symbols()
    vocab: dict[str, int] = {}
    for symbol in symbols:
        vocab[symbol] = len(vocab)
    for symbol in symbols:
        vocab[symbol + "</w>"] = len(vocab)

    merges: list[tuple[str, str]] = []
    for word in _COMMON_WORDS:
        pieces = list(word)
        pieces[-1] += "</w>"
        merged = pieces[0]
        for piece in pieces[1:]:
            pair = (merged, piece)
            if pair not in merges:
                merges.append(pair)
            merged += piece
            vocab.setdefault(merged, len(vocab))

    vocab[START_TOKEN] = len(vocab)
    vocab[END_TOKEN] = len(vocab)
    return vocab, merges


def build_clip_tokenizer(pad_token: str = END_TOKEN):
    """A `transformers.CLIPTokenizer` over the generated vocabulary.

    `pad_token` is `<|endoftext|>` for SD 1.x's tokenizer and `!` for the OpenCLIP-style ones of
    SD 2.x and SDXL's second encoder, as in the real models.
    """
    from transformers import CLIPTokenizer

    vocab, merges = clip_vocab_and_merges()
    return CLIPTokenizer(vocab=vocab, merges=merges, pad_token=pad_token, model_max_length=MAX_LENGTH)


def write_clip_tokenizer(folder: Path, pad_token: str = END_TOKEN) -> None:
    """Write a tokenizer folder that reloads with `CLIPTokenizer` and `AutoTokenizer`, old and new.

    transformers 5 saves only `tokenizer.json`; older versions (and other tools) read
    `vocab.json` + `merges.txt`, so both forms are written, and `model_max_length` is recorded
    because `from_pretrained` otherwise assumes an unlimited length.
    """
    folder.mkdir(parents=True, exist_ok=True)
    build_clip_tokenizer(pad_token).save_pretrained(str(folder))

    vocab, merges = clip_vocab_and_merges()
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    merges_text = "#version: 0.2\n" + "".join(f"{left} {right}\n" for left, right in merges)
    (folder / "merges.txt").write_text(merges_text, encoding="utf-8")

    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.exists() else {}
    config.update(
        {
            "tokenizer_class": "CLIPTokenizer",
            "model_max_length": MAX_LENGTH,
            "bos_token": START_TOKEN,
            "eos_token": END_TOKEN,
            "unk_token": END_TOKEN,
            "pad_token": pad_token,
        }
    )
    config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    special = {"bos_token": START_TOKEN, "eos_token": END_TOKEN, "unk_token": END_TOKEN, "pad_token": pad_token}
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n", encoding="utf-8")
