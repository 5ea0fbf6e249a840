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
SHOWN_PER_CODE = 5  # findings of one kind listed before "… and N more"


def _wrap(text: str, width: int, first: str, rest: str) -> list[str]:
    return textwrap.wrap(text, width=width, initial_indent=first, subsequent_indent=rest,
                         break_long_words=True, break_on_hyphens=False) or [first.rstrip()]


def finding_lines(item: Finding, width: int = 80) -> list[str]:
    lines = _wrap(item.message, width, f"  {_MARKS[item.severity]} ", "    ")
    lines += _wrap(item.advice, width, "    → ", "      ")
    return lines


def format_report(report: DoctorReport, width: int = 80) -> str:
    lines = [f"Dataset doctor: {report.images_dir}"]
    if report.regularization_dir:
        lines.append(f"regularisation: {report.regularization_dir}")
    cached = f" ({report.cached_count} from the cache)" if report.cached_count else ""
    lines.append(f"checked {report.image_count} images in {report.seconds:.1f} s{cached}")
    for severity in ("error", "warning", "info"):
        items = [f for f in report.findings if f.severity == severity]
        if not items:
            continue
        lines += ["", _HEADINGS[severity]]
        shown: dict[str, int] = {}
        for item in items:
            shown[item.code] = shown.get(item.code, 0) + 1
            if shown[item.code] <= SHOWN_PER_CODE:
                lines += finding_lines(item, width)
        for code, count in shown.items():
            if count > SHOWN_PER_CODE:
                lines.append(f"    … and {count - SHOWN_PER_CODE} more {code} (see --json)")
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
    for c in balance.concepts:
        name = c.name if len(c.name) <= name_width else c.name[: name_width - 1] + "…"
        if c.is_regularization:
            lines.append(f"  reg {name:<{name_width}} {c.images:>5} images × {c.repeats:<3} {c.draws:>6} draws per epoch")
        else:
            lines.append(f"  {name:<{name_width + 4}} {c.images:>5} images × {c.repeats:<3} {c.draws:>6} draws  "
                         f"{c.share:>4.0%} of each epoch")
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
