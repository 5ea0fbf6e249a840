"""Step 1, Model: the quick pick sets the family flags and the path; a typed path is checked.

The check (does it exist, folder or single file, which family) reads config files or a file
header, so it runs in a worker thread after typing pauses, and reports back as a message.
"""

from __future__ import annotations

from textual import work
from textual.message import Message

from engine import families
from engine.families.detect import check_family
from engine.problems import Problem, warning

from ..checks import ModelCheck, describe_model
from .form import FormScreen

_CHECK_DELAY = 0.3  # seconds of no typing before the path is checked


class ModelScreen(FormScreen):
    STEP = 1
    SCHEMA_SCREENS = ("model",)

    class Checked(Message):
        def __init__(self, path: str, check: ModelCheck):
            super().__init__()
            self.path = path
            self.check = check

    def __init__(self) -> None:
        super().__init__()
        self.check: ModelCheck | None = None
        self.checked_path: str | None = None
        self._timer = None

    def on_mount(self) -> None:
        super().on_mount()
        self.schedule_check()

    def model_path(self) -> str:
        return str(self.draft.typed()["model.path"] or "")

    def value_changed(self, key: str) -> None:
        if key == "model.quick_pick":
            for flag in self.draft.apply_quick_pick():
                self.set_field(flag, self.draft.values[flag])
        if key in ("model.quick_pick", "model.path", "model.config_dir"):
            self.schedule_check()

    @property
    def checks_pending(self) -> bool:
        return self._timer is not None

    def schedule_check(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(_CHECK_DELAY, self.start_check)

    def start_check(self) -> None:
        self._timer = None
        path = self.model_path()
        config_dir = self.draft.typed()["model.config_dir"]
        self.run_check(path, config_dir)

    @work(thread=True, exclusive=True, group="model-check", exit_on_error=False)
    def run_check(self, path: str, config_dir: str | None) -> None:
        self.post_message(self.Checked(path, describe_model(path, config_dir)))

    def on_model_screen_checked(self, message: Checked) -> None:
        if message.path != self.model_path():
            return  # an older answer; a newer check is on its way
        is_new_path = message.path != self.checked_path
        self.check, self.checked_path = message.check, message.path
        custom = self.draft.values["model.quick_pick"] == "custom"
        if custom and is_new_path and message.check.family:
            # a path that was just typed: set the family to what the model is
            self.set_field("model.family", message.check.family)
        self.refresh_fields()

    def extra_problems(self) -> list[Problem]:
        if self.check is None or self.checked_path != self.model_path():
            return []
        problems = list(self.check.problems)
        if self.check.kind == "hub":
            # A hub model missing from this machine's cache is not a reason to stop: the run file
            # may be meant for another machine, and training says so clearly. Shown, not blocking.
            problems = [warning(p.field, p.message, p.hint) for p in problems]
        family = self.check.family
        typed = self.draft.typed()
        requested = families.requested_family(typed)
        if family and self.draft.values["model.quick_pick"] == "custom" and requested != families.AUTO:
            problems += check_family(family, requested, source=self.checked_path)
        return problems

    def notes(self) -> dict[str, str]:
        if self.check is None or self.checked_path != self.model_path():
            return {"model.path": "checking…"}
        return {"model.path": self.check.summary}
