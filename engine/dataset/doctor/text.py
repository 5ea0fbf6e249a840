"""The doctor's report as plain text for a terminal or a log: findings by severity, each with its
advice, then the balance table, the tag table and the caption length. Wrapped to `width`."""

from __future__ import annotations

import textwrap

from .findings import DoctorReport, Finding

_MARKS = {"error": "✗", "warning": "!", "info": "·"}
_HEADINGS = {
    "error": "Errors: training would refuse to start",
    "warning": "Warnings: the LoRA would probably come out worse",
    "info": "Notes",
}
SHOWN_PER_CODE = 3  # findings of one kind listed before "… and N more"
# The report stays about one screen whatever the dataset's size (`--json` has everything):
FINDING_LINES = 36  # lines of findings in all, then "… N more findings"
MESSAGE_LINES = 3  # wrapped lines of one finding's message
CONCEPT_ROWS = 8  # rows of the balance table


def _wrap(text: str, width: int, first: str, rest: str) -> list[str]:
    return textwrap.wrap(text, width=width, initial_indent=first, subsequent_indent=rest,
                         break_long_words=True, break_on_hyphens=False) or [first.rstrip()]


def finding_lines(item: Finding, width: int = 80) -> list[str]:
    lines = _wrap(item.message, width, f"  {_MARKS[item.severity]} ", "    ")
    if len(lines) > MESSAGE_LINES:  # the file list goes on in --json
        lines = lines[:MESSAGE_LINES - 1] + [lines[MESSAGE_LINES - 1][: width - 2].rstrip() + " …"]
    lines += _wrap(item.advice, width, "    → ", "      ")
    return lines


def format_report(report: DoctorReport, width: int = 80) -> str:
    lines = [f"Dataset doctor: {report.images_dir}"]
    if report.regularization_dir:
        lines.append(f"regularisation: {report.regularization_dir}")
    cached = f" ({report.cached_count} from the cache)" if report.cached_count else ""
    lines.append(f"checked {report.image_count} images in {report.seconds:.1f} s{cached}")
    budget, left_out = FINDING_LINES, 0
    for severity in ("error", "warning", "info"):
        items = [f for f in report.findings if f.severity == severity]
        if not items:
            continue
        if budget <= 0:
            left_out += len(items)
            continue
        lines += ["", _HEADINGS[severity]]
        shown: dict[str, int] = {}
        for item in items:
            shown[item.code] = shown.get(item.code, 0) + 1
            if shown[item.code] > SHOWN_PER_CODE:
                continue
            block = finding_lines(item, width)
            if len(block) > budget:
                left_out += 1
                shown[item.code] -= 1
                budget = 0
                continue
            lines += block
            budget -= len(block)
        for code, count in shown.items():
            more = sum(f.code == code for f in items) - count
            if more > 0:
                lines.append(f"    … {more} more {code} (see --json)")
                budget -= 1
    if left_out:
        lines.append(f"  … {left_out} more findings (see --json)")
    lines += balance_lines(report, width)
    lines += tag_lines(report, width)
    counts = report.counts()
    verdict = "training would refuse to start" if counts["error"] else "training can start"
    lines += ["", f"Result: {counts['error']} error(s), {counts['warning']} warning(s), {counts['info']} note(s): {verdict}"]
    return "\n".join(lines)


def balance_lines(report: DoctorReport, width: int = 80) -> list[str]:
    balance = report.balance
    if balance is None or not balance.concepts:
        return []
    epochs = f"{balance.epochs} epoch" + ("s" if balance.epochs != 1 else "")
    lines = ["", f"Balance (batch size {balance.batch_size}, {epochs})"]
    name_width = min(28, max(len(c.name) for c in balance.concepts))
    for c in balance.concepts[:CONCEPT_ROWS]:
        name = c.name if len(c.name) <= name_width else c.name[: name_width - 1] + "…"
        if c.is_regularization:
            lines.append(f"  reg {name:<{name_width}} {c.images:>5} images × {c.repeats:<3} {c.draws:>6} draws per epoch")
        else:
            lines.append(f"  {name:<{name_width + 4}} {c.images:>5} images × {c.repeats:<3} {c.draws:>6} draws  "
                         f"{c.share:>4.0%} of each epoch")
    if len(balance.concepts) > CONCEPT_ROWS:
        lines.append(f"  … {len(balance.concepts) - CONCEPT_ROWS} more folders (see --json)")
    lines.append(f"  steps per epoch: {balance.steps_per_epoch}, total: {balance.total_steps}")
    if report.config_path is None:
        lines.append("  (defaults: give --config run.yaml for your batch size and epochs)")
    return lines


def tag_lines(report: DoctorReport, width: int = 80) -> list[str]:
    lines: list[str] = []
    tags = report.tags
    if tags and tags.captions:
        top = ", ".join(f"{t} {n}" for t, n in tags.top[:10])
        lines += [""] + _wrap(f"Tags in {tags.captions} captions: {top}", width, "", "  ")
        if tags.once:
            more = f" … ({len(tags.once)} in all)" if len(tags.once) > 8 else ""
            lines += _wrap(f"used once: {', '.join(tags.once[:8])}{more}", width, "  ", "  ")
    tokens = report.tokens
    if tokens and tags and tags.captions:
        how = f"counted with the tokenizer in {tokens.source}" if tokens.method == "tokenizer" else "estimated (no local tokenizer)"
        lines += _wrap(f"Longest caption: {tokens.longest} of {tokens.limit} tokens, {how}", width, "", "  ")
    return lines
