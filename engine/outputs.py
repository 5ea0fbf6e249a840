"""The files a run writes, reserved for its whole life and checked before it trains.

A run writes `<name>.safetensors` (or `.ckpt`), `<name>.yaml`, epoch saves `<name>-00000N.*`, step
saves `<name>-stepNNNNNN.*`, state folders `<x>-state`, and samples `sample/<name>_e…png`. Before
training, none of them may exist unless `overwrite: true` (or the run resumes from that output).
While it runs, it holds a lock on `<output>/.<name>.lock`, so a second run of the same output name
fails at its start, naming the first; the lock dies with the process, so a killed run leaves
nothing stale. No torch here: `validate` uses the name-length check.
"""

from __future__ import annotations

import errno
import json
import os
import re
from pathlib import Path

from .output_names import epoch_save_stem, sample_pattern, save_stem_pattern, step_save_stem
from .problems import Problem, ProblemError, error

# The longest name a run derives from output_name: a step save's temporary file during its write,
# `.<name>-step00000000.safetensors.<8 random>.partial` (sd-scripts numbers step saves with 8 digits).
LONGEST_DERIVED = "." + step_save_stem("{name}", 0) + ".safetensors.abcdefgh.partial"
DEFAULT_NAME_MAX = 255


def name_limit(folder: str | os.PathLike) -> int:
    """The longest file name (bytes) the file system of `folder`, or its nearest existing parent, takes."""
    path = Path(folder).absolute()
    for candidate in (path, *path.parents):
        try:
            if candidate.is_dir():
                return int(os.pathconf(candidate, "PC_NAME_MAX"))
        except (OSError, ValueError):
            continue
    return DEFAULT_NAME_MAX


def output_name_problems(output_name: str, folder: str | os.PathLike) -> list[Problem]:
    """A name every derived file name can carry on the output folder's file system."""
    limit = name_limit(folder) if folder else DEFAULT_NAME_MAX
    longest = len(LONGEST_DERIVED.format(name=output_name).encode("utf-8", "surrogateescape"))
    if longest <= limit:
        return []
    most = limit - (longest - len(output_name.encode("utf-8", "surrogateescape")))
    return [error("folders.output_name", f"is too long for the file system: names the run writes from it "
                  f"would have {longest} bytes, the limit is {limit}",
                  f"use at most {max(1, most)} characters")]


def _suffix(cfg) -> str:
    return ".ckpt" if cfg.model.save_as == "ckpt" else ".safetensors"


def planned_files(cfg, epochs: int) -> list[Path]:
    """Files and folders the run is sure to, or may, write under fixed names."""
    out, name, suffix = Path(cfg.folders.output), cfg.folders.output_name, _suffix(cfg)
    files = [out / f"{name}{suffix}", out / f"{name}.yaml"]
    every = cfg.training.save_every_n_epochs
    if every:
        files += [out / f"{epoch_save_stem(name, epoch)}{suffix}" for epoch in range(every, epochs, every)]
    if cfg.training.save_state:
        files += [path.with_name(path.stem + "-state") for path in files if path.suffix == suffix]
    return files


def _step_and_sample_pattern(cfg) -> re.Pattern[str]:
    steps = save_stem_pattern(cfg.folders.output_name, final=False, epoch=False)
    return re.compile(rf"{steps}(?:\.safetensors|\.ckpt|-state)$|{sample_pattern(cfg.folders.output_name)}\.png$")


def existing_outputs(cfg, epochs: int) -> list[Path]:
    """The run's file names that already exist (planned names, step saves, this name's samples)."""
    found = [path for path in planned_files(cfg, epochs) if os.path.lexists(path)]
    pattern = _step_and_sample_pattern(cfg)
    out = Path(cfg.folders.output)
    for folder in (out, out / "sample"):
        try:
            found += sorted(p for p in folder.iterdir() if pattern.match(p.name))
        except OSError:
            continue
    return found


def collision_problems(cfg, epochs: int, *, resuming: bool, run_file: str | None = None,
                       yaml_text: str | None = None, lock_held: bool = False) -> list[Problem]:
    """An error for output files that exist and would be replaced without `overwrite: true`, or
    for a run in progress holding the name (unless the caller holds it: `lock_held`)."""
    held = None if lock_held else OutputLock(cfg.folders.output, cfg.folders.output_name).held_problem()
    if held is not None:  # a run in progress: that, not its files, is what stops this one
        return [held]
    if cfg.overwrite or resuming:
        return []
    found = existing_outputs(cfg, epochs)
    yaml_copy = Path(cfg.folders.output) / f"{cfg.folders.output_name}.yaml"
    if run_file and yaml_copy in found and _same_file(yaml_copy, run_file):
        found.remove(yaml_copy)  # the run file itself sits there: it is never rewritten
    elif yaml_text is not None and yaml_copy in found and _holds(yaml_copy, yaml_text):
        found.remove(yaml_copy)  # an earlier try of these very settings wrote it: nothing changes
    if not found:
        return []
    from .output_names import next_free_name

    shown = ", ".join(str(p) for p in found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
    verb = "exists" if len(found) == 1 else "exist"
    return [error("folders.output_name", f"{shown} already {verb} and would be replaced",
                  f"use another name (e.g. '{next_free_name(Path(cfg.folders.output), cfg.folders.output_name, _suffix(cfg))}') "
                  "or set overwrite: true")]


def _holds(path: Path, text: str) -> bool:
    try:
        return path.is_file() and path.stat().st_size < 1_000_000 and path.read_bytes() == text.encode("utf-8")
    except OSError:
        return False


def _same_file(a: Path, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


class OutputLock:
    """`<output>/.<name>.lock`, held (flock) while a run may write that output name."""

    def __init__(self, output: str | os.PathLike, output_name: str):
        self.path = Path(output) / f".{output_name}.lock"
        self._fd: int | None = None

    def held_problem(self) -> Problem | None:
        """The error acquire() would raise now, without taking the lock (checks run before registering)."""
        import fcntl

        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return None  # no lock file: nobody holds it
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return self._held(_read_holder(fd))
        finally:
            os.close(fd)
        return None

    def _held(self, holder: str) -> Problem:
        return error("folders.output_name", f"another run{holder} is writing '{self.path.name[1:-5]}' in "
                     f"{self.path.parent} right now",
                     "wait until it ends (`tui-lora runs`), or choose another folders.output_name")

    def acquire(self, run_id: str) -> None:
        """Take the lock or raise ProblemError naming the run that holds it."""
        import fcntl

        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise ProblemError([self._unwritable(exc)]) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise ProblemError([self._held(holder)]) from None
            # The previous holder may have removed the file between our open and our lock.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self._fd = fd
        try:
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps({"run_id": run_id, "pid": os.getpid()}).encode())
        except OSError as exc:  # a full disk: the lock file goes again, nothing of the run stays
            self.release()
            raise ProblemError([self._unwritable(exc)]) from None

    def _unwritable(self, exc: OSError) -> Problem:
        folder = self.path.parent
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return error("folders.output", f"the disk holding {folder} is full: the run cannot start",
                         "free some space there (or choose another folders.output), then start the run again")
        return error("folders.output", f"{self.path} cannot be written: {exc.strerror or exc}",
                     "choose an output folder you can write to")

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.unlink(self.path)
        except OSError:
            pass
        os.close(self._fd)  # closing drops the lock; a killed process drops it the same way
        self._fd = None


def _read_holder(fd: int) -> str:
    try:
        holder = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        return f" (run {holder['run_id']}, process {int(holder['pid'])})"
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return ""
