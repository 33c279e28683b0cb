"""Names people give things (teams, categories, scorecards): one rule for what is accepted."""

from __future__ import annotations

from app.core.errors import BadUserInput


def clean_name(name: str, *, max_chars: int, field: str) -> str:
    """`name` with each run of whitespace made one space; BAD_USER_INPUT on `field` when
    nothing is left, when it is longer than `max_chars`, or when it holds a NUL (which
    PostgreSQL text cannot store)."""
    cleaned = " ".join(name.split())
    if not cleaned:
        raise BadUserInput(f"{field} must not be empty", field=field)
    if len(cleaned) > max_chars:
        raise BadUserInput(f"{field} must be at most {max_chars} characters", field=field)
    if "\x00" in cleaned:
        raise BadUserInput(f"{field} must not contain a NUL character", field=field)
    return cleaned
