"""A full disk, faked at the OS boundary: writes and fsyncs of files under one folder fail with
ENOSPC (errno 28), as they do when the disk is full; everything else goes on working."""

from __future__ import annotations

import errno
import os
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def full_disk(monkeypatch, folder: Path):
    """While active, `os.write`/`os.fsync` on a file descriptor of a file under `folder` raise ENOSPC,
    and so does writing through a Python file object opened there (its flush ends in a write)."""
    folder = Path(folder).resolve()
    real_write, real_fsync, real_open = os.write, os.fsync, os.open
    full_fds: set[int] = set()

    def on_full_disk(fd: int) -> bool:
        try:
            target = Path(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            return fd in full_fds
        return fd in full_fds or folder == target or folder in target.parents

    def write(fd, data):
        if on_full_disk(fd) and data:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    def fsync(fd):
        fd = fd if isinstance(fd, int) else fd.fileno()
        if on_full_disk(fd):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(os, "fsync", fsync)
    try:
        yield
    finally:
        monkeypatch.setattr(os, "write", real_write)
        monkeypatch.setattr(os, "fsync", real_fsync)
        monkeypatch.setattr(os, "open", real_open)
