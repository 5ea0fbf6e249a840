"""Running every check over a dataset: the one entry point (`run_doctor`) the CLI and wizard call.

Order: the scan (what training will do, and what stops it), the folder listing, image facts
(cached; the uncached ones read on a small thread pool, since PIL decodes without the GIL), then
each check module. `progress(done, total)` is called from the calling thread as images are read;
`cancelled()` lets a wizard worker stop early (the report is then partial, and says so).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from engine.dataset.scan_options import SCAN_OPTION_NAMES, scan_options
from engine.dataset.buckets import BucketPicker, BucketSettings, Size, check_bucket_settings
from engine.dataset.images import read_image_header
from engine.dataset.scan import scan_dataset
from engine.dataset.subsets import SubsetPlan

from .balance import balance_of, check_balance
from .blocking import blocking_findings
from .cache import FactsCache, default_cache_dir
from .caption_checks import CaptionOptions, check_folder_captions, read_folder_captions, tag_table
from .duplicates import Entry, check_duplicates
from .facts import ImageFacts, read_facts, stat_key
from .findings import DoctorReport, TokenCount, sort_findings
from .image_checks import check_images
from .layout import check_layout, list_root
from .tokens import load_counter


@dataclass
class DoctorOptions:
    images_dir: Path
    regularization_dir: Path | None = None
    caption_extension: str = ".txt"
    batch_size: int = 1
    epochs: int = 1
    max_resolution: Size = (512, 512)
    buckets_enabled: bool = True
    bucket_min: int = 256
    bucket_max: int = 1024
    bucket_step: int = 64
    bucket_no_upscale: bool = False
    gradient_accumulation_steps: int = 1
    num_processes: int = 1
    token_limit: int = 75
    shuffle: bool = False
    keep_tokens: int = 0
    keep_tokens_known: bool = False  # True when a run file gave shuffle/keep_tokens
    tokenizer_dir: Path | None = None
    cache_dir: Path | None = None  # None: tui-lora's cache folder
    use_cache: bool = True
    config_path: str | None = None
    workers: int = 0  # 0: up to 4, never more than the CPUs
    subsets: SubsetPlan | None = None  # the run's per-folder values (dataset.subsets), as the run scans

    @classmethod
    def from_config(cls, cfg, *, config_path: str | None = None, images_dir: str | None = None,
                    find_tokenizer: bool = True, **extra) -> DoctorOptions:
        """Options from a `RunConfig` (a run file, or schema defaults around a folder). No torch.
        `find_tokenizer` looks for the base model's tokenizer on disk (else captions are estimated)."""
        from .tokens import tokenizer_folder

        reg = cfg.folders.regularization
        return cls(
            images_dir=Path(images_dir or cfg.folders.images).expanduser(),
            regularization_dir=Path(reg).expanduser() if reg else None,
            **scan_options(cfg),
            token_limit=int(cfg.training.max_token_length),
            shuffle=cfg.captions.shuffle,
            keep_tokens=cfg.captions.keep_tokens,
            keep_tokens_known=config_path is not None,
            tokenizer_dir=tokenizer_folder(cfg.model.path, cfg.model.config_dir or "") if find_tokenizer else None,
            config_path=config_path,
            **extra,
        )

    def bucket_settings(self) -> BucketSettings:
        return BucketSettings(self.max_resolution, self.buckets_enabled, self.bucket_min, self.bucket_max,
                              self.bucket_step, self.bucket_no_upscale)


Progress = Callable[[int, int], None]


def run_doctor(options: DoctorOptions, progress: Progress | None = None,
               cancelled: Callable[[], bool] | None = None) -> DoctorReport:
    started = time.perf_counter()
    ext = options.caption_extension if options.caption_extension.startswith(".") else f".{options.caption_extension}"
    images_root = Path(options.images_dir)
    reg_root = Path(options.regularization_dir) if options.regularization_dir not in (None, "") else None
    train = list_root(images_root, False)
    reg = list_root(reg_root, True) if reg_root else None
    folders = train.concepts + (reg.concepts if reg else [])
    cache = FactsCache((options.cache_dir or default_cache_dir()) if options.use_cache else None, images_root)
    facts = _gather_facts([p for f in folders for p in f.images], cache, options, progress, cancelled)

    def read_header(path: Path):  # the scan reads each header once more unless we already have it
        known = facts.get(path)
        return known.header() if known is not None else read_image_header(path)

    scan = {name: getattr(options, name) for name in SCAN_OPTION_NAMES}
    summary = scan_dataset(images_root, reg_root, **{**scan, "caption_extension": ext}, read_header=read_header)
    report = DoctorReport(images_root, summary.regularization_dir, options.config_path)
    report.image_count, report.cached_count = len(facts), cache.hits

    findings = blocking_findings(summary.errors)
    findings += check_layout(train, reg)
    settings = options.bucket_settings()
    picker = BucketPicker(settings) if not check_bucket_settings(settings) else None
    findings += check_images(folders, facts, picker)

    entries = [Entry(p, f.path.name, f.repeats, f.is_reg) for f in folders for p in f.images
               if p in facts and not facts[p].error]
    findings += check_duplicates(entries, facts, summary.num_train_images)

    counter = load_counter(options.tokenizer_dir)
    caption_options = CaptionOptions(ext, options.token_limit, options.shuffle, options.keep_tokens, options.keep_tokens_known)
    all_captions: list[str] = []
    for folder in folders:
        usable = [p for p in folder.images if p in facts and not facts[p].error]
        read = read_folder_captions(folder, usable, ext)
        findings += check_folder_captions(read, caption_options, counter)
        if not folder.is_reg:
            all_captions += read.captions.values()
    report.tags, tag_findings = tag_table(all_captions)
    findings += tag_findings
    longest = max((counter.count(t) for t in all_captions), default=0)
    report.tokens = TokenCount(counter.method, counter.source, options.token_limit, longest)

    report.balance = balance_of(summary, options.batch_size)
    findings += check_balance(report.balance)
    report.findings = sort_findings(findings)
    for path in facts:
        cache.put(path, facts[path])
    cache.save()
    report.seconds = time.perf_counter() - started
    return report


def _gather_facts(paths: list[Path], cache: FactsCache, options: DoctorOptions, progress: Progress | None,
                  cancelled: Callable[[], bool] | None) -> dict[Path, ImageFacts]:
    facts: dict[Path, ImageFacts] = {}
    todo: list[tuple[Path, int, int]] = []
    for path in paths:
        try:
            size, mtime = stat_key(path)
        except OSError:
            continue  # vanished or unreadable: the scan reports it
        known = cache.get(path, size, mtime)
        if known is not None:
            facts[path] = known
        else:
            todo.append((path, size, mtime))
    total, done = len(paths), len(facts)
    if progress:
        progress(done, total)
    if not todo:
        return facts
    workers = options.workers or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="doctor") as pool:
        for (path, _, _), item in zip(todo, pool.map(lambda t: read_facts(*t), todo, chunksize=1)):
            facts[path] = item
            done += 1
            if progress:
                progress(done, total)
            if cancelled and cancelled():
                pool.shutdown(wait=False, cancel_futures=True)
                break
    return facts
