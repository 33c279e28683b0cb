"""The one error the analyzer raises for a call that must end FAIL."""

from __future__ import annotations


class AnalysisError(Exception):
    """A failure that ends the call FAIL; `str(error)` is safe to show to the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
