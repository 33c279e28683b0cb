"""Choose the storage backend from settings."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from app.core.config import Settings
from app.storage.base import ObjectStorage
from app.storage.gcs import DEFAULT_CHUNK_SIZE, GcsStorage
from app.storage.local import LocalDiskStorage

LOCAL = "local"
GCS = "gcs"


def build_storage(
    backend: str,
    data_dir: Path,
    gcs_bucket: str | None = None,
    *,
    gcs_project: str | None = None,
    gcs_chunk_size: int = DEFAULT_CHUNK_SIZE,
    gcs_client: Any | None = None,
) -> ObjectStorage:
    """`backend` is "local" (files under `data_dir/objects`) or "gcs" (needs `gcs_bucket`).

    The GCS client uses Application Default Credentials, except when `STORAGE_EMULATOR_HOST`
    is set: an emulator accepts no real credentials, and looking ADC up on a developer machine
    would fail or, worse, pick up someone's production identity.
    """
    kind = backend.strip().lower()
    if kind == LOCAL:
        return LocalDiskStorage(data_dir / "objects")
    if kind == GCS:
        if not gcs_bucket:
            raise ValueError("storage backend 'gcs' needs a bucket (GCS_BUCKET)")
        client = gcs_client if gcs_client is not None else _gcs_client(gcs_project)
        return GcsStorage(gcs_bucket, client, chunk_size=gcs_chunk_size)
    raise ValueError(f"unknown storage backend {backend!r}; expected 'local' or 'gcs'")


def storage_for(settings: Settings) -> ObjectStorage:
    """The storage the settings name; the API, the worker and the CLI all use this."""
    return build_storage(
        settings.effective_storage_backend.value, settings.data_dir, settings.gcs_bucket
    )


def _gcs_client(project: str | None) -> Any:
    from google.cloud import storage

    if os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        anonymous = AnonymousCredentials()  # type: ignore[no-untyped-call]
        return storage.Client(project=project or "ovozly-dev", credentials=anonymous)
    return storage.Client(project=project)
