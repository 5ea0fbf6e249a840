"""The settings reference (docs/settings.md), written from the schema.

    python -m engine.config.reference > docs/settings.md

A test compares the file with this output, so the reference cannot drift from the schema: after
adding or changing a setting, run the command above and commit the result.
"""

from __future__ import annotations

import json
from typing import Any

from .runconfig import SCHEMA_VERSION, SETTINGS, complete
from ..schema import Setting

COMMAND = "python -m engine.config.reference > docs/settings.md"
_SCREENS = {"model": "Model", "folders": "Folders", "basic": "Parameters › Basic", "advanced": "Parameters › Advanced"}


def render_reference() -> str:
    """The whole reference as Markdown, one table per section, then each setting's explanation."""
    defaults = complete({})
    lines = [
        "# Settings reference",
        "",
        f"<!-- Generated from engine/config by `{COMMAND}`; do not edit by hand. -->",
        "",
        f"Every setting a run file (YAML, `version: {SCHEMA_VERSION}`) can hold, as the schema in",
        "`engine/config` defines it. Keys are `section.name`; every key is optional except",
        "`folders.images`, and a missing key takes its default. \"Kohya key\" is the name in Kohya SS GUI",
        "`.json` configs, which `tui-lora import-kohya` reads. The wizard shows the same explanations.",
    ]
    for section in SETTINGS.sections():
        members = [s for s in SETTINGS if s.section == section]
        lines += ["", f"## {section or 'Top level'}", "",
                  "| key | Kohya key | values | default | wizard screen | what it does |",
                  "|---|---|---|---|---|---|"]
        lines += [_row(s, defaults) for s in members]
        lines.append("")
        for s in members:
            lines += [f"**`{s.key}`** — {s.label}. {_cell(s.help)}", ""]
        lines.pop()
    return "\n".join(lines) + "\n"


def _row(s: Setting, defaults: dict[str, Any]) -> str:
    cells = [f"`{s.key}`", f"`{s.kohya}`" if s.kohya else "—", _values(s), _default(s, defaults),
             _SCREENS[s.screen], s.hint]
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _values(s: Setting) -> str:
    text = s.bounds_text() if s.kind in ("bool", "choice", "int", "float", "pair", "int_list") else {
        "str": "text", "path": "a path", "list": "a list of key=value texts",
        "prompts": "a list of prompts (text, or {prompt, negative, seed, steps, cfg, width, height})",
        "subsets": "a list of {image_dir, num_repeats, is_reg, caption_extension, class_tokens, keep_tokens, "
                   "shuffle_caption, flip_aug, color_aug, random_crop, caption_dropout_rate}",
    }[s.kind]
    if s.kind in ("str", "path", "list") and s.optional:
        text += " (or empty)"
    return text + (f" ({s.suffix})" if s.suffix else "")


def _default(s: Setting, defaults: dict[str, Any]) -> str:
    if s.model_default is not None:
        return f"from the model ({defaults['model.quick_pick']}: {_as_text(defaults[s.key])})"
    if s.default in (None, "", []):
        return f"empty: {s.empty_means}" if s.empty_means else "empty"
    return _as_text(s.default)


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


if __name__ == "__main__":
    print(render_reference(), end="")
