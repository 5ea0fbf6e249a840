"""Reading `queue.json` into typed values, checking its shape first.

The file is the tool's own, but a crash of another program, a sync tool or a hand edit can leave
anything in it: `[]`, `null` entries, text where numbers belong. Every path through it is checked
here, once, and a wrong shape becomes a `QueueDamaged` that names the place and the fix (move the
file aside: it is never deleted for the user). No torch here.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, fields
from typing import Any, get_args, get_origin, get_type_hints

REQUIRED = ("id", "source", "snapshot", "cwd", "name", "output")


class QueueTrouble(RuntimeError):
    """The queue's files cannot be used now; the message says why and what to do."""


class QueueDamaged(QueueTrouble):
    """`queue.json` (or a file beside it) is not in the shape the queue writes."""


def damaged(path, what: str) -> QueueDamaged:
    return QueueDamaged(f"{path} is damaged: {what}; move it aside (e.g. `mv {path} {path}.damaged`, "
                        "which keeps it) and the queue starts empty")


def _kind(value: Any) -> str:
    return {bool: "true/false", int: "a whole number", float: "a number", str: "text", list: "a list",
            dict: "an object", type(None): "null"}.get(type(value), type(value).__name__)


def _fits(value: Any, hint: Any) -> bool:
    origin = get_origin(hint)
    if origin is list:
        (item,) = get_args(hint) or (Any,)
        return isinstance(value, list) and all(_fits(v, item) for v in value)
    if hint is Any:
        return True
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if get_origin(hint) is dict:
        return isinstance(value, dict)
    return isinstance(value, hint)


def _field_types(cls) -> dict[str, Any]:
    return get_type_hints(cls)


def typed_entry(cls, data: Any, where: str, path) -> Any:
    """An entry (the dataclass `cls`) from its JSON object; QueueDamaged naming `where` otherwise."""
    if not isinstance(data, dict):
        raise damaged(path, f"{where} is {_kind(data)}, not an object")
    hints = _field_types(cls)
    for name in REQUIRED:
        if name not in data:
            raise damaged(path, f"{where} has no '{name}'")
    values = {}
    for spec in fields(cls):
        if spec.name not in data:
            if spec.default is MISSING and spec.default_factory is MISSING:
                raise damaged(path, f"{where} has no '{spec.name}'")
            continue
        value = data[spec.name]
        if not _fits(value, hints[spec.name]):
            raise damaged(path, f"{where}.{spec.name} is {_kind(value)} ({json.dumps(value)[:40]}), "
                                f"not {_kind(_example(hints[spec.name]))}")
        values[spec.name] = float(value) if hints[spec.name] is float else value
    return cls(**values)


def _example(hint: Any) -> Any:
    return {bool: True, int: 1, float: 1.5, str: ""}.get(hint, [] if get_origin(hint) is list else {})


def typed_state(text: str, path, entry_cls) -> dict[str, Any]:
    """The top level of queue.json as checked values: entries (typed), paused, pause_reason, next_id, batch."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, ValueError) as exc:
        raise damaged(path, f"not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise damaged(path, f"the file holds {_kind(data)}, not the queue's object")
    entries = data.get("entries", [])
    if not isinstance(entries, list):
        raise damaged(path, f"'entries' is {_kind(entries)}, not a list")
    typed = [typed_entry(entry_cls, item, f"entries[{index}]", path) for index, item in enumerate(entries)]
    ids = [e.id for e in typed]
    if len(set(ids)) != len(ids):
        raise damaged(path, "two entries have the same id")
    checks = {"paused": (bool, False), "pause_reason": (str, ""), "next_id": (int, 1), "batch": (int, 0)}
    values: dict[str, Any] = {"entries": typed}
    for name, (kind, default) in checks.items():
        value = data.get(name, default)
        if not _fits(value, kind):
            raise damaged(path, f"'{name}' is {_kind(value)}, not {_kind(_example(kind))}")
        values[name] = value
    values["next_id"] = max([values["next_id"], *(i + 1 for i in ids)])  # never hand out an id twice
    return values
