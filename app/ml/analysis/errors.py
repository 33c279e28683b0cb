"""The one error the analyzer raises for a call that must end FAIL."""

from __future__ import annotations

from app.core.errors import ProcessingError


class AnalysisError(ProcessingError):
    """A failure that ends the call FAIL; `str(error)` is safe to show to the user."""
