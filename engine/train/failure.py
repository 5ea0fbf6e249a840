"""A training failure the user can act on."""

from __future__ import annotations


class TrainingFailure(Exception):
    """A failure the user can act on: message plus concrete advice."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint
