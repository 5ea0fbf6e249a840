"""Problems found in a run file, a dataset or a model: data, not exceptions.

Every check in the engine reports through `Problem` so the CLI can print it, the wizard can show it
at the field it names, and tests can assert on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One finding. `field` is a setting path (`network.alpha`) or a file path, never empty."""

    field: str
    message: str
    hint: str = ""
    severity: Severity = "error"

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def __str__(self) -> str:
        text = f"{self.severity}: {self.field}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text


def error(field: str, message: str, hint: str = "") -> Problem:
    return Problem(field, message, hint, "error")


def warning(field: str, message: str, hint: str = "") -> Problem:
    return Problem(field, message, hint, "warning")


class ProblemError(Exception):
    """Raised when problems with severity "error" stop an action; carries all of them."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.is_error]
