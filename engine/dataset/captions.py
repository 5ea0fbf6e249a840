"""Captions: reading caption files, processing them at training time, and the tag counts stored
in the LoRA's metadata.

Captions are comma-separated tags or free text. Following sd-scripts: a caption is the first line
of its file; with `shuffle` the tags after the first `keep_tokens` are shuffled each time the image
is drawn; with `dropout_rate` the whole caption is replaced by "" that often (so the model also
learns the concept unconditioned). Tag counts go to `ss_tag_frequency` as
{concept folder name: {tag (lower case): number of images whose caption has it}}.

No numpy/torch here: `tui-lora validate` imports the scan, which imports this.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Iterable, Mapping

from engine.problems import Problem, warning

TAG_SEPARATOR = ","


def first_line(text: str) -> str:
    """The caption a caption file holds: its first line, without surrounding whitespace."""
    return text.split("\n", 1)[0].strip()


def read_caption_file(path: Path, problems: list[Problem]) -> str | None:
    """A caption file's caption ("" when blank), or None with a warning appended to `problems`
    when the file cannot be used (not UTF-8, unreadable), so the caller falls back to tokens."""
    try:
        text = path.read_bytes().decode("utf-8-sig")  # a byte-order mark is not part of the caption
    except UnicodeDecodeError:
        problems.append(
            warning(str(path), "caption file is not UTF-8 text; the folder's tokens are used instead", "save it as UTF-8")
        )
        return None
    except OSError as exc:
        reason = "permission denied" if isinstance(exc, PermissionError) else (exc.strerror or str(exc))
        problems.append(warning(str(path), f"caption file cannot be read ({reason}); the folder's tokens are used instead"))
        return None
    return first_line(text)


def split_tags(caption: str) -> list[str]:
    """Comma-separated tags, stripped, empty ones dropped."""
    return [tag.strip() for tag in caption.split(TAG_SEPARATOR) if tag.strip()]


def process_caption(
    text: str,
    *,
    shuffle: bool = False,
    keep_tokens: int = 0,
    dropout_rate: float = 0.0,
    rng: random.Random,
) -> str:
    """The caption to train on for one draw of an image.

    `rng` needs `random()` and `shuffle(list)`: a `random.Random` (or a numpy Generator). It is
    consulted only for what is enabled, so a run without caption augmentation draws nothing.
    `keep_tokens` only matters with `shuffle`: those leading tags stay where they are.
    """
    if dropout_rate > 0 and rng.random() < dropout_rate:
        return ""
    caption = first_line(text)
    if not shuffle:
        return caption
    tags = split_tags(caption)
    keep = max(0, keep_tokens)
    fixed, movable = tags[:keep], tags[keep:]
    rng.shuffle(movable)
    return ", ".join(fixed + movable)


def count_tags(captions: Iterable[str]) -> dict[str, int]:
    """How many captions contain each tag (lower-cased; a tag repeated in one caption counts twice,
    as in sd-scripts)."""
    counts: dict[str, int] = {}
    for caption in captions:
        for tag in split_tags(caption):
            tag = tag.lower()
            counts[tag] = counts.get(tag, 0) + 1
    return counts


def tag_frequency(
    captions_by_folder: Mapping[str, Iterable[str]] | Iterable[tuple[str, Iterable[str]]],
) -> dict[str, dict[str, int]]:
    """`ss_tag_frequency`: tag counts per concept folder name, from a mapping or from
    (folder name, captions) pairs. Folders with the same name (a training and a regularisation
    folder, say) share one entry, as in sd-scripts."""
    pairs = captions_by_folder.items() if isinstance(captions_by_folder, Mapping) else captions_by_folder
    result: dict[str, dict[str, int]] = {}
    for folder, captions in pairs:
        merged = result.setdefault(folder, {})
        for tag, count in count_tags(captions).items():
            merged[tag] = merged.get(tag, 0) + count
    return result
