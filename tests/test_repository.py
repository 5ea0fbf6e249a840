"""The repository itself: no large binaries tracked by accident.

A committed wheel once added 10 MB that nothing used; every clone paid for it. Test data that is
large on purpose lives under tests/data/ or tests/__snapshots__/.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_TRACKED_BYTES = 1_000_000
DELIBERATE_DATA = ("tests/data/", "tests/__snapshots__/")


def tracked_files() -> list[str]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout (an unpacked release has no tracked files to check)")
    listing = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    return [name for name in listing.stdout.decode().split("\0") if name]


def oversized(names: list[str], root: Path) -> list[str]:
    """Tracked files over the limit, outside the folders that hold deliberate test data."""
    found = []
    for name in names:
        path = root / name
        if name.startswith(DELIBERATE_DATA) or not path.is_file():
            continue  # a file deleted in the working tree but not yet in the index has no size
        if path.stat().st_size > MAX_TRACKED_BYTES:
            found.append(f"{name} ({path.stat().st_size / 1e6:.1f} MB)")
    return found


def test_no_tracked_file_is_over_one_megabyte():
    big = oversized(tracked_files(), ROOT)
    assert not big, ("large files are tracked: " + ", ".join(big)
                     + f"; remove them (git rm) or, if they are test data on purpose, move them under {' or '.join(DELIBERATE_DATA)}")


def test_size_guard_flags_a_big_file_but_not_test_data(tmp_path):
    (tmp_path / "tests" / "data").mkdir(parents=True)
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "tool.whl").write_bytes(b"\0" * (MAX_TRACKED_BYTES + 1))
    (tmp_path / "tests" / "data" / "model.bin").write_bytes(b"\0" * (MAX_TRACKED_BYTES + 1))
    (tmp_path / "pkg" / "small.py").write_text("x = 1\n")
    found = oversized(["pkg/tool.whl", "tests/data/model.bin", "pkg/small.py"], tmp_path)
    assert found == ["pkg/tool.whl (1.0 MB)"]
