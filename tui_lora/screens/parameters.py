"""Step 3, Parameters: the schema's basic and advanced settings on two tabs."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import TabbedContent, TabPane

from engine.config import SETTINGS

from .form import FormScreen

TABS = {"basic": "Basic", "advanced": "Advanced"}


class ParametersScreen(FormScreen):
    STEP = 3
    SCHEMA_SCREENS = ("basic", "advanced")
    BINDINGS: ClassVar[list[BindingType]] = [Binding("ctrl+t", "switch_tab", "Basic/Advanced")]

    def compose_body(self) -> ComposeResult:
        with TabbedContent(id="tabs"):
            for screen, title in TABS.items():
                with TabPane(title, id=f"tab-{screen}"), VerticalScroll(can_focus=False, classes="tab-form"):
                    yield from self.compose_fields(screen)

    def action_switch_tab(self) -> None:
        tabs = self.query_one(TabbedContent)
        tabs.active = "tab-advanced" if tabs.active == "tab-basic" else "tab-basic"
        self.call_after_refresh(self._focus_first_in_tab)

    def _focus_first_in_tab(self) -> None:
        pane = self.query_one(TabbedContent).active_pane
        if pane is None:
            return
        for widget in pane.query("*"):
            if widget.focusable:
                widget.focus()
                return

    def focus_field(self, key: str) -> None:
        setting = SETTINGS.get(key)
        if setting is not None and setting.screen in TABS:
            self.query_one(TabbedContent).active = f"tab-{setting.screen}"
            self.call_after_refresh(super().focus_field, key)
            return
        super().focus_field(key)
