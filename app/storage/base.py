"""The object-storage interface every backend implements, and the rules for keys.

Keys are generated here and only here (`new_object_key`); nothing a client sends ever becomes
part of a key, so a backend never has to reason about hostile names. `validate_key` still
guards every entry point because a key also arrives back from the database, and a corrupted
or hand-edited row must not become a path outside the storage root.
"""

from __future__ import annotations

import re
import tempfile
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.core.errors import OvozlyError

_SEGMENT = r"[a-z0-9][a-z0-9_-]{0,62}"
_KEY_RE = re.compile(rf"{_SEGMENT}(?:/{_SEGMENT}){{0,7}}")
_PREFIX_RE = re.compile(rf"{_SEGMENT}(?:/{_SEGMENT}){{0,3}}")


class StorageError(OvozlyError):
    """Base class for storage failures; messages are for logs, not for API clients."""

    def call_error(self) -> str:
        return "The recording could not be read from storage; try reprocessing the call"


class InvalidObjectKey(StorageError, ValueError):
    """A key that `new_object_key` could not have produced."""


class ObjectNotFound(StorageError, KeyError):
    """The key names no stored object."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key

    def __str__(self) -> str:
        return f"no stored object under key {self.key!r}"

    def call_error(self) -> str:
        return "The recording is missing from storage; upload it again"


def validate_key(key: str) -> str:
    """Return `key` unchanged if it has the generated shape, else raise `InvalidObjectKey`.

    Lower-case ASCII segments starting with a letter or digit: no `.`/`..`, no empty
    segments, no backslashes, no leading slash, so a key maps to exactly one path under a
    root on every OS and to the same object name in a bucket.
    """
    if not isinstance(key, str) or len(key) > 512 or _KEY_RE.fullmatch(key) is None:
        raise InvalidObjectKey(f"invalid object key: {key!r}")
    return key


def new_object_key(prefix: str = "calls", *, now: datetime | None = None) -> str:
    """A fresh key `<prefix>/<yyyy>/<mm>/<dd>/<uuid4 hex>`.

    The date keeps a bucket or directory listable by day; the uuid4 makes the key unguessable
    and collision-free, so writes never need to check for an existing object.
    """
    if _PREFIX_RE.fullmatch(prefix) is None:
        raise InvalidObjectKey(f"invalid key prefix: {prefix!r}")
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{prefix}/{moment:%Y/%m/%d}/{uuid.uuid4().hex}"


class ObjectStorage(ABC):
    """Async access to stored audio. Every method validates its key first.

    Objects are written whole from a local file and read whole into a local file: the
    pipeline's decoders want a seekable local path anyway, and it keeps large recordings out
    of memory on both sides.
    """

    @abstractmethod
    async def put_file(self, key: str, source: Path, *, content_type: str | None = None) -> None:
        """Store the contents of `source` under `key`, replacing any object there.

        Readers never see a partly written object: it appears whole or not at all.
        """

    @abstractmethod
    async def download_to(self, key: str, destination: Path) -> None:
        """Write the object to `destination` (created or replaced whole); `ObjectNotFound`."""

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Remove the object; deleting a missing object is not an error (retries are safe)."""

    @abstractmethod
    async def exists(self, key: str) -> bool:
        """Whether an object is stored under `key`."""

    @abstractmethod
    async def size(self, key: str) -> int:
        """The object's size in bytes; `ObjectNotFound` if missing."""

    @abstractmethod
    def iter_range(
        self, key: str, start: int, end: int, *, chunk_size: int = 256 * 1024
    ) -> AsyncIterator[bytes]:
        """Bytes `start`..`end` (inclusive) of the object, in chunks of at most `chunk_size`:
        a long recording is streamed, never held in memory. `ObjectNotFound` if missing."""

    async def signed_url(self, key: str, *, expires_in: timedelta, filename: str) -> str | None:
        """A URL the backend itself serves for `expires_in`, or None when it cannot sign one
        (then the API serves the object through its own signed route)."""
        return None

    async def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release clients or pools; the default has nothing to release."""

    @asynccontextmanager
    async def local_copy(self, key: str, *, tmp_dir: Path | None = None) -> AsyncIterator[Path]:
        """Yield a local path holding the object, removed on exit.

        Treat the path as read-only: a backend may hand out its own file instead of a copy.
        """
        validate_key(key)
        with tempfile.TemporaryDirectory(prefix="ovozly-obj-", dir=tmp_dir) as directory:
            target = Path(directory) / "object"
            await self.download_to(key, target)
            yield target
