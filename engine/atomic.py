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


def read_regular_file(path: str | os.PathLike[str], limit: int, *, what: str, too_large: str, hint: str) -> bytes:
    """At most `limit` bytes of a regular file; ProblemError (naming the file) for anything else.

    Devices, pipes and sockets report a size of 0 and never end (`/dev/zero`), so the size on disk
    is no guard: only regular files are read, and never more than `limit` + 1 bytes."""
    import stat

    from .problems import ProblemError, error

    name = str(path)
    try:
        # O_NONBLOCK: opening a named pipe must not wait for a writer; O_NOCTTY: a terminal stays free
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise ProblemError([error(name, "file not found", "check the path")]) from None
    except PermissionError:
        raise ProblemError([error(name, "cannot be read (permission denied)", "check the file's permissions")]) from None
    except OSError as exc:
        raise ProblemError([error(name, f"cannot be read: {exc.strerror or exc}", "check the path")]) from None
    except ValueError:  # a NUL byte in the name
        raise ProblemError([error(repr(name), "is not a usable file name", "check the path")]) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise ProblemError([error(name, f"is a folder, not a {what}", f"give the {what} itself")])
        raise ProblemError([error(name, f"is not a regular file (a device, pipe or socket), not a {what}",
                                  f"give the {what} itself")])
    with os.fdopen(fd, "rb") as handle:
        try:
            data = handle.read(limit + 1)
        except OSError as exc:
            raise ProblemError([error(name, f"cannot be read: {exc.strerror or exc}", "")]) from None
    if len(data) > limit:
        raise ProblemError([error(name, too_large, hint)])
    return data
