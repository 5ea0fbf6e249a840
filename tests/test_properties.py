"""Property tests: whatever a run file or a Kohya config holds, the answer is a config or a clean
error (ProblemError / an exit code), never an exception escaping."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.config import (
    SETTINGS,
    config_from_document,
    dump_run_yaml,
    load_run_file,
    load_yaml_text,
)
from tui_lora.commands.import_kohya import main_import_kohya
from engine.problems import ProblemError

QUICK = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# capsys is read out after every example, so sharing it between examples is safe
QUICK_CAPTURED = settings(QUICK, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

SECTIONS = sorted({s.section for s in SETTINGS if s.section})
NAMES_BY_SECTION = {section: sorted(s.name for s in SETTINGS if s.section == section) for section in SECTIONS}
TOP_LEVEL = sorted(s.key for s in SETTINGS if not s.section)
CHOICE_WORDS = sorted({str(c) for s in SETTINGS for c in s.choices})

scalars = (st.none() | st.booleans() | st.integers(min_value=-10**20, max_value=10**20) | st.floats()
           | st.text(max_size=20) | st.sampled_from(CHOICE_WORDS + ["", "1e-4", "512,512", "8", "auto", "~"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                           max_size=3), max_leaves=5)


def typed_values(setting):
    """Values of the setting's own type and range (the common case), or None when it may be empty."""
    low, high = setting.minimum, setting.maximum
    if setting.choices:
        typed = st.sampled_from(list(setting.choices))
    elif setting.kind == "bool":
        typed = st.booleans()
    elif setting.kind == "int":
        typed = st.integers(int(low) if low is not None else -5, int(high) if high is not None else 10**6)
    elif setting.kind == "float":
        typed = st.floats(low if low is not None else -1e6, high if high is not None else 1e6, allow_nan=False,
                          exclude_min=setting.min_exclusive and low is not None,
                          exclude_max=setting.max_exclusive and high is not None)
    elif setting.kind == "pair":
        typed = st.lists(st.integers(64, 2048), min_size=2, max_size=2)
    elif setting.kind == "int_list":
        typed = st.lists(st.integers(0, 100), max_size=3)
    elif setting.kind == "list":
        typed = st.lists(st.text(max_size=10), max_size=3)
    else:
        typed = st.text(max_size=15)
    return typed | st.none() if setting.optional else typed


@st.composite
def run_documents(draw):
    """Real settings, mostly with values of their own type, some with any value, plus strays."""
    document: dict = {}
    if draw(st.integers(0, 9)):  # the one required setting, usually present
        document["folders"] = {"images": draw(st.sampled_from(["imgs", "/data/set", "./a b"]))}
    for setting in draw(st.lists(st.sampled_from(list(SETTINGS)), max_size=8, unique_by=lambda s: s.key)):
        value = draw(st.one_of(typed_values(setting), typed_values(setting), typed_values(setting), values))
        if setting.section:
            section = document.setdefault(setting.section, {})
            if isinstance(section, dict):
                section[setting.name] = value
        else:
            document[setting.key] = value
    for _ in range(draw(st.integers(0, 1))):  # a stray: unknown name, wrong shape, version
        where = draw(st.sampled_from(SECTIONS + ["version", "top"]))
        if where == "top":
            document[draw(st.text(min_size=1, max_size=8))] = draw(values)
        elif where == "version":
            document["version"] = draw(values)
        elif draw(st.booleans()):
            document[where] = draw(values)
        else:
            section = document.setdefault(where, {})
            if isinstance(section, dict):
                section[draw(st.text(max_size=10))] = draw(values)
    return document


def assert_clean(problem_error: ProblemError) -> None:
    assert problem_error.errors, "a ProblemError always carries an error"
    for problem in problem_error.problems:
        assert problem.field and problem.message and problem.severity in ("error", "warning")


def _same_value(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


@QUICK
@given(run_documents())
def test_any_run_document_gives_a_config_or_a_problem_error(document):
    try:
        config, warnings = config_from_document(document, "run.yaml")
    except ProblemError as exc:
        assert_clean(exc)
        return
    assert all(not w.is_error for w in warnings)
    # What loads, saves; what saves, loads back the same.
    again, _ = config_from_document(load_yaml_text(dump_run_yaml(config), "again.yaml"), "again.yaml")
    assert all(_same_value(config.values[k], again.values[k]) for k in config.values)


def test_an_empty_section_name_is_still_named_in_the_problem():
    with pytest.raises(ProblemError) as info:
        config_from_document({"": None}, "run.yaml")
    assert_clean(info.value)
    assert info.value.problems[0].field == "run.yaml"


@QUICK
@given(st.text(max_size=300))
def test_any_text_gives_a_config_or_a_problem_error(text):
    try:
        config_from_document(load_yaml_text(text, "run.yaml"), "run.yaml")
    except ProblemError as exc:
        assert_clean(exc)


@QUICK
@given(run_documents(), st.sampled_from(["tab", "cut", "dup", "alias", "none"]), st.data())
def test_mangled_yaml_of_real_settings_gives_a_config_or_a_problem_error(document, mangle, data):
    text = yaml.safe_dump(document, allow_unicode=True, sort_keys=False)
    lines = text.splitlines(keepends=True) or ["\n"]
    if mangle == "tab":
        index = data.draw(st.integers(0, len(lines) - 1))
        lines[index] = "\t" + lines[index].lstrip(" ")
    elif mangle == "cut":
        text = text[: data.draw(st.integers(0, len(text)))]
        lines = [text]
    elif mangle == "dup":
        lines += lines[: data.draw(st.integers(0, len(lines)))]
    elif mangle == "alias":
        lines = ["x: &x [1, 2]\n", "y: *x\n", *lines]
    try:
        config_from_document(load_yaml_text("".join(lines), "run.yaml"), "run.yaml")
    except ProblemError as exc:
        assert_clean(exc)


@QUICK
@given(st.binary(max_size=400))
def test_any_bytes_as_a_run_file_give_a_config_or_a_problem_error(data):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "run.yaml"
        path.write_bytes(data)
        try:
            load_run_file(path)
        except ProblemError as exc:
            assert_clean(exc)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=15),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=8)


def _import(content: bytes, capsys) -> tuple[int, bool, str]:
    with tempfile.TemporaryDirectory() as folder:
        source, out = Path(folder) / "config.json", Path(folder) / "run.yaml"
        source.write_bytes(content)
        code = main_import_kohya([str(source), "-o", str(out)])
        written = out.exists()
        if written:  # what the importer writes, the loader reads: a config or a clean error
            try:
                load_run_file(out)
            except ProblemError as exc:
                assert_clean(exc)
    captured = capsys.readouterr()
    return code, written, captured.out + captured.err


@QUICK_CAPTURED
@given(st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_kohya_import_of_any_file_ends_with_an_exit_code(capsys, content):
    code, written, text = _import(content, capsys)
    assert code in (0, 1, 2)
    assert written == (code == 0)
    assert "Traceback" not in text
    if code:
        assert "error:" in text


@QUICK_CAPTURED
@given(st.dictionaries(st.sampled_from(sorted(SETTINGS.by_kohya_key())) | st.text(max_size=10), json_values,
                       max_size=10))
def test_kohya_import_of_any_settings_object_ends_with_an_exit_code(capsys, document):
    code, written, text = _import(json.dumps(document).encode(), capsys)
    assert code in (0, 1) and written == (code == 0)
    assert "Traceback" not in text
