"""Settings whose name changed: run files written with the old name still load, with a note.

Each entry maps the old dotted key to the new one. The value is read as the new setting's, so the
run does what the file says; the warning names the new key so the next save uses it (the wizard
and `dump_run_yaml` only ever write new names).
"""

from __future__ import annotations

from ..problems import Problem, warning

RENAMED = {
    # The Kohya option is num_cpu_threads_per_process: the count is per process, never per core.
    "training.cpu_threads_per_core": "training.cpu_threads_per_process",
}


def renamed_note(old: str, both: bool) -> Problem:
    new = RENAMED[old]
    if both:
        return warning(old, f"is the old name of {new}, which the file also sets; the value of {new} is used",
                       f"remove '{old.split('.')[-1]}'")
    return warning(old, f"is the old name of {new}; read as {new}",
                   f"rename it to '{new.split('.')[-1]}'; the wizard saves the new name")
