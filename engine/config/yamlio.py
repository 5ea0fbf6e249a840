"""Reading and writing run files (YAML).

Loading is `yaml.safe_load` with three extra guards a hand-edited file needs: duplicate keys are
errors (plain YAML silently keeps the last), anchors/aliases are refused (they are never needed
in a run file and enable "billion laughs" expansion), and huge files are refused before parsing.
Saving writes every setting, in schema order, each with its one-line hint as a comment.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from .. import families
from ..atomic import read_regular_file, write_bytes_atomic
from ..problems import Problem, ProblemError, error, warning
from .settings_model import QUICK_PICKS
from .runconfig import SCHEMA_VERSION, SETTINGS, RunConfig, parse_nested
from .validation import validate_values

MAX_RUN_FILE_BYTES = 1_000_000


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys and aliases, and reads booleans as YAML 1.2 does."""


# YAML 1.1 (PyYAML's default) reads yes/no/on/off as booleans, so `mixed_precision: no` would arrive
# as False and no longer name the choice "no" that Kohya users write. Only true/false are booleans
# here; a bool setting still accepts yes/no/on/off as words (values.py).
_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_StrictLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                    list("tTfF"))


def _mapping_without_duplicates(loader, node, deep=False):  # noqa: ANN001
    seen: dict[Any, Any] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key '{key}'", key_node.start_mark)
        seen[key] = True
    return loader.construct_mapping(node, deep=deep)


class _NoAliasComposer(_StrictLoader):
    def compose_node(self, parent, index):  # noqa: ANN001
        if self.check_event(yaml.events.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "anchors and aliases (&name / *name) are not supported in run files",
                                              event.start_mark)
        return super().compose_node(parent, index)


_NoAliasComposer.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def load_yaml_text(text: str, source: str) -> Any:
    """Parse YAML text safely; problems raise ProblemError naming the file, line and column."""
    if len(text.encode("utf-8", "ignore")) > MAX_RUN_FILE_BYTES:
        raise ProblemError([error(source, f"file is larger than {MAX_RUN_FILE_BYTES // 1000} kB", "a run file is a few kB; is this the right file?")])
    if _flow_depth(text) > MAX_FLOW_DEPTH or _deepest_indent(text) > MAX_INDENT:
        # the YAML scanner slows down with the square of the depth: refuse before it starts
        raise ProblemError([error(source, "is nested too deeply to be a run file",
                                  "a run file has sections one level deep; is this the right file?")])
    try:
        return yaml.load(text, Loader=_NoAliasComposer)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source} line {mark.line + 1}, column {mark.column + 1}" if mark else source
        problem = (exc.problem or str(exc)).strip()
        hint = "check the YAML syntax at that place"
        if "'\\t'" in problem or "tab" in problem.lower():
            problem, hint = "a tab character is used for indentation", "indent with spaces, not tabs"
        if "alias" in problem or "duplicate" in problem:
            hint = "remove the repeated key" if "duplicate" in problem else "write the value out in full"
        if "could not determine a constructor for the tag" in problem:
            tag = problem.rsplit("'", 2)[-2] if problem.count("'") >= 2 else ""
            problem = f"the YAML tag {tag.replace('tag:yaml.org,2002:', '!!')} is not allowed in run files".replace("  ", " ")
            hint = "remove the tag and write a plain value"
        raise ProblemError([error(where, problem, hint)]) from None
    except yaml.YAMLError as exc:
        raise ProblemError([error(source, f"not valid YAML: {exc}", "check the file's syntax")]) from None
    except RecursionError:
        raise ProblemError([error(source, "is nested too deeply to be a run file",
                                  "a run file has sections one level deep; is this the right file?")]) from None


MAX_FLOW_DEPTH = 64
MAX_INDENT = 256  # columns; a run file's deepest line is indented a few levels of two spaces


def _deepest_indent(text: str) -> int:
    return max((len(line) - len(line.lstrip(" ")) for line in text.splitlines()), default=0)


def _flow_depth(text: str) -> int:
    """The deepest nesting of [ ] and { } outside quotes: a linear look before the real parse."""
    depth = deepest = 0
    quote = None
    for char in text:
        if quote:
            if char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
        elif char == "\n":
            quote = None  # an apostrophe in a plain value or comment must not hide the rest
    return deepest


def read_run_text(path: str | os.PathLike) -> str:
    file = Path(path)
    data = read_regular_file(file, MAX_RUN_FILE_BYTES, what="run file",
                             too_large=f"file is larger than {MAX_RUN_FILE_BYTES // 1000} kB",
                             hint="a run file is a few kB; is this the right file?")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ProblemError([error(str(file), "is not UTF-8 text", "save the file as UTF-8")]) from None


def config_from_document(document: Any, source: str) -> tuple[RunConfig, list[Problem]]:
    """Typed config plus warnings; raises ProblemError with every error found."""
    document, old = old_family_flags(document)
    given, unreadable = parse_nested(document, source=source)
    unreadable = old + unreadable
    values, problems = validate_values(given, earlier=unreadable)
    if any(p.is_error for p in problems):
        raise ProblemError(problems)
    return RunConfig(values), problems


OLD_FLAGS = ("v2", "v_parameterization", "sdxl")  # the family booleans before `model.family`
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def old_family_flags(document: Any) -> tuple[Any, list[Problem]]:
    """Read the old `model.v2` / `model.v_parameterization` / `model.sdxl` booleans once, as `model.family`.

    Files written before `model.family` name the family with them; they keep loading, with a note
    that names the new key. After this nothing sees the booleans. A file that names both keeps its
    `model.family`, and booleans that contradict it are an error.
    """
    model = document.get("model") if isinstance(document, dict) else None
    if not isinstance(model, dict) or not any(flag in model for flag in OLD_FLAGS):
        return document, []
    model = dict(model)
    flags, problems = {}, []
    for flag in OLD_FLAGS:
        if flag not in model:
            continue
        raw = model.pop(flag)
        text = str(raw).strip().lower()
        if isinstance(raw, bool) or text in _TRUE + _FALSE:
            flags[flag] = raw if isinstance(raw, bool) else text in _TRUE
        else:
            problems.append(error(f"model.{flag}", f"{raw!r} is not true or false", "write model.family instead"))
    named = model.get("family")
    picked = QUICK_PICKS.get(model.get("quick_pick", "sd15"))  # a flag the file leaves out follows the pick
    implied = families.from_flags(**{**(families.get(picked["family"]).legacy_flags() if picked else {}), **flags})
    if named in families.REGISTRY:
        family = families.get(named)
        checked = OLD_FLAGS if families.split_by_prediction(family) else ("v2", "sdxl")  # v-prediction is free elsewhere
        problems += [error(f"model.{flag}", f"is {str(flags[flag]).lower()} but model.family is {named} "
                           f"({family.label})", f"remove '{flag}': model.family names the family")
                     for flag in checked if flag in flags and flags[flag] != family.legacy_flags()[flag]]
    elif named in (None, families.AUTO):
        model["family"] = implied
        expected = families.get(implied).legacy_flags()
        for flag in [flag for flag in flags if flags[flag] != expected[flag]]:
            # v2 with sdxl names no family; v-prediction on SD 1.x / SDXL is not a family of its own
            make = warning if flag == "v_parameterization" else error
            problems.append(make(f"model.{flag}", f"is {str(flags[flag]).lower()} but the file's other settings "
                                 f"name {families.label(implied)}, which it does not fit",
                                 f"write model.family (one of {', '.join(families.REGISTRY)}) instead of the old flags"))
    for flag in flags:
        problems.append(warning(f"model.{flag}", f"model.{flag} is the old spelling: write model.family: "
                                f"{model.get('family', implied)}", f"replace '{flag}' with 'family'; the wizard saves "
                                "the new key"))
    return {**document, "model": model}, problems


def load_run_file(path: str | os.PathLike) -> tuple[RunConfig, list[Problem]]:
    """Load and validate a run file: (config, warnings), or ProblemError listing every error."""
    source = str(path)
    return config_from_document(load_yaml_text(read_run_text(path), source), source)


def dump_run_yaml(config: RunConfig) -> str:
    """The run file's text: every setting with its hint as a comment, in schema order."""
    lines = ["# tui-lora run file. Edit by hand or with `tui-lora edit <file>`;",
             "# `tui-lora validate <file>` checks it. Empty values take their defaults.",
             f"version: {SCHEMA_VERSION}"]
    current = None
    # Grouped by section in order of first appearance: a section's settings may be declared in
    # several schema modules, and a YAML mapping must not repeat a key.
    first_seen: dict[str | None, int] = {}
    for index, setting in enumerate(SETTINGS):
        first_seen.setdefault(setting.section, index)
    for s in sorted(SETTINGS, key=lambda setting: first_seen[setting.section]):
        section = s.section
        indent = "  " if section else ""
        if section != current:
            current = section
            if section:
                lines.append(f"\n{section}:")
        lines.append(f"{indent}# {s.hint}")
        value = config.values[s.key]
        if s.model_default is not None and s.kind == "str" and value == s.model_default(config.values):
            value = None  # follows the quick pick, so editing the pick alone stays consistent
        lines.append(f"{indent}{s.name}:{_scalar_text(value, indent)}")
        if not section:
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _scalar_text(value: Any, indent: str) -> str:
    if value is None:
        return ""
    if isinstance(value, list) and value and any(isinstance(x, (dict, str)) for x in value):
        body = yaml.safe_dump(value, default_flow_style=False, allow_unicode=True, sort_keys=False, width=1000)
        return "\n" + "\n".join(f"{indent}  {line}" for line in body.rstrip().splitlines())
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=1000).strip()
    if text.endswith("\n..."):
        text = text[: -len("\n...")]
    text = text.removesuffix("...").strip()
    return " " + text


def write_text_atomic(path: str | os.PathLike, text: str, *, overwrite: bool = False) -> Path:
    """Write all at once (see engine.atomic); never replaces an existing file unless `overwrite`."""
    target = Path(path)
    if target.exists() and not overwrite:
        raise FileExistsError(str(target))
    return write_bytes_atomic(target, text.encode("utf-8"))


def save_run_file(config: RunConfig, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    return write_text_atomic(path, dump_run_yaml(config), overwrite=overwrite)
