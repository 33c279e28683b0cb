"""One page of a cursor-paginated list (calls, audit events), as the services return it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

Row = TypeVar("Row")


@dataclass(frozen=True, slots=True)
class Page(Generic[Row]):
    rows: Sequence[Row]
    total_count: int
    """Rows matching the filters, on every page."""
    has_next_page: bool
    has_previous_page: bool
