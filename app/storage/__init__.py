"""Where uploaded recordings live: one small async interface, local disk or GCS behind it."""

from app.storage.base import (
    InvalidObjectKey,
    ObjectNotFound,
    ObjectStorage,
    StorageError,
    new_object_key,
    validate_key,
)
from app.storage.factory import build_storage, storage_for
from app.storage.gcs import GcsStorage
from app.storage.local import LocalDiskStorage

__all__ = [
    "GcsStorage",
    "InvalidObjectKey",
    "LocalDiskStorage",
    "ObjectNotFound",
    "ObjectStorage",
    "StorageError",
    "build_storage",
    "new_object_key",
    "storage_for",
    "validate_key",
]
