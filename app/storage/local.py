"""Objects as files under one root directory (the default backend, `OVOZLY_DATA_DIR`)."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

from app.storage.base import InvalidObjectKey, ObjectNotFound, ObjectStorage, validate_key

_TMP_DIR = ".tmp"


class LocalDiskStorage(ObjectStorage):
    """Stores `key` at `root/key`.

    Writes go to `root/.tmp/` first and are renamed into place, so a crash or a concurrent
    reader never sees a half-written recording (rename is atomic within one filesystem, which
    is why the temp directory lives under the root rather than in `/tmp`).
    """

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def path_for(self, key: str) -> Path:
        validate_key(key)
        path = (self.root / key).resolve()
        # The key shape already excludes traversal; this second check keeps a symlink planted
        # inside the root from redirecting a write elsewhere.
        if not path.is_relative_to(self.root) or path == self.root:
            raise InvalidObjectKey(f"key escapes the storage root: {key!r}")
        return path

    async def put_file(self, key: str, source: Path, *, content_type: str | None = None) -> None:
        target = self.path_for(key)
        await asyncio.to_thread(self._put_file, source, target)

    def _put_file(self, source: Path, target: Path) -> None:
        tmp_dir = self.root / _TMP_DIR
        tmp_dir.mkdir(parents=True, exist_ok=True)
        tmp = tmp_dir / f"{uuid.uuid4().hex}.part"
        try:
            with source.open("rb") as src, tmp.open("wb") as dst:
                shutil.copyfileobj(src, dst, 1024 * 1024)
                dst.flush()
                # Without fsync a power loss after the rename can leave an empty file under a
                # key the database already points at.
                os.fsync(dst.fileno())
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    async def download_to(self, key: str, destination: Path) -> None:
        source = self.path_for(key)
        await asyncio.to_thread(self._download_to, key, source, destination)

    @staticmethod
    def _download_to(key: str, source: Path, destination: Path) -> None:
        tmp = destination.with_name(f".{destination.name}.{uuid.uuid4().hex}.part")
        try:
            shutil.copyfile(source, tmp)
            os.replace(tmp, destination)
        except FileNotFoundError:
            tmp.unlink(missing_ok=True)
            if not source.is_file():
                raise ObjectNotFound(key) from None
            raise
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    async def delete(self, key: str) -> None:
        path = self.path_for(key)
        await asyncio.to_thread(self._delete, path)

    def _delete(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        # Prune the now-empty date directories so the tree does not fill with empty folders;
        # a concurrent writer recreates them with mkdir(parents=True).
        parent = path.parent
        while parent != self.root and parent.is_relative_to(self.root):
            with suppress(OSError):
                parent.rmdir()
                parent = parent.parent
                continue
            break

    async def exists(self, key: str) -> bool:
        path = self.path_for(key)
        return await asyncio.to_thread(path.is_file)

    async def size(self, key: str) -> int:
        path = self.path_for(key)
        try:
            stat = await asyncio.to_thread(path.stat)
        except FileNotFoundError:
            raise ObjectNotFound(key) from None
        return stat.st_size

    async def iter_range(
        self, key: str, start: int, end: int, *, chunk_size: int = 256 * 1024
    ) -> AsyncIterator[bytes]:
        path = self.path_for(key)
        try:
            handle = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError:
            raise ObjectNotFound(key) from None
        try:
            await asyncio.to_thread(handle.seek, start)
            remaining = end - start + 1
            while remaining > 0:
                chunk = await asyncio.to_thread(handle.read, min(chunk_size, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk
        finally:
            await asyncio.to_thread(handle.close)

    @asynccontextmanager
    async def local_copy(self, key: str, *, tmp_dir: Path | None = None) -> AsyncIterator[Path]:
        # The stored file is already local and never rewritten in place (writes replace it by
        # rename), so lending it out avoids copying a long recording for every job.
        path = self.path_for(key)
        if not await asyncio.to_thread(path.is_file):
            raise ObjectNotFound(key)
        yield path
