"""Cleaning up after a save a kill interrupted: temporary files and a half-renamed state folder.

Both the start of a run (entry) and the end of an aborted one (reservation) clean up, so this sits
below both.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..output_names import save_stem_pattern

# `.<name>.safetensors.<random>.partial` (lorafile.io) and `.<name>.yaml.<random>.tmp` (run-file copy)
_TEMP_KINDS = r"\.(?:safetensors\.[^/]+\.partial|ckpt\.[^/]+\.partial|yaml\.[^/]+\.tmp)"


def clean_interrupted_saves(output: Path, output_name: str) -> list[str]:
    """Remove temporary files a killed save of this output name left behind, and put back a state
    folder a kill caught between its two renames. Returns the names removed."""
    pattern = re.compile(r"\." + save_stem_pattern(output_name) + _TEMP_KINDS + r"$")  # the one save-name rule
    removed = []
    try:
        entries = list(output.iterdir())
    except OSError:
        return []
    for path in entries:
        if pattern.match(path.name) and path.is_file():
            try:
                path.unlink()
                removed.append(path.name)
            except OSError:
                pass
    from .resume_state import recover_state_folders  # it loads torch: only a run that reaches here pays for it

    return removed + recover_state_folders(output, output_name)
