"""Image facts remembered between doctor runs, by path, byte size and modification time.

One JSON file per images folder under `<tui-lora cache>/doctor/`, written atomically. A file
whose size or mtime changed is read again; entries for files no longer seen are dropped on save.
A cache that cannot be read or written is ignored: the doctor is slower, never wrong.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from engine.atomic import write_bytes_atomic

from .facts import ImageFacts

CACHE_VERSION = 2  # 2: detail and colours beside the hash


def default_cache_dir() -> Path:
    from engine.models.tiny import default_cache_root  # the one place tui-lora's cache folder is decided

    return default_cache_root() / "doctor"


class FactsCache:
    def __init__(self, folder: Path | None, dataset_root: Path):
        self.file: Path | None = None
        if folder is not None:
            digest = hashlib.blake2b(str(dataset_root.resolve()).encode(), digest_size=8).hexdigest()
            self.file = Path(folder) / f"{digest}.json"
        self._old: dict[str, dict] = self._load()
        self._new: dict[str, dict] = {}
        self.hits = 0

    def _load(self) -> dict[str, dict]:
        if self.file is None:
            return {}
        try:
            data = json.loads(self.file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
            return {}
        images = data.get("images")
        return images if isinstance(images, dict) else {}

    def get(self, path: Path, size_bytes: int, mtime_ns: int) -> ImageFacts | None:
        entry = self._old.get(str(path))
        if not entry or entry.get("size_bytes") != size_bytes or entry.get("mtime_ns") != mtime_ns:
            return None
        try:
            facts = ImageFacts.from_dict(entry)
        except TypeError:
            return None
        self.hits += 1
        return facts

    def put(self, path: Path, facts: ImageFacts) -> None:
        self._new[str(path)] = facts.to_dict()

    def save(self) -> None:
        if self.file is None or self._new == self._old:
            return
        payload = json.dumps({"version": CACHE_VERSION, "images": self._new}, separators=(",", ":"))
        try:
            write_bytes_atomic(self.file, payload.encode("utf-8"))
        except OSError:
            pass  # a read-only cache folder only costs speed
