"""Keys and words a new user meets (issue 26): one step per Ctrl+N, footers that offer only what
works there, the dashboard's own help, what `monitor` says on leaving, descriptions in every
`--help`, the demo's closing words at 80 columns, Review on a machine without a GPU, Tab in a path."""

from __future__ import annotations

import os

from textual import events

from tests.test_dashboard_screen import make_run, screen_text, sync, wait_for
from tui_lora.app import WizardApp
from tui_lora.draft import Draft
from tui_lora.screens.form import FormScreen

from . import wizard_support
from .wizard_support import open_step, run_async, settle

dataset = wizard_support.dataset
wizard_env = wizard_support.wizard_env


def draft(**values) -> Draft:
    return Draft({"model.quick_pick": "builtin-tiny-sd1", "folders.images": "dataset/images", **values})


def footer_keys(app) -> dict[str, str]:
    """What the footer offers: shown and enabled bindings, key -> words."""
    return {key: active.binding.description for key, active in app.screen.active_bindings.items()
            if active.binding.show and active.enabled}


@run_async
async def test_ctrl_n_pressed_twice_while_a_step_opens_moves_one_step(dataset):
    from tui_lora.screens.parameters import ParametersScreen

    app = WizardApp(draft())
    async with app.run_test(size=(80, 24)) as pilot:
        await open_step(pilot, 2)
        # Both presses queue before the next step is built, as on a busy machine.
        app.post_message(events.Key("ctrl+n", None))
        app.post_message(events.Key("ctrl+n", None))
        await settle(pilot)
        await pilot.pause(0.5)
        assert isinstance(app.screen, ParametersScreen)
        assert app.focused is not None and app.screen.focused is not None  # a field has focus on arrival
        await pilot.press("ctrl+n")  # a press after it opened moves on as usual
        await settle(pilot)
        assert type(app.screen).__name__ == "ReviewScreen"


@run_async
async def test_save_shows_only_on_the_steps_and_the_palette_key_is_named(wizard_env):
    app = WizardApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        keys = footer_keys(app)
        assert "ctrl+s" not in keys and keys.get("ctrl+q") == "Quit"
        await pilot.press("n")
        await settle(pilot)
        assert isinstance(app.screen, FormScreen) and footer_keys(app).get("ctrl+s") == "Save"


@sync
async def test_the_dashboard_from_the_wizard_has_its_own_help_and_one_quit(tmp_path):
    from tui_lora.dashboard.screen import DashboardScreen

    os.environ.setdefault("XDG_STATE_HOME", str(tmp_path / "state"))
    run = make_run(tmp_path, "normal_run")
    app = WizardApp()
    app.call_later(lambda: app.push_screen(DashboardScreen(run.path, q_word=None)))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen) and "COMPLETED" in screen_text(app))
        keys = footer_keys(app)
        assert list(keys.values()).count("Quit") == 1 and "ctrl+s" not in keys
        await pilot.press("f1")
        await wait_for(pilot, lambda: "Dashboard keys" in screen_text(app))
        text = screen_text(app)
        assert "detach" in text and "Ctrl+N" not in text and "next step" not in text


@sync
async def test_q_on_a_dashboard_over_the_queue_says_back(tmp_path):
    from tui_lora.screens.queue import queue_dashboard

    run = make_run(tmp_path, "normal_run")
    from tui_lora.dashboard.screen import DashboardApp

    app = DashboardApp(run.path, mouse=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.push_screen(queue_dashboard(str(run.path), "queue 1/1"))
        await pilot.pause(0.3)
        assert footer_keys(app).get("q") == "Back"


def test_monitor_says_the_run_goes_on_after_detach():
    from tui_lora.dashboard import farewell

    words = farewell("detach", "20261208-abc")
    assert "goes on in the background" in words and "tui-lora monitor 20261208-abc" in words
    assert "tui-lora runs" in farewell("quit", "x")


def test_every_subcommand_help_has_a_description():
    from tui_lora.cli import _parser

    parser = _parser()
    (commands,) = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    seen = 0
    for name, sub in commands.choices.items():
        assert sub.description, name
        seen += 1
        for action in sub._actions:
            if action.__class__.__name__ == "_SubParsersAction":
                for inner, inner_sub in action.choices.items():
                    assert inner_sub.description, f"{name} {inner}"
    assert seen >= 9


def test_the_demos_closing_words_break_between_words_at_80_columns(monkeypatch):
    import shutil

    from tui_lora.commands.demo import wrapped

    monkeypatch.setattr(shutil, "get_terminal_size", lambda fallback=(80, 24): os.terminal_size((80, 24)))
    text = ("This one was trained on a tiny random model, so it only shows the workflow; for a real LoRA run "
            "`tui-lora` and pick your base model, or edit the run file and `tui-lora train` it.")
    lines = wrapped(text).splitlines()
    assert len(lines) > 1 and all(len(line) <= 79 for line in lines)
    assert " ".join(line.strip() for line in lines) == text  # nothing cut inside a word


def test_review_on_a_machine_without_a_gpu_says_the_cpu(monkeypatch):
    from tui_lora.widgets.vram_panel import vram_content

    values = Draft({"model.quick_pick": "builtin-tiny-sd1"}).typed()
    content, fixes = vram_content(values, None, (None, ""))
    assert "No GPU found on this machine: the run will train on the CPU" in content.plain
    assert "GPU memory" not in content.plain and fixes == []
    planned, _ = vram_content({**values, "hardware.vram_gb": 12}, None, (12 * 1024 ** 3, "hardware.vram_gb"))
    assert "GPU memory" in planned.plain


@run_async
async def test_tab_takes_the_path_completion(dataset, wizard_env):
    from tests.wizard_support import tab_to

    app = WizardApp(draft(**{"folders.images": ""}))
    async with app.run_test(size=(80, 24)) as pilot:
        await open_step(pilot, 2)
        field = await tab_to(pilot, "folders.images")
        for key in "datas":
            await pilot.press(key)
        await pilot.pause(0.5)
        await pilot.press("tab")
        await pilot.pause(0.2)
        assert field.control.value.startswith("dataset") and field.control.has_focus  # completed, still here
        await pilot.press("tab")  # nothing left to complete: on to the next field
        await pilot.pause(0.2)
        assert not field.control.has_focus


@sync
async def test_monitor_names_the_run_while_the_model_loads(tmp_path):
    """Before run_started (minutes of model loading) the header names the run from its registered file."""
    from engine.config import RunConfig, dump_run_yaml
    from engine.runs import RunDir
    from tui_lora.dashboard.panels import RunHeader
    from tui_lora.dashboard.screen import DashboardApp

    run = RunDir(tmp_path / "out" / ".runs" / "20261208-loading")
    run.path.mkdir(parents=True)
    run.config_copy.write_text(dump_run_yaml(RunConfig.from_values({"folders.output_name": "my_character"})))
    run.events.write_text('{"type":"phase","time":1,"seq":1,"name":"loading_model","label":"loading the model"}\n')
    app = DashboardApp(run.path, mouse=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.5)
        header = app.screen.query_one(RunHeader).render().plain
        assert header.startswith("tui-lora · my_character"), header


def test_the_step_bar_says_which_step_is_opening():
    from tui_lora.widgets.step_bar import StepBar

    bar = StepBar(2)
    text = bar.build("opening Parameters…", False, 78).plain
    assert text.endswith("opening Parameters…") and "2 Folders" in text and len(text) <= 78
