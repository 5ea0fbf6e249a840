"""The help panel: the focused setting's full explanation, taken from the schema."""

from __future__ import annotations

from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import Static

from engine.config import Setting

from ..draft import field_text

WELCOME = ("Move with Tab / Shift+Tab. The explanation of the focused setting shows here (Ctrl+↓ / Ctrl+↑ "
           "scroll a long one); F1 opens it in full.")


def help_content(setting: Setting, *, disabled_reason: str | None = None, empty_text: str = "",
                 message: str = "") -> Content:
    """Title, explanation and facts (allowed values, default, Kohya name) of one setting."""
    facts = []
    allowed = setting.bounds_text()
    if allowed == "(or empty)":  # a free text or path: nothing to bound, but it may stay empty
        facts.append("May be left empty.")
    elif allowed:
        facts.append(f"Allowed: {allowed}{(' ' + setting.suffix) if setting.suffix else ''}.")
    default = field_text(setting, setting.default)
    if setting.model_default is not None:
        facts.append("Default: follows the base model.")
    elif setting.required:
        facts.append("Required.")
    elif default not in ("", None):
        facts.append(f"Default: {str(default).lower() if isinstance(default, bool) else default}.")
    if empty_text and not empty_text.startswith(("default:", "required")):
        facts.append(empty_text[0].upper() + empty_text[1:] + ".")
    facts.append(f"Run file: {setting.key}" + (f"; Kohya: {setting.kohya}." if setting.kohya else "."))
    parts: list = [(setting.label, "bold $accent"), "\n"]
    if message and not disabled_reason:
        parts += [(message, "bold"), "\n"]
    parts += [setting.help, "\n", (" ".join(facts), "dim")]
    if disabled_reason:
        parts += ["\n", (f"Not used now: {disabled_reason}.", "italic")]
    return Content.assemble(*parts)


class HelpPanel(VerticalScroll, can_focus=False):
    """Follows focus: shows whatever `show` was last given."""

    def compose(self):
        yield Static(Content(WELCOME), id="help-text")

    def show(self, content: Content) -> None:
        text = self.query_one("#help-text", Static)
        if str(text.visual) == str(content):
            return
        text.update(content)
        self.scroll_home(animate=False)

    @property
    def text(self) -> str:
        """The plain text shown (for tests and screen readers)."""
        return str(self.query_one("#help-text", Static).visual)
