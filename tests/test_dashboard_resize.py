"""The dashboard pushed by the wizard (the wizard's CSS loaded too) redraws every panel after the
terminal grows and shrinks, and keeps the Memory panel on screen on a small terminal."""

from __future__ import annotations

import pytest

from tests.test_dashboard_screen import make_run, screen_text, sync, wait_for
from tui_lora.dashboard.panels import Panel
from tui_lora.dashboard.screen import DashboardApp, DashboardScreen

PANELS = ("progress", "loss", "lr", "memory", "checkpoint", "log")


def _wizard_with_dashboard(run_dir):
    from tui_lora.app import WizardApp

    app = WizardApp()

    def push_dashboard() -> None:
        app.push_screen(DashboardScreen(run_dir))

    app.call_later(push_dashboard)
    return app


def _visible(app, panel_id: str) -> bool:
    """On screen, inside the terminal, with text inside its border."""
    widget = app.screen.query_one(f"#{panel_id}", Panel)
    region = widget.region
    screen = app.screen.region
    if not (widget.display and region.height >= 3 and region.width >= 10 and screen.contains_region(region)):
        return False
    lines = [strip.text for strip in app.screen._compositor.render_strips()][region.y + 1:region.bottom - 1]
    inner = [line[region.x + 1:region.right - 1].strip(" │╭╮╰╯─") for line in lines]
    return any(inner)


async def _all_panels_drawn(pilot, size) -> None:
    await pilot.resize_terminal(*size)
    await pilot.pause(0.3)
    panels = PANELS
    if pilot.app.screen.state.finished and size[1] < 32:  # the result takes the memory/checkpoint row
        panels = tuple(p for p in PANELS if p not in ("memory", "checkpoint")) + ("summary",)
    await wait_for(pilot, lambda: all(_visible(pilot.app, panel) for panel in panels), timeout=5)


@pytest.mark.parametrize("stream", ["normal_run", "lost_run"])
@pytest.mark.parametrize("opened_by", ["wizard", "monitor"])
@sync
async def test_every_panel_redraws_after_growing_and_shrinking(tmp_path, stream, opened_by):
    run = make_run(tmp_path, stream)
    app = _wizard_with_dashboard(run.path) if opened_by == "wizard" else DashboardApp(run.path, mouse=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen) and "step" in screen_text(app))
        if stream == "normal_run":  # finished: at 80x24 the result takes the memory/checkpoint row
            await wait_for(pilot, lambda: "COMPLETED" in screen_text(app))
        for size in ((100, 30), (120, 40), (80, 24), (120, 40)):
            await _all_panels_drawn(pilot, size)
            assert "loss" in screen_text(app).lower()


@pytest.mark.parametrize("opened_by", ["wizard", "monitor"])
@sync
async def test_memory_stays_visible_at_60_by_20(tmp_path, opened_by):
    run = make_run(tmp_path, "lost_run")
    app = _wizard_with_dashboard(run.path) if opened_by == "wizard" else DashboardApp(run.path, mouse=False)
    async with app.run_test(size=(60, 20)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen) and "step" in screen_text(app))
        await pilot.pause(0.3)
        assert _visible(app, "memory"), screen_text(app)
        assert _visible(app, "progress"), screen_text(app)
