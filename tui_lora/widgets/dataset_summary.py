"""The live dataset summary on the Folders screen: what a run over these folders will see."""

from __future__ import annotations

from typing import Any

from textual.content import Content
from textual.widgets import Static

_SHOWN_PROBLEMS = 6
_SHOWN_BUCKETS = 6


def summary_content(summary: Any) -> Content:
    """Concepts, images × repeats, captions found/missing, buckets, steps per epoch, problems."""
    parts: list = [("Dataset", "bold $accent"), "\n"]
    if not summary.concepts:
        parts.append(("no concept folders found yet\n", "dim"))
    for concept in summary.concepts:
        kind = "reg  " if concept.is_regularization else ""
        captions = f"captions {concept.captions_found} found"
        if concept.captions_missing:
            captions += f", {concept.captions_missing} missing (use the folder's words)"
        parts.append(f"  {kind}{concept.name}: {concept.image_count} images × {concept.repeats} repeats; {captions}\n")
    parts.append(f"Training images with repeats: {summary.num_train_images}")
    if summary.num_reg_images:
        parts.append(f"; regularisation: {summary.num_reg_images} with repeats, "
                     f"{summary.num_reg_images_used} drawn per epoch")
    parts.append("\n")
    if summary.buckets:
        shown = list(summary.buckets.items())[:_SHOWN_BUCKETS]
        text = ", ".join(f"{w}×{h}: {n}" for (w, h), n in shown)
        more = len(summary.buckets) - len(shown)
        parts.append(f"Buckets ({len(summary.buckets)}): {text}{f', … {more} more' if more > 0 else ''}\n")
    parts.append((f"Steps per epoch: {summary.steps_per_epoch}", "bold"))
    parts.append(("  (at the current batch size)", "dim"))
    for problem in summary.problems[:_SHOWN_PROBLEMS]:
        parts.append("\n")
        word, style = ("✗ error", "$error") if problem.is_error else ("! warning", "$warning")
        hint = f" ({problem.hint})" if problem.hint else ""
        parts.append((f"{word}: {problem.field}: {problem.message}{hint}", style))
    if len(summary.problems) > _SHOWN_PROBLEMS:
        parts.append(f"\n… and {len(summary.problems) - _SHOWN_PROBLEMS} more")
    return Content.assemble(*parts)


class DatasetSummaryView(Static):
    """Shows a scan result, a 'scanning' line or why there is nothing to show."""

    def show_waiting(self, text: str) -> None:
        self.update(Content.assemble(("Dataset", "bold $accent"), "\n", (text, "dim")))

    def show_summary(self, summary: Any) -> None:
        self.update(summary_content(summary))
