"""Captions: missing, empty, orphaned or unread caption files, the trigger word, caption length,
the tag table, and `keep_tokens` mistakes.

Caption files are paired with images and read exactly as the scan does (`read_caption_file`:
the first line, UTF-8). When an image has a caption file, the folder's words are *not* added to
it, so a trigger word that lives only in the folder name is never learned for those images.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from engine.dataset.captions import count_tags, read_caption_file, split_tags
from engine.problems import Problem

from .findings import Finding, TagTable, counted, finding, verb
from .layout import FolderListing
from .tokens import TokenCounter

_TOP_TAGS = 15
_SEPARATORS = re.compile(r"[\s_\-]+")


@dataclass
class CaptionOptions:
    extension: str = ".txt"
    token_limit: int = 75
    shuffle: bool = False
    keep_tokens: int = 0
    keep_tokens_known: bool = False  # only judged when a run file gave the value


@dataclass
class FolderCaptions:
    folder: FolderListing
    captions: dict[Path, str] = field(default_factory=dict)  # image -> caption read from its file
    missing: list[Path] = field(default_factory=list)
    empty: list[Path] = field(default_factory=list)  # caption files
    orphans: list[Path] = field(default_factory=list)
    unreadable: list[Problem] = field(default_factory=list)
    unreadable_images: list[Path] = field(default_factory=list)  # their caption file exists but cannot be read


def read_folder_captions(folder: FolderListing, images: list[Path], extension: str) -> FolderCaptions:
    result = FolderCaptions(folder)
    ext = extension.lower()
    files = {p.name.lower(): p for p in folder.captions.get(ext, [])}
    stems = set()
    for image in images:
        stem = image.name[: -len(image.suffix)]
        stems.add(stem.lower())
        caption_file = files.get((stem + extension).lower())
        if caption_file is None:
            result.missing.append(image)
            continue
        text = read_caption_file(caption_file, result.unreadable)
        if text is None:  # reported as unreadable: not also as missing
            result.unreadable_images.append(image)
        elif text == "":
            result.empty.append(caption_file)
        else:
            result.captions[image] = text
    all_stems = {p.name[: -len(p.suffix)].lower() for p in folder.images}
    result.orphans = [p for name, p in sorted(files.items()) if name[: -len(ext)] not in all_stems]
    return result


def names_of(paths: list[Path], shown: int = 3) -> str:
    """`a.png, b.png, c.png … 12 more`: the first few names of a list (the finding keeps them all)."""
    names = ", ".join(Path(p).name for p in sorted(paths)[:shown])
    return names + (f" … {len(paths) - shown} more" if len(paths) > shown else "")


def check_folder_captions(read: FolderCaptions, options: CaptionOptions, counter: TokenCounter) -> list[Finding]:
    folder, found = read.folder, []
    name, tokens = folder.path.name, folder.tokens
    images = len(read.captions) + len(read.missing) + len(read.empty) + len(read.unreadable_images)
    ext = options.extension
    if read.missing and images:
        if len(read.missing) == images and tokens:
            found.append(finding(
                "captions.missing", "info",
                f"no image in `{name}` has a {ext} caption file ({names_of(read.missing)}): all {images} train with "
                f"the caption `{tokens}`",
                "fine for one subject on plain backgrounds; captions that describe what changes "
                "(clothes, background, pose) make a more flexible LoRA",
                [folder.path]))
        else:
            uses = f"the folder's words `{tokens}`" if tokens else "an empty caption (the folder name gives no words)"
            found.append(finding(
                "captions.missing", "warning",
                f"{len(read.missing)} of {counted(images, 'image')} in `{name}` {verb(len(read.missing), 'has', 'have')} "
                f"no {ext} caption file ({names_of(read.missing)}), so {verb(len(read.missing), 'it trains', 'they train')} "
                f"with {uses}",
                f"write a caption for each (photo1.png pairs with photo1{ext})", read.missing))
    if read.empty:
        found.append(finding(
            "captions.empty", "warning",
            f"{counted(len(read.empty), 'caption file')} in `{name}` {verb(len(read.empty), 'is', 'are')} empty "
            f"({names_of(read.empty)}); "
            f"{'its image trains' if len(read.empty) == 1 else 'those images train'} with "
            + (f"the folder's words `{tokens}`" if tokens else "an empty caption"),
            "write the caption, or delete the empty file", read.empty))
    if read.orphans:
        found.append(finding(
            "captions.orphan", "warning",
            f"{counted(len(read.orphans), 'caption file')} in `{name}` {verb(len(read.orphans), 'has', 'have')} no image "
            f"beside {verb(len(read.orphans), 'it', 'them')} ({', '.join(p.name for p in read.orphans[:3])})",
            "rename each to match its image (same name before the extension), or delete it", read.orphans))
    for problem in read.unreadable:
        found.append(finding("captions.unreadable", "warning", f"{Path(problem.field).name}: {problem.message}",
                             problem.hint or "save it as UTF-8 text", [problem.field]))
    others = {e: files for e, files in folder.captions.items() if e != ext.lower() and files}
    if others and folder.images:
        listed = ", ".join(f"{len(f)} {e}" for e, f in sorted(others.items()))
        suffix = sorted(others)[0]
        found.append(finding(
            "captions.mixed_extensions", "warning",
            f"`{name}` holds caption-like files that are not read ({listed}); captions are read from {ext} files only",
            f"if the {suffix} files are the captions, set training.caption_extension to {suffix}; otherwise remove them",
            [p for f in others.values() for p in f]))
    if not folder.is_reg and tokens:
        found += _trigger(name, tokens, read.captions, options)
    found += _length(name, read.captions, options, counter)
    return found


def _trigger(name: str, tokens: str, captions: dict[Path, str], options: CaptionOptions) -> list[Finding]:
    trigger = tokens.split()[0]
    pattern = re.compile(rf"(?<!\w){re.escape(trigger)}(?!\w)", re.IGNORECASE)
    absent = [p for p, text in captions.items() if not pattern.search(text)]
    found = []
    if absent:
        found.append(finding(
            "captions.trigger_missing", "warning",
            f"the trigger word `{trigger}` (from the folder name) is absent from {len(absent)} of {len(captions)} "
            f"captions in `{name}` ({names_of(absent)}): a caption file replaces the folder's words",
            f"add `{trigger}` at the start of those captions, or the LoRA will not answer to it", absent))
    if not (options.shuffle and options.keep_tokens_known):
        return found
    keep, words = options.keep_tokens, tokens.split()
    present = {p: split_tags(t) for p, t in captions.items() if p not in absent}
    moving = [p for p, tags in present.items() if not any(pattern.search(t) for t in tags[:keep])]
    if moving:
        found.append(finding(
            "captions.trigger_shuffled", "warning",
            f"captions are shuffled and `{trigger}` is not among the first {keep} tag(s) kept in place in "
            f"{counted(len(moving), 'caption')} of `{name}`, so it moves around",
            "put the trigger word first in each caption and set captions.keep_tokens to 1", moving))
    phrase_first = [p for p, tags in present.items()
                    if tags and len(words) > 1 and all(re.search(rf"(?<!\w){re.escape(w)}(?!\w)", tags[0], re.I) for w in words)]
    if keep == len(words) > 1 and phrase_first:
        found.append(finding(
            "captions.keep_tokens_counts_words", "warning",
            f"captions.keep_tokens is {keep}, the number of words in `{tokens}`, but it counts comma-separated "
            f"tags: the first tag already holds `{tokens}`, so {keep} keeps it and the next {keep - 1} tag(s) in place "
            f"({counted(len(phrase_first), 'caption')} of `{name}`)",
            "set captions.keep_tokens to 1 to keep only the first tag fixed", phrase_first))
    return found


def _length(name: str, captions: dict[Path, str], options: CaptionOptions, counter: TokenCounter) -> list[Finding]:
    over = []
    for path, text in captions.items():
        count = counter.count(text)
        if count > options.token_limit:
            over.append((count, path))
    if not over:
        return []
    over.sort(key=lambda x: -x[0])
    how = "counted with the model's tokenizer" if counter.method == "tokenizer" else "estimated; no local tokenizer"
    return [finding(
        "captions.too_long", "warning",
        f"{counted(len(over), 'caption')} in `{name}` {verb(len(over), 'is', 'are')} longer than {options.token_limit} tokens, so their end is cut off "
        f"(longest {over[0][0]} tokens: {over[0][1].name}; {how})",
        "shorten them (put what matters first), or raise training.max_token_length to 150 or 225",
        [p for _, p in over])]


def longest_caption(captions: Iterable[str], counter: TokenCounter) -> int:
    return max((counter.count(t) for t in captions), default=0)


def normalized_tag(tag: str) -> str:
    """`Blue_Eyes`, `blue-eyes`, `blue  eyes` and `blue\\_eyes` all mean `blue eyes`."""
    return _SEPARATORS.sub(" ", tag.lower().replace("\\", "")).strip()


def tag_table(captions: list[str]) -> tuple[TagTable, list[Finding]]:
    counts = count_tags(captions)  # lower-cased, as ss_tag_frequency stores them
    ranked = sorted(counts.items(), key=lambda x: (-x[1], x[0]))
    spellings: dict[str, list[str]] = {}
    for tag in counts:
        spellings.setdefault(normalized_tag(tag), []).append(tag)
    groups = [sorted(g, key=lambda t: -counts[t]) for g in spellings.values() if len(g) > 1]
    table = TagTable(ranked[:_TOP_TAGS], sorted(t for t, n in counts.items() if n == 1), groups, len(captions))
    found = [finding(
        "captions.near_duplicate_tags", "warning",
        "one tag spelled " + str(len(group)) + " ways: " + " / ".join(f"`{t}` ({counts[t]})" for t in group)
        + "; the model learns them as different words",
        f"pick one spelling (e.g. `{group[0]}`) and use it in every caption", []) for group in groups]
    return table, found
