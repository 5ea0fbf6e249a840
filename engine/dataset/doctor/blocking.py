"""What stops training: the scan's errors, turned into findings with stable codes.

The doctor does not decide on its own what blocks a run: `scan_dataset` does, for the run, the
review screen and `validate` alike. Every scan error becomes an `error` finding here, and no other
check emits errors, so "the doctor exits 1" and "training refuses to start" are the same rule.
Image errors are grouped per folder and reason, so 40 truncated files make one finding.
"""

from __future__ import annotations

from pathlib import Path

from engine.problems import Problem

from .findings import Finding, counted, finding, verb

# (words in the scan's message, code, what it means, what to do)
_IMAGE_REASONS = (
    ("empty (0 bytes)", "images.zero_byte", "empty (0 bytes)", "copy them again from the original, or remove them"),
    ("truncated", "images.truncated", "truncated: the end of the image data is missing (an interrupted copy or download)",
     "copy or download them again, or remove them"),
    ("not an image PIL can read", "images.not_an_image", "not readable as images (damaged, or another kind of file with an image extension)",
     "re-export them as PNG or JPEG, or remove them"),
    ("permission denied", "images.permission", "not readable by this user (permissions)", "fix the files' permissions (e.g. chmod a+r)"),
    ("symlink that leads nowhere", "images.broken_link", "symlinks that lead nowhere", "fix or remove the links"),
    ("not a regular file", "images.not_a_file", "not files at all (a named pipe, a socket or a device file with an image's name)",
     "remove them, or put the images themselves there"),
    ("smaller than the bucket step", "images.too_small", "smaller than one bucket step (with buckets.no_upscale they fit no bucket)",
     "use larger images, or turn buckets.no_upscale off"),
)
_FOLDER_FIELDS = {"folders.images": "training", "folders.regularization": "regularisation"}


def blocking_findings(errors: list[Problem]) -> list[Finding]:
    grouped: dict[tuple[str, Path], list[Problem]] = {}
    found: list[Finding] = []
    for problem in errors:
        reason = next((r for r in _IMAGE_REASONS if r[0] in problem.message), None)
        if reason is not None:
            grouped.setdefault((reason[1], Path(problem.field).parent), []).append(problem)
        elif problem.field in _FOLDER_FIELDS:
            code = "layout.folder_missing" if "does not exist" in problem.message or "is a file" in problem.message else "layout.no_images"
            found.append(finding(code, "error", f"{_FOLDER_FIELDS[problem.field]} folder: {problem.message}",
                                 problem.hint or "check folders in the run file", [problem.field]))
        elif Path(problem.field).is_absolute() or "/" in problem.field:
            found.append(finding("images.unreadable", "error", f"{Path(problem.field).name}: {problem.message}",
                                 problem.hint or "fix or remove the file", [problem.field]))
        else:
            found.append(finding("settings.invalid", "error", f"{problem.field}: {problem.message}",
                                 problem.hint or f"fix {problem.field} in the run file", [problem.field]))
    for (code, folder), problems in grouped.items():
        _, _, meaning, advice = next(r for r in _IMAGE_REASONS if r[1] == code)
        names = ", ".join(Path(p.field).name + _kind(p.message) for p in problems[:3]) + (
            f" … {len(problems) - 3} more" if len(problems) > 3 else "")
        found.append(finding(code, "error", f"{counted(len(problems), 'image')} in `{folder.name}` {verb(len(problems), 'is', 'are')} {meaning} "
                             f"({names}); training refuses to start",
                             advice, [p.field for p in problems]))
    return found


def _kind(message: str) -> str:
    """What a name that is no file really is, from the scan's message (" (a named pipe (FIFO))")."""
    return f" ({message.split(' but ', 1)[1]})" if "not a regular file but " in message else ""
