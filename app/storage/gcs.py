"""Objects in a Google Cloud Storage bucket (`GCS_BUCKET`).

google-cloud-storage is a blocking client, so every call runs in a worker thread via
`asyncio.to_thread`; the event loop serving uploads and WebSockets never waits on the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from google.api_core import exceptions as gexc
from google.auth.credentials import Signing
from google.cloud import storage
from google.cloud.storage.retry import DEFAULT_RETRY

from app.storage.base import ObjectNotFound, ObjectStorage, validate_key

# Resumable chunks must be a multiple of 256 KiB. 8 MiB keeps a 500 MB upload to ~60 requests
# while holding only one chunk in memory.
DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024
_CHUNK_QUANTUM = 256 * 1024


class GcsStorage(ObjectStorage):
    """Stores `key` as the object of the same name in `bucket_name`.

    Files over 8 MiB go up as resumable uploads in `chunk_size` pieces (the library switches
    at that size), smaller ones as a single multipart request.
    """

    def __init__(
        self,
        bucket_name: str,
        client: storage.Client,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        timeout_s: float = 120.0,
    ) -> None:
        if chunk_size <= 0 or chunk_size % _CHUNK_QUANTUM:
            raise ValueError(f"chunk_size must be a positive multiple of {_CHUNK_QUANTUM}")
        self.bucket_name = bucket_name
        self.client = client
        self.chunk_size = chunk_size
        self.timeout_s = timeout_s
        self._bucket = client.bucket(bucket_name)

    def _blob(self, key: str) -> Any:
        return self._bucket.blob(validate_key(key), chunk_size=self.chunk_size)

    async def put_file(self, key: str, source: Path, *, content_type: str | None = None) -> None:
        blob = self._blob(key)
        # Uploads are only retried by default when made conditional; ours are safe to retry
        # unconditionally because every key is fresh and a repeat writes identical bytes.
        await asyncio.to_thread(
            blob.upload_from_filename,
            str(source),
            content_type=content_type or "application/octet-stream",
            retry=DEFAULT_RETRY,
            timeout=self.timeout_s,
        )

    async def download_to(self, key: str, destination: Path) -> None:
        blob = self._blob(key)
        await asyncio.to_thread(self._download_to, blob, key, destination)

    def _download_to(self, blob: Any, key: str, destination: Path) -> None:
        tmp = destination.with_name(f".{destination.name}.{uuid.uuid4().hex}.part")
        try:
            blob.download_to_filename(str(tmp), retry=DEFAULT_RETRY, timeout=self.timeout_s)
            os.replace(tmp, destination)
        except gexc.NotFound:
            raise ObjectNotFound(key) from None
        finally:
            tmp.unlink(missing_ok=True)

    async def delete(self, key: str) -> None:
        blob = self._blob(key)
        with contextlib.suppress(gexc.NotFound):
            await asyncio.to_thread(blob.delete, retry=DEFAULT_RETRY, timeout=self.timeout_s)

    async def exists(self, key: str) -> bool:
        blob = self._blob(key)
        return bool(
            await asyncio.to_thread(blob.exists, retry=DEFAULT_RETRY, timeout=self.timeout_s)
        )

    async def size(self, key: str) -> int:
        blob = await asyncio.to_thread(
            self._bucket.get_blob, validate_key(key), retry=DEFAULT_RETRY, timeout=self.timeout_s
        )
        if blob is None:
            raise ObjectNotFound(key)
        return int(blob.size)

    async def iter_range(
        self, key: str, start: int, end: int, *, chunk_size: int = 1024 * 1024
    ) -> AsyncIterator[bytes]:
        blob = self._blob(key)
        position = start
        while position <= end:
            last = min(position + chunk_size - 1, end)
            try:
                chunk: bytes = await asyncio.to_thread(
                    blob.download_as_bytes,
                    start=position,
                    end=last,
                    retry=DEFAULT_RETRY,
                    timeout=self.timeout_s,
                )
            except gexc.NotFound:
                raise ObjectNotFound(key) from None
            if not chunk:
                break
            position += len(chunk)
            yield chunk

    async def signed_url(self, key: str, *, expires_in: timedelta, filename: str) -> str | None:
        """A V4 signed GET URL when the client's credentials hold a private key (a service
        account); ambient credentials without one (metadata server, anonymous) cannot sign."""
        credentials = getattr(self.client, "_credentials", None)
        if not isinstance(credentials, Signing):
            return None
        blob = self._blob(key)
        url: str = await asyncio.to_thread(
            blob.generate_signed_url,
            version="v4",
            expiration=expires_in,
            method="GET",
            response_disposition=f'inline; filename="{_ascii_filename(filename)}"',
            api_access_endpoint=_emulator_host() or "https://storage.googleapis.com",
        )
        return url

    async def close(self) -> None:
        await asyncio.to_thread(self.client.close)


def _emulator_host() -> str | None:
    return os.environ.get("STORAGE_EMULATOR_HOST") or None


def _ascii_filename(filename: str) -> str:
    return "".join(
        ch if ch.isascii() and ch.isprintable() and ch not in '"\\' else "_" for ch in filename
    )
