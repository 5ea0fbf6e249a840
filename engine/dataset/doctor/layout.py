"""Layout: which files sit where, and folder mistakes that make training skip images.

`list_root` walks one root (images or regularisation) the way the scan reads it: concept folders
directly under the root, images directly in them. Whatever the scan would skip (loose images,
folders not named `<repeats>_<tokens>`, sub-folders of concept folders) is collected so the
checks can say what is lost. Folder names are parsed by the scan's own `parse_concept_name`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from engine.dataset.scan import (
    CAPTION_LIKE_EXTENSIONS,
    IMAGE_EXTENSIONS,
    UNSUPPORTED_IMAGE_EXTENSIONS,
    parse_concept_name,
)

from .findings import Finding, counted, finding, verb

_MAX_DEPTH = 6  # how deep to count images inside skipped folders


@dataclass
class FolderListing:
    path: Path
    parsed: tuple[int, str] | None  # (repeats, tokens) when named `<repeats>_<tokens>`
    is_reg: bool
    images: list[Path] = field(default_factory=list)
    captions: dict[str, list[Path]] = field(default_factory=dict)  # extension (lower) -> files
    unsupported: list[Path] = field(default_factory=list)
    subfolders: list[tuple[Path, int]] = field(default_factory=list)  # sub-folder, images beneath it

    @property
    def in_use(self) -> bool:
        """Whether training reads this folder (named right, repeats at least 1)."""
        return self.parsed is not None and self.parsed[0] >= 1

    @property
    def repeats(self) -> int:
        return self.parsed[0] if self.parsed else 0

    @property
    def tokens(self) -> str:
        return self.parsed[1] if self.parsed else ""


@dataclass
class RootListing:
    root: Path
    is_reg: bool
    loose_images: list[Path] = field(default_factory=list)
    folders: list[FolderListing] = field(default_factory=list)

    @property
    def concepts(self) -> list[FolderListing]:
        return [f for f in self.folders if f.in_use]


def _entries(folder: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as listing:
            return sorted((e for e in listing if not e.name.startswith(".")), key=lambda e: e.name)
    except OSError:
        return []  # the scan reports folders it cannot list


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _count_images(folder: Path, depth: int = 0) -> int:
    if depth > _MAX_DEPTH:
        return 0
    total = 0
    for entry in _entries(folder):
        if _is_dir(entry):
            total += _count_images(Path(entry.path), depth + 1)
        elif Path(entry.name).suffix.lower() in IMAGE_EXTENSIONS:
            total += 1
    return total


def list_folder(path: Path, is_reg: bool) -> FolderListing:
    listing = FolderListing(path, parse_concept_name(path.name), is_reg)
    for entry in _entries(path):
        child = Path(entry.path)
        if _is_dir(entry):
            listing.subfolders.append((child, _count_images(child)))
            continue
        suffix = child.suffix.lower()
        if suffix in IMAGE_EXTENSIONS:
            listing.images.append(child)
        elif suffix in CAPTION_LIKE_EXTENSIONS:
            listing.captions.setdefault(suffix, []).append(child)
        elif suffix in UNSUPPORTED_IMAGE_EXTENSIONS:
            listing.unsupported.append(child)
    return listing


def list_root(root: Path, is_reg: bool) -> RootListing:
    listing = RootListing(root, is_reg)
    if not root.is_dir():
        return listing
    for entry in _entries(root):
        child = Path(entry.path)
        if _is_dir(entry):
            listing.folders.append(list_folder(child, is_reg))
        elif child.suffix.lower() in IMAGE_EXTENSIONS:
            listing.loose_images.append(child)
    return listing


# Names that look like `<repeats>_<tokens>` typed a little wrong, and how to fix them.
_TYPOS = (
    (re.compile(r"(\d+)[\s\-.,]+(\S.*)"), "{0}_{1}"),  # `10 dog`, `10-dog`
    (re.compile(r"(\d+)([^\d_\s\-.,].*)"), "{0}_{1}"),  # `10dog`
    (re.compile(r"(.*?\S)[\s_\-.,]+(\d+)"), "{1}_{0}"),  # `dog_10`, `dog 10`
    (re.compile(r"\s+(\d+)_(.*)"), "{0}_{1}"),  # leading space
)


def suggested_name(name: str) -> str | None:
    """The `<repeats>_<tokens>` name a near-miss folder name was probably meant to be."""
    for pattern, template in _TYPOS:
        match = pattern.fullmatch(name)
        if match:
            return template.format(*(g.strip() for g in match.groups()))
    return None


def check_layout(train: RootListing, reg: RootListing | None) -> list[Finding]:
    found: list[Finding] = []
    for listing in (train, reg):
        if listing is not None:
            found += _check_root(listing)
    if reg is not None:
        reg_location = _check_reg_location(train.root, reg.root)
        if reg_location:  # the regularisation folder is not a mis-named concept folder: say only where it is
            found = [f for f in found if not (f.code.startswith("layout.folder_") and _same(f.paths, reg.root))]
            found += reg_location
    return found


def _same(paths: tuple[str, ...], folder: Path) -> bool:
    try:
        return len(paths) == 1 and Path(paths[0]).resolve() == folder.resolve()
    except OSError:
        return False


def _check_root(listing: RootListing) -> list[Finding]:
    found: list[Finding] = []
    kind = "regularisation" if listing.is_reg else "training"
    if listing.loose_images:
        found.append(finding(
            "layout.loose_images", "warning",
            f"{counted(len(listing.loose_images), 'image')} {verb(len(listing.loose_images), 'lies', 'lie')} directly "
            f"in the {kind} folder {listing.root.name}/, "
            "outside any concept folder, so training ignores them",
            "move them into a concept folder named `<repeats>_<words>`, e.g. `10_mychar woman`",
            listing.loose_images,
        ))
    for folder in listing.folders:
        found += _check_folder(folder)
    return found


def _check_folder(folder: FolderListing) -> list[Finding]:
    found: list[Finding] = []
    name = folder.path.name
    held = len(folder.images) + sum(n for _, n in folder.subfolders)
    if folder.parsed is None:
        suggestion = suggested_name(name)
        if suggestion is not None:
            found.append(finding(
                "layout.folder_name_typo", "warning" if held else "info",
                f"folder `{name}` looks like a concept folder typed wrong, so its {counted(held, 'image')} {verb(held, 'is', 'are')} skipped",
                f"rename it `{suggestion}` (repeats, an underscore, then the words)",
                [folder.path],
            ))
        elif held:
            found.append(finding(
                "layout.folder_skipped", "warning",
                f"folder `{name}` has no repeat count in its name, so its {counted(held, 'image')} {verb(held, 'is', 'are')} skipped",
                f"rename it `<repeats>_<words>`, e.g. `10_{name}`",
                [folder.path],
            ))
        return found
    if folder.repeats < 1:
        found.append(finding(
            "layout.zero_repeats", "warning" if held else "info",
            f"folder `{name}` has 0 repeats, so its {counted(held, 'image')} {verb(held, 'is', 'are')} never used",
            f"rename it with a repeat count of at least 1, e.g. `1_{folder.tokens or 'name'}`",
            [folder.path],
        ))
        return found
    nested = [(path, count) for path, count in folder.subfolders if count]
    if nested:
        total = sum(count for _, count in nested)
        found.append(finding(
            "layout.nested_folders", "warning",
            f"{counted(total, 'image')} in sub-folders of `{name}` {verb(total, 'is', 'are')} skipped: training reads only the images "
            f"directly inside a concept folder ({', '.join(p.name for p, _ in nested[:3])})",
            "move them up into the concept folder, or make each sub-folder its own concept folder "
            "beside it, named `<repeats>_<words>`",
            [p for p, _ in nested],
        ))
    if not folder.images:
        found.append(finding(
            "layout.empty_concept", "warning",
            f"concept folder `{name}` holds no images, so it adds nothing",
            "put images in it, or remove it",
            [folder.path],
        ))
    if folder.unsupported:
        kinds = sorted({p.suffix.lower() for p in folder.unsupported})
        found.append(finding(
            "images.unsupported_format", "warning",
            f"{counted(len(folder.unsupported), 'file')} in `{name}` {verb(len(folder.unsupported), 'is', 'are')} "
            f"in a format training does not read ({', '.join(kinds)})",
            "convert them to PNG, JPEG or WebP (for animations, export the frames you want)",
            folder.unsupported,
        ))
    return found


def _check_reg_location(images_root: Path, reg_root: Path) -> list[Finding]:
    try:
        images, reg = images_root.resolve(), reg_root.resolve()
    except OSError:
        return []
    if reg != images and images not in reg.parents:
        return []
    if reg == images:
        message = "the regularisation folder is the training folder: every image is trained on and used as a class example"
    else:
        relative = reg.relative_to(images)
        concept = parse_concept_name(relative.parts[0])
        also = (f"; `{relative.parts[0]}` is read as a training concept too, so these class images are trained on "
                "as if they were your subject") if concept and concept[0] >= 1 else ""
        message = f"the regularisation folder lies inside the training folder ({relative}){also}"
    return [finding(
        "layout.reg_inside_train", "warning", message,
        "keep the regularisation folder beside the training folder, not inside it "
        "(e.g. data/img and data/reg), and point folders.regularization at it",
        [reg_root],
    )]
