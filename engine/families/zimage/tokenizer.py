"""A small Qwen-style tokenizer made locally, for the built-in tiny Z-Image model.

Qwen3's real vocabulary (151k entries) must be downloaded. The tiny model only needs a tokenizer
that behaves like it for `ZImagePipeline`: byte-level BPE (GPT-2's byte alphabet, `Ġ` marks a
leading space), `<|endoftext|>` as padding, the chat markers the pipeline's prompt template uses,
and a chat template of our own that lays a prompt out the way Qwen3's does.
"""

from __future__ import annotations

from pathlib import Path

PAD_TOKEN = "<|endoftext|>"
SPECIAL_TOKENS = (PAD_TOKEN, "<|im_start|>", "<|im_end|>", "<think>", "</think>")
MAX_LENGTH = 512  # what ZImagePipeline pads captions to

_WORDS = (
    "a an the of in on with and at by for is photo picture painting drawing portrait style art "
    "woman man girl boy person dog cat bird house tree car sky sea city street room "
    "red blue green yellow white black dark light small large old young beautiful "
    "background detailed high quality sks ohwx user assistant"
).split()

# Qwen3's layout of one user turn, with the thinking switch ZImagePipeline passes (enable_thinking=True
# adds nothing; False closes an empty thought). Written for this tokenizer, not taken from Qwen's file.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and not enable_thinking %}<think>\n\n</think>\n\n{% endif %}{% endif %}"
)


def vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Every byte symbol, merges that make common words (bare and after a space) single tokens, then
    the special tokens last; deterministic."""
    from tokenizers import pre_tokenizers

    vocab = {symbol: index for index, symbol in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    merges: list[tuple[str, str]] = []
    for word in _WORDS:
        merged = word[0]
        for piece in word[1:]:
            if (merged, piece) not in merges:
                merges.append((merged, piece))
            merged += piece
            vocab.setdefault(merged, len(vocab))
        merges.append(("Ġ", word))  # the word after a space: its letters merge first, then the space
        vocab.setdefault("Ġ" + word, len(vocab))
    for token in SPECIAL_TOKENS:
        vocab[token] = len(vocab)
    return vocab, merges


def build_qwen_tokenizer():
    """A `Qwen2TokenizerFast` (the class Z-Image's tokenizer folder names) over the generated vocabulary."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import Qwen2TokenizerFast

    vocab, merges = vocab_and_merges()
    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in SPECIAL_TOKENS])
    return Qwen2TokenizerFast(tokenizer_object=backend, pad_token=PAD_TOKEN, eos_token="<|im_end|>",
                              unk_token=None, bos_token=None, model_max_length=MAX_LENGTH,
                              chat_template=CHAT_TEMPLATE)


def write_qwen_tokenizer(folder: Path) -> None:
    """Save the tokenizer so `AutoTokenizer.from_pretrained` (and the pipeline) reload it."""
    folder.mkdir(parents=True, exist_ok=True)
    build_qwen_tokenizer().save_pretrained(str(folder))
