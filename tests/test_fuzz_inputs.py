"""Random and hostile inputs for the three readers a user's files reach first: the run-file loader,
the Kohya importer and the run index. Each must answer with a result or a ProblemError, never a
traceback, within bounded memory and time, whatever it is given: deep nesting, device files,
invalid UTF-8, huge numbers."""

from __future__ import annotations

import json
import os
import time
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.config import load_run_file
from engine.config.kohya_import import convert_kohya_settings, read_kohya_file
from engine.problems import ProblemError
from engine.runs import create_run, list_runs, run_index_path

FAST = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
MEMORY_LIMIT = 64 * 1024 * 1024  # far below what /dev/zero took (16.5 GB)
TIME_LIMIT_S = 10.0  # generous: the test machine's CPUs are shared

huge_numbers = st.sampled_from(["1e400", "-1e400", "9" * 500, "nan", ".inf", "-.inf", "0x" + "f" * 300, "1e-400"])
leaf = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**200), max_value=2**200),
                 st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30), huge_numbers)
documents = st.recursive(leaf, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(st.text(max_size=12), inner, max_size=4)),
                         max_leaves=25)
setting_names = st.sampled_from(["model", "folders", "network", "training", "optimizer", "sampling", "buckets",
                                 "quick_pick", "output_name", "seed", "rank", "extra_args", "learning_rate"])


def deep(depth: int, kind: str) -> str:
    if kind == "list":
        return "[" * depth + "]" * depth
    if kind == "map":
        return "{a: " * depth + "1" + "}" * depth
    return "".join("  " * level + f"{'k'}{level}:\n" for level in range(depth))


def bounded(call):
    """Run `call`; ProblemError is an answer. Fails on any other exception, or on too much memory or time."""
    tracemalloc.start()
    started = time.monotonic()
    try:
        call()
    except ProblemError as exc:
        assert exc.problems and all(p.field and p.message for p in exc.problems)
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < MEMORY_LIMIT, f"{peak} bytes"
    assert time.monotonic() - started < TIME_LIMIT_S


@FAST
@given(data=st.binary(max_size=2000), prefix=st.sampled_from([b"", b"\xef\xbb\xbf", b"folders:\n  images: ", b"\xff\xfe"]))
def test_any_bytes_as_a_run_file_or_kohya_config(tmp_path_factory, data, prefix):
    path = tmp_path_factory.mktemp("fuzz") / "input"
    path.write_bytes(prefix + data)
    bounded(lambda: load_run_file(path))
    bounded(lambda: read_kohya_file(path))


@FAST
@given(document=st.dictionaries(setting_names, st.one_of(documents, st.dictionaries(setting_names, documents, max_size=5)),
                                max_size=6))
def test_any_nested_document_in_either_reader(tmp_path_factory, document):
    folder = tmp_path_factory.mktemp("fuzz")
    text = json.dumps(document, allow_nan=True)  # JSON is YAML too
    (folder / "run.yaml").write_text(text)
    bounded(lambda: load_run_file(folder / "run.yaml"))
    bounded(lambda: convert_kohya_settings(document, source="fuzz.json"))


@FAST
@given(depth=st.integers(min_value=50, max_value=5000), kind=st.sampled_from(["list", "map", "block"]))
def test_deep_nesting_is_refused_with_a_problem(tmp_path_factory, depth, kind):
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "run.yaml").write_text(f"folders: {deep(depth, kind)}" if kind != "block" else deep(depth, kind))
    (folder / "c.json").write_text('{"a": ' + "[" * depth + "]" * depth + "}")
    bounded(lambda: load_run_file(folder / "run.yaml"))
    bounded(lambda: read_kohya_file(folder / "c.json"))


@pytest.mark.parametrize("special", ["/dev/zero", "/dev/urandom", "/dev/null", "fifo", "folder", "dangling-link",
                                     "link-loop", "socket"])
def test_device_files_and_odd_paths_in_either_reader(tmp_path, special):
    import socket

    path = Path(special)
    listener = None
    if not special.startswith("/"):
        path = tmp_path / special
        if special == "fifo":
            os.mkfifo(path)
        elif special == "folder":
            path.mkdir()
        elif special == "dangling-link":
            path.symlink_to(tmp_path / "missing")
        elif special == "link-loop":
            path.symlink_to(path)
        else:
            listener = socket.socket(socket.AF_UNIX)
            listener.bind(str(path))
    try:
        for reader in (load_run_file, read_kohya_file):
            answers = []

            def read(reader=reader):
                try:
                    reader(path)
                except ProblemError:
                    answers.append("refused")
                    raise

            bounded(read)
            assert answers == ["refused"]
    finally:
        if listener is not None:
            listener.close()


@FAST
@given(lines=st.lists(st.one_of(
    st.binary(max_size=200),
    st.builds(lambda started, path: json.dumps({"run_id": "r", "path": path, "started": started}).encode(),
              st.one_of(leaf, documents), st.one_of(st.text(max_size=20), st.integers(), st.none())),
    st.builds(lambda depth: b'{"path": ' + b"[" * depth + b"]" * depth + b"}", st.integers(1, 5000)),
), max_size=12))
def test_any_run_index_lists_the_good_runs_and_skips_the_rest(tmp_path_factory, lines):
    folder = tmp_path_factory.mktemp("fuzz")
    os.environ["XDG_STATE_HOME"] = str(folder / "state")  # restored by the autouse fixture's monkeypatch
    good = create_run(folder / "out", output_name="good")
    index = run_index_path()
    index.write_bytes(b"\n".join(lines) + b"\n" + index.read_bytes())
    damaged: list[str] = []
    found = []
    bounded(lambda: found.extend(list_runs(damaged)))
    assert good.run_id in [info.run_id for info in found]
    assert len(damaged) <= len(b"\n".join(lines).splitlines())
