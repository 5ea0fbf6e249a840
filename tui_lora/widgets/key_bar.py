"""The footer: every key the current screen offers, as one line of text.

Textual's Footer rebuilds its key widgets whenever focus moves, which on a form of sixty fields
makes every Tab re-lay-out the whole screen. This bar is a single widget that redraws only when
the text actually changes. Keys that cannot act now are shown dimmed.
"""

from __future__ import annotations

from textual.content import Content
from textual.screen import Screen
from textual.widgets import Static


class KeyBar(Static):
    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: 1;
        background: $panel;
        padding: 0 1;
    }
    """

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self.bindings_changed)
        self.call_after_refresh(self.bindings_changed, self.screen)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def bindings_changed(self, screen: Screen) -> None:
        if not self.is_attached or screen is not self.screen:
            return
        content = self.render_keys()
        if str(content) != str(self.visual):
            self.update(content, layout=False)

    def render_keys(self) -> Content:
        parts: list = []
        seen: set[str] = set()
        palette = None
        for _node, binding, enabled, _tooltip in self.screen.active_bindings.values():
            if binding.action == "app.command_palette" or binding.key == self.app.COMMAND_PALETTE_BINDING:
                palette = (binding, enabled)
                continue
            if not binding.show or binding.action in seen:
                continue
            seen.add(binding.action)
            key_style, text_style = ("bold $accent", "") if enabled else ("dim", "dim")
            parts += [(self.app.get_key_display(binding), key_style), " ", (binding.description, text_style), "  "]
        if palette is not None and self.app.ENABLE_COMMAND_PALETTE:
            parts += [(self.app.get_key_display(palette[0]), "bold $accent"), " palette"]
        return Content.assemble(*parts)

    @property
    def text(self) -> str:
        return str(self.visual)
