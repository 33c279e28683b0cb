"""What every per-call loader does with its rows: one list per key, in the keys' order."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import TypeVar

Key = TypeVar("Key", bound=Hashable)
Item = TypeVar("Item")


def grouped_by(
    keys: Sequence[Key], items: Iterable[Item], key_of: Callable[[Item], Key]
) -> list[list[Item]]:
    """`items` (already in their display order) as one list per key of `keys`."""
    grouped: dict[Key, list[Item]] = defaultdict(list)
    for item in items:
        grouped[key_of(item)].append(item)
    return [grouped.get(key, []) for key in keys]


def one_each(
    keys: Sequence[Key], items: Iterable[Item], key_of: Callable[[Item], Key]
) -> list[Item | None]:
    """The item of each key of `keys` (None where there is none)."""
    found = {key_of(item): item for item in items}
    return [found.get(key) for key in keys]
