"""Replacing a file all at once: a kill or a full disk leaves the old file or the new one, never half.

Bytes go to a hidden temporary file in the destination folder (`.<name>.<random>.partial`), are
flushed to disk, get ordinary permissions, and only then are renamed over the destination.
Torch-free: run files and LoRA files both use it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

PARTIAL_SUFFIX = ".partial"


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=PARTIAL_SUFFIX, dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o666 & ~_umask())  # mkstemp makes 0600; these are ordinary user files
        os.replace(tmp_name, target)
        tmp_name = None
        _fsync_folder(target.parent)
    finally:
        if tmp_name is not None:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass
    return target


def _fsync_folder(folder: Path) -> None:
    # Makes the rename itself durable; not possible on every platform, and not needed for safety.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
