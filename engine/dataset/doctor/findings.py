"""What the dataset doctor reports: findings (each with what to do about it) and the report.

A finding's `severity` says what it does to a run:
- `error`: training refuses to start (the same problems `scan_dataset` marks as errors);
- `warning`: training runs, but the LoRA will probably come out worse;
- `info`: worth knowing (what training does with the file), nothing to fix necessarily.

`code` is a stable dotted name (`images.truncated`) that scripts may rely on; the words of
`message` and `advice` may change. The JSON shape is documented in docs/doctor.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Severity = Literal["error", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")
CATEGORIES = ("layout", "images", "duplicates", "captions", "balance", "settings")
JSON_VERSION = 1


@dataclass(frozen=True)
class Finding:
    code: str  # "<category>.<what>", stable
    severity: Severity
    message: str  # what is wrong, in plain words
    advice: str  # what to do about it
    paths: tuple[str, ...] = ()  # files or folders concerned (all of them)

    @property
    def category(self) -> str:
        return self.code.split(".", 1)[0]

    @property
    def blocks_training(self) -> bool:
        return self.severity == "error"

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "category": self.category,
            "severity": self.severity,
            "message": self.message,
            "advice": self.advice,
            "paths": list(self.paths),
        }


def counted(n: int, singular: str, plural: str | None = None) -> str:
    """`1 image`, `3 images`."""
    return f"{n} {singular if n == 1 else (plural or singular + 's')}"


def verb(n: int, one: str, many: str) -> str:
    """The word that agrees with a count: verb(1, "is", "are") == "is"."""
    return one if n == 1 else many


def finding(code: str, severity: Severity, message: str, advice: str, paths=()) -> Finding:
    return Finding(code, severity, message, advice, tuple(str(p) for p in paths))


@dataclass
class ConceptShare:
    """One concept folder's weight in an epoch."""

    name: str
    is_regularization: bool
    images: int
    repeats: int
    draws: int  # images × repeats (for regularisation: draws per epoch after balancing)
    share: float  # fraction of the training draws of an epoch (0 for regularisation)


@dataclass
class Balance:
    concepts: list[ConceptShare]
    train_draws: int
    reg_images: int  # regularisation images with their folders' repeats
    reg_draws: int  # regularisation draws per epoch after balancing
    batch_size: int
    epochs: int
    steps_per_epoch: int
    total_steps: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "concepts": [vars(c).copy() for c in self.concepts],
            "train_draws": self.train_draws,
            "reg_images": self.reg_images,
            "reg_draws": self.reg_draws,
            "batch_size": self.batch_size,
            "epochs": self.epochs,
            "steps_per_epoch": self.steps_per_epoch,
            "total_steps": self.total_steps,
        }


@dataclass
class TagTable:
    top: list[tuple[str, int]]  # most used tags, most first
    once: list[str]  # tags used by exactly one caption
    near_duplicates: list[list[str]]  # spellings that mean the same tag
    captions: int  # captions counted (from files)

    def to_dict(self) -> dict[str, Any]:
        return {
            "captions": self.captions,
            "top": [[tag, count] for tag, count in self.top],
            "once": list(self.once),
            "near_duplicates": [list(group) for group in self.near_duplicates],
        }


@dataclass
class TokenCount:
    method: str  # "tokenizer" (counted) or "estimate"
    source: str  # the tokenizer folder, or how the estimate works
    limit: int  # caption tokens the run keeps (training.max_token_length)
    longest: int  # the longest caption's count

    def to_dict(self) -> dict[str, Any]:
        return vars(self).copy()


@dataclass
class DoctorReport:
    images_dir: Path
    regularization_dir: Path | None
    config_path: str | None
    findings: list[Finding] = field(default_factory=list)
    balance: Balance | None = None
    tags: TagTable | None = None
    tokens: TokenCount | None = None
    image_count: int = 0  # image files looked at
    cached_count: int = 0  # of those, how many came from the cache
    seconds: float = 0.0

    @property
    def blocking(self) -> list[Finding]:
        return [f for f in self.findings if f.blocks_training]

    @property
    def blocks_training(self) -> bool:
        return bool(self.blocking)

    def counts(self) -> dict[str, int]:
        return {s: sum(1 for f in self.findings if f.severity == s) for s in SEVERITIES}

    def by_code(self, code: str) -> list[Finding]:
        return [f for f in self.findings if f.code == code]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": JSON_VERSION,
            "images_dir": str(self.images_dir),
            "regularization_dir": str(self.regularization_dir) if self.regularization_dir else None,
            "config": self.config_path,
            "blocks_training": self.blocks_training,
            "counts": self.counts(),
            "findings": [f.to_dict() for f in self.findings],
            "balance": self.balance.to_dict() if self.balance else None,
            "tags": self.tags.to_dict() if self.tags else None,
            "tokens": self.tokens.to_dict() if self.tokens else None,
            "images_checked": self.image_count,
            "images_from_cache": self.cached_count,
            "seconds": round(self.seconds, 3),
        }


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """Errors first, then warnings, then notes; by category within each."""
    order = {s: i for i, s in enumerate(SEVERITIES)}
    categories = {c: i for i, c in enumerate(CATEGORIES)}
    return sorted(findings, key=lambda f: (order[f.severity], categories.get(f.category, 99)))
