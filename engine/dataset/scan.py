"""Dataset scan: concept folders, captions, regularisation balancing, buckets and step counts.

Layout (Kohya's DreamBooth style): the images folder holds concept folders named
`<repeats>_<tokens>` (e.g. `10_mychar woman`); each holds images and, beside each image, an
optional caption file (`photo1.png` + `photo1.txt`). An image without a caption file uses the
folder's tokens. A regularisation folder has the same layout; its images are repeated or cut to
match the number of training images exactly as sd-scripts does, and steps per epoch are counted
per bucket, so the numbers shown before a run are the numbers the run uses.

Everything wrong with the folders becomes an `engine.problems.Problem` naming the file or folder;
the scan itself never raises for a user mistake. It reads image headers only (no pixel decoding)
and imports no torch: `tui-lora validate` runs it and must answer in about a second.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from engine.dataset.buckets import (
    BucketPicker,
    BucketSettings,
    Size,
    batches_per_epoch,
    check_bucket_settings,
    steps_per_epoch,
)
from engine.dataset.captions import read_caption_file, tag_frequency
from engine.dataset.images import ImageHeader, UnreadableImage, read_image_header
from engine.dataset.subsets import ImageOptions, SubsetPlan
from engine.problems import Problem, ProblemError, error, warning

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp"})
# Extensions captioning tools write; reported when they sit beside images unused.
CAPTION_LIKE_EXTENSIONS = frozenset({".txt", ".caption", ".tags", ".cap"})
# Image formats people drop in that sd-scripts does not read.
UNSUPPORTED_IMAGE_EXTENSIONS = frozenset({".gif", ".tif", ".tiff", ".heic", ".heif", ".avif", ".jxl", ".jfif"})
_CONCEPT_NAME = re.compile(r"(\d+)(?:_(.*))?", re.DOTALL)
_SHOWN = 3  # file names listed in one aggregated warning


def parse_concept_name(name: str) -> tuple[int, str] | None:
    """(repeats, tokens) of a `<repeats>_<tokens>` folder name, or None when it is not one."""
    match = _CONCEPT_NAME.fullmatch(name)
    return (int(match.group(1)), (match.group(2) or "").strip()) if match else None


@dataclass(frozen=True)
class ConceptFolder:
    """One `<repeats>_<tokens>` folder and what it holds (usable images only)."""

    folder: Path
    tokens: str
    repeats: int
    image_count: int
    captions_found: int
    captions_missing: int
    is_regularization: bool
    subset: int | None = None  # the `dataset.subsets` entry that sets its values, if any

    @property
    def name(self) -> str:
        return self.folder.name


@dataclass(frozen=True)
class ImageItem:
    """One usable image. For regularisation images `repeats` is after balancing."""

    path: Path
    caption: str  # the caption file's first line, or the folder's tokens
    repeats: int
    is_reg: bool
    original_size: Size  # (width, height), EXIF orientation applied
    bucket: Size  # (width, height) it trains at
    resized_size: Size  # size before the crop to `bucket` (pass to load_training_image)
    concept: str  # its folder's name
    caption_from_file: bool
    options: ImageOptions = ImageOptions()  # its folder's caption and augmentation options


@dataclass
class DatasetSummary:
    images_dir: Path
    regularization_dir: Path | None
    concepts: list[ConceptFolder]
    items: list[ImageItem]  # training images, then the regularisation images in use
    buckets: dict[Size, int]  # bucket -> images in it per epoch (with repeats), sorted
    num_train_images: int  # training images times repeats (sd-scripts' num_train_images)
    num_reg_images: int  # regularisation images times their folder repeats, before balancing
    num_reg_images_used: int  # regularisation draws per epoch after balancing
    batches_per_epoch: int  # sum over buckets of ceil(count / batch size)
    steps_per_epoch: int  # optimizer steps: batches / processes / accumulation, rounded up
    total_steps: int
    epochs: int
    tag_frequency: dict[str, dict[str, int]]  # `ss_tag_frequency`
    mean_aspect_error: float  # mean |bucket ratio - image ratio| over items, without repeats
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.is_error]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if not p.is_error]

    def raise_for_errors(self) -> None:
        """Raise `ProblemError` with every problem when any of them is an error."""
        if self.errors:
            raise ProblemError(self.problems)

    def to_event_dict(self) -> dict:
        """JSON-ready summary for the `run_started` event and the review screen."""
        return {
            "images_dir": str(self.images_dir),
            "regularization_dir": str(self.regularization_dir) if self.regularization_dir else None,
            "concepts": [dict(asdict(c), folder=c.name) for c in self.concepts],
            "buckets": [{"width": w, "height": h, "count": n} for (w, h), n in self.buckets.items()],
            "num_train_images": self.num_train_images,
            "num_reg_images": self.num_reg_images,
            "num_reg_images_used": self.num_reg_images_used,
            "batches_per_epoch": self.batches_per_epoch,
            "steps_per_epoch": self.steps_per_epoch,
            "total_steps": self.total_steps,
            "epochs": self.epochs,
        }


@dataclass
class _Found:
    """A readable image as found, before buckets and balancing."""

    path: Path
    header: ImageHeader
    caption: str
    caption_from_file: bool


def scan_dataset(
    images_dir: str | os.PathLike,
    regularization_dir: str | os.PathLike | None = None,
    *,
    caption_extension: str = ".txt",
    batch_size: int = 1,
    epochs: int = 1,
    max_resolution: Size = (512, 512),
    buckets_enabled: bool = True,
    bucket_min: int = 256,
    bucket_max: int = 1024,
    bucket_step: int = 64,
    bucket_no_upscale: bool = False,
    gradient_accumulation_steps: int = 1,
    num_processes: int = 1,
    read_header: Callable[[Path], ImageHeader] = read_image_header,
    subsets: SubsetPlan | None = None,
) -> DatasetSummary:
    """Scan the folders and count what a run over them will do. Never raises for bad input:
    everything found is in `.problems` (call `.raise_for_errors()` to stop on errors).
    `read_header` lets a caller that already knows the headers (the doctor's cache) supply them.
    `subsets` gives folders their own values (`dataset.subsets`); without it every image trains
    with no caption or image augmentation."""
    problems: list[Problem] = []
    for name, value in (
        ("training.batch_size", batch_size),
        ("training.epochs", epochs),
        ("training.gradient_accumulation_steps", gradient_accumulation_steps),
        ("hardware.num_processes", num_processes),
    ):
        if value < 1:
            problems.append(error(name, f"must be at least 1, got {value}"))
    extension = caption_extension if caption_extension.startswith(".") else f".{caption_extension}"
    settings = BucketSettings(
        tuple(max_resolution), buckets_enabled, bucket_min, bucket_max, bucket_step, bucket_no_upscale
    )
    bucket_problems = check_bucket_settings(settings)
    problems += bucket_problems

    images_root = Path(images_dir)
    train = _scan_root(images_root, "folders.images", False, extension, problems, read_header, subsets)
    reg_root = Path(regularization_dir) if regularization_dir not in (None, "") else None
    reg = _scan_root(reg_root, "folders.regularization", True, extension, problems, read_header, subsets) if reg_root else []
    if subsets is not None:  # an entry's is_reg may move a folder between the two
        scanned = train + reg
        train = [pair for pair in scanned if not pair[0].is_regularization]
        reg = [pair for pair in scanned if pair[0].is_regularization]
        problems += subsets.unmatched([concept.folder for concept, _ in scanned])

    num_train = sum(c.repeats * c.image_count for c, _ in train)
    num_reg = sum(c.repeats * c.image_count for c, _ in reg)
    if num_train == 0 and images_root.is_dir():
        hint = "put images in concept folders named `<repeats>_<tokens>`, e.g. `10_mychar woman`"
        if _CONCEPT_NAME.fullmatch(images_root.name):
            hint = f"point folders.images at the folder that contains `{images_root.name}`, not at it"
        problems.append(error("folders.images", f"no usable image found in {images_root}", hint))
    if reg_root and reg_root.is_dir() and num_reg == 0:
        problems.append(warning("folders.regularization", f"no usable image found in {reg_root}; none are used"))
    reg_in_use = _balance_regularization(reg, num_train)
    if num_reg > num_train > 0:
        problems.append(
            warning(
                "folders.regularization",
                f"{num_reg} regularisation images (with repeats) for {num_train} training images: "
                "only as many as the training images are used",
            )
        )

    picker = _picker(settings, bucket_problems)
    items: list[ImageItem] = []
    entries = [(c, f, c.repeats) for c, found in train for f in found] + reg_in_use
    for concept, found, repeats in entries:
        width, height = found.header.size
        choice = picker.select(width, height) if picker else None
        if choice and (choice.bucket[0] < 1 or choice.bucket[1] < 1):
            problems.append(
                error(
                    str(found.path),
                    f"image is {width}x{height}, smaller than the bucket step {settings.step}; "
                    "with buckets.no_upscale it cannot fill a bucket",
                    "use a larger image or turn buckets.no_upscale off",
                )
            )
            continue
        items.append(
            ImageItem(
                found.path,
                found.caption,
                repeats,
                concept.is_regularization,
                found.header.size,
                choice.bucket if choice else (0, 0),
                choice.resized_size if choice else (0, 0),
                concept.name,
                found.caption_from_file,
                subsets.options_for(concept.folder) if subsets is not None else ImageOptions(),
            )
        )

    counts: dict[Size, int] = {}
    for item in items if picker else []:  # no picker: nothing can be counted, errors say why
        counts[item.bucket] = counts.get(item.bucket, 0) + item.repeats
    buckets = dict(sorted(counts.items()))
    batches = batches_per_epoch(buckets, batch_size)
    steps = steps_per_epoch(batches, gradient_accumulation_steps, num_processes)
    ratios = [abs(i.bucket[0] / i.bucket[1] - i.original_size[0] / i.original_size[1]) for i in items if picker]
    return DatasetSummary(
        images_dir=images_root,
        regularization_dir=reg_root,
        concepts=[c for c, _ in train + reg],
        items=items,
        buckets=buckets,
        num_train_images=num_train,
        num_reg_images=num_reg,
        num_reg_images_used=sum(i.repeats for i in items if i.is_reg),
        batches_per_epoch=batches,
        steps_per_epoch=steps,
        total_steps=steps * max(1, epochs),
        epochs=epochs,
        tag_frequency=tag_frequency([(c.name, [f.caption for f in found]) for c, found in train + reg]),
        mean_aspect_error=sum(ratios) / len(ratios) if ratios else 0.0,
        problems=problems,
    )


def _picker(settings: BucketSettings, bucket_problems: list[Problem]) -> BucketPicker | None:
    """The bucket picker, or a single fixed bucket when the bucket settings are broken (their
    errors are already reported), or None when even the resolution is unusable."""
    if not bucket_problems:
        return BucketPicker(settings)
    if min(settings.max_resolution) >= 1:
        return BucketPicker(BucketSettings(settings.max_resolution, enabled=False))
    return None


def _balance_regularization(
    reg: list[tuple[ConceptFolder, list[_Found]]], num_train: int
) -> list[tuple[ConceptFolder, _Found, int]]:
    """sd-scripts' balancing: walk the regularisation images in order, taking each once at its
    folder's repeats until the training count is reached; if one pass is not enough, keep adding
    one repeat per image, round-robin, until it is. Images past the count are left out."""
    pool = [(concept, found) for concept, images in reg for found in images]
    if not pool or num_train <= 0:
        return []
    chosen: list[list] = []
    drawn = 0
    first_pass = True
    while drawn < num_train:
        for index, (concept, found) in enumerate(pool):
            if first_pass:
                chosen.append([concept, found, concept.repeats])
                drawn += concept.repeats
            else:
                chosen[index][2] += 1
                drawn += 1
            if drawn >= num_train:
                break
        first_pass = False
    return [(c, f, r) for c, f, r in chosen]


def _list_dir(folder: Path, field_name: str, problems: list[Problem]) -> list[os.DirEntry] | None:
    try:
        with os.scandir(folder) as listing:
            return sorted((e for e in listing if not e.name.startswith(".")), key=lambda e: e.name)
    except PermissionError:
        problems.append(error(field_name, f"cannot list {folder}: permission denied", "check the folder's permissions"))
    except OSError as exc:
        problems.append(error(field_name, f"cannot list {folder}: {exc.strerror or exc}"))
    return None


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:  # a symlink loop or a vanished target
        return False


def _is_file(entry: os.DirEntry) -> bool:
    try:
        return entry.is_file()
    except OSError:
        return False


def _scan_root(
    root: Path, field_name: str, is_reg: bool, extension: str, problems: list[Problem],
    read_header: Callable[[Path], ImageHeader] = read_image_header, subsets: SubsetPlan | None = None,
) -> list[tuple[ConceptFolder, list[_Found]]]:
    """The concept folders under one root (images or regularisation), in name order."""
    if not root.exists():
        problems.append(error(field_name, f"folder {root} does not exist", "check the path, or create the folder"))
        return []
    if not root.is_dir():
        problems.append(error(field_name, f"{root} is a file, not a folder", "give the folder that holds concept folders"))
        return []
    entries = _list_dir(root, field_name, problems)
    if entries is None:
        return []
    concepts = []
    loose_images = []
    for entry in entries:
        path = Path(entry.path)
        if not _is_dir(entry):
            if Path(entry.name).suffix.lower() in IMAGE_EXTENSIONS:
                loose_images.append(entry.name)
            elif entry.is_symlink():
                problems.append(warning(str(path), "symlink that leads nowhere (broken, or a loop); skipped"))
            continue
        match = _CONCEPT_NAME.fullmatch(entry.name)
        rule = subsets.rule_for(path) if subsets is not None else None
        if not match and rule is None:
            problems.append(
                warning(
                    str(path),
                    "folder name does not start with a repeat count, so it is skipped",
                    f"rename it `<repeats>_<tokens>`, e.g. `10_{entry.name}`",
                )
            )
            continue
        # a folder an entry names need not carry its repeats (sd-scripts' default is 1)
        repeats, tokens = (int(match.group(1)), (match.group(2) or "").strip()) if match else (1, "")
        concept_reg, concept_ext = is_reg, extension
        if rule is not None:
            repeats = repeats if rule.repeats is None else rule.repeats
            tokens = tokens if rule.tokens is None else rule.tokens
            concept_reg = is_reg if rule.is_reg is None else rule.is_reg
            concept_ext = rule.caption_extension or extension
        if repeats < 1:
            problems.append(warning(str(path), "repeat count 0 means this folder is never used; skipped"))
            continue
        concept, found = _scan_concept(path, repeats, tokens, concept_reg, concept_ext, problems, read_header)
        concepts.append((replace(concept, subset=rule.index) if rule is not None else concept, found))
    if loose_images:
        problems.append(
            warning(
                str(root),
                f"{len(loose_images)} images lie directly in this folder and are not used "
                f"({_names(loose_images)})",
                "move them into a concept folder named `<repeats>_<tokens>`",
            )
        )
    return concepts


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOWN])
    return shown + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")


def _not_a_file(entry: os.DirEntry) -> tuple[str, str]:
    """(message, hint) for a name with an image extension that is no regular file: say what it is."""
    import stat

    try:
        mode = os.stat(entry.path).st_mode  # follows a link: what it leads to
    except OSError:
        return "symlink that leads nowhere (broken, or a loop)", "fix or remove it"
    kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a device file" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")
    return f"not a regular file but {kind}" if kind != "not a regular file" else kind, "remove it, or put the image itself there"


def _scan_concept(
    folder: Path, repeats: int, tokens: str, is_reg: bool, extension: str, problems: list[Problem],
    read_header: Callable[[Path], ImageHeader] = read_image_header,
) -> tuple[ConceptFolder, list[_Found]]:
    field_name = str(folder)
    listed = _list_dir(folder, field_name, problems)
    entries = listed or []
    files = {e.name: e for e in entries if not _is_dir(e)}
    subfolders = [e.name for e in entries if _is_dir(e)]
    lower_ext = extension.lower()
    images = [n for n in files if Path(n).suffix.lower() in IMAGE_EXTENSIONS]
    stems = {n[: -len(Path(n).suffix)] for n in images}
    captions_by_lower = {n.lower(): n for n in files if n.lower().endswith(lower_ext)}

    found: list[_Found] = []
    empty_captions: list[str] = []
    unreadable = 0
    for name in images:
        path = folder / name
        if not _is_file(files[name]):
            problems.append(error(str(path), *_not_a_file(files[name])))
            unreadable += 1
            continue
        try:
            header = read_header(path)
        except UnreadableImage as exc:
            hint = "check the file's permissions" if "permission" in str(exc) else "re-export the image or remove it"
            problems.append(error(str(path), f"unusable image: {exc}", hint))
            unreadable += 1
            continue
        stem = name[: -len(Path(name).suffix)]
        caption_name = stem + extension
        caption_name = caption_name if caption_name in files else captions_by_lower.get(caption_name.lower())
        caption = read_caption_file(folder / caption_name, problems) if caption_name else None
        if caption == "":
            empty_captions.append(caption_name)
            caption = None
        found.append(_Found(path, header, tokens if caption is None else caption, caption is not None))

    missing = sum(1 for f in found if not f.caption_from_file)
    if empty_captions:
        problems.append(
            warning(field_name, f"{len(empty_captions)} caption files are empty ({_names(empty_captions)}); "
                    "the folder's tokens are used for them")
        )
    if missing and not tokens:
        problems.append(
            warning(
                field_name,
                f"{missing} images have no caption and the folder name gives no tokens, so they train "
                "with an empty caption",
                f"add caption files, or name the folder `{repeats}_<tokens>`",
            )
        )
    stems_lower = {stem.lower() for stem in stems}
    orphans = [n for n in captions_by_lower.values() if n[: -len(extension)].lower() not in stems_lower]
    if orphans:
        problems.append(
            warning(field_name, f"{len(orphans)} caption files have no image beside them ({_names(orphans)})",
                    "rename them to match an image, or delete them")
        )
    others: dict[str, list[str]] = {}
    for name in files:
        suffix = Path(name).suffix
        if suffix.lower() in CAPTION_LIKE_EXTENSIONS and not name.lower().endswith(lower_ext):
            if name[: -len(suffix)] in stems:
                others.setdefault(suffix, []).append(name)
    for suffix, names in sorted(others.items()):
        problems.append(
            warning(
                field_name,
                f"{len(names)} {suffix} files beside images are not read ({_names(names)}): captions are "
                f"read from {extension} files",
                f"set training.caption_extension to {suffix} if these are the captions",
            )
        )
    unsupported = [n for n in files if Path(n).suffix.lower() in UNSUPPORTED_IMAGE_EXTENSIONS]
    if unsupported:
        problems.append(
            warning(field_name, f"{len(unsupported)} images in a format that is not read ({_names(unsupported)})",
                    "convert them to png, jpg, webp or bmp")
        )
    if not found and not unreadable and listed is not None:
        hint = f"images must sit directly in it; it holds only folders ({_names(subfolders)})" if subfolders else ""
        problems.append(warning(field_name, "concept folder holds no images; it is skipped", hint))
    concept = ConceptFolder(folder, tokens, repeats, len(found), len(found) - missing, missing, is_reg)
    return concept, found
