"""What every loader of this package shares: a short session per batch, and the batch's
rows handed back one list (or one row) per key, in the keys' order."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, TypeVar

from sqlalchemy import Executable
from strawberry.dataloader import DataLoader

from app.db.engine import SessionFactory

Key = TypeVar("Key", bound=Hashable)
Value = TypeVar("Value")
Item = TypeVar("Item")


class SessionLoader(DataLoader[Key, Value]):
    """A DataLoader whose `fetch` reads in its own short session: sibling fields resolve
    concurrently, and a request's session must not be shared between them."""

    def __init__(self, sessions: SessionFactory) -> None:
        super().__init__(load_fn=self.fetch)
        self._sessions = sessions

    async def fetch(self, keys: Sequence[Key]) -> list[Value]:
        raise NotImplementedError

    async def _scalars(self, query: Executable) -> list[Any]:
        async with self._sessions() as session:
            return list((await session.execute(query)).scalars())

    async def _rows(self, query: Executable) -> list[Any]:
        async with self._sessions() as session:
            return list(await session.execute(query))


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
