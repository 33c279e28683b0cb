"""Both backends behave the same through the `ObjectStorage` interface."""

from __future__ import annotations

import hashlib
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.storage import (
    GcsStorage,
    InvalidObjectKey,
    LocalDiskStorage,
    ObjectNotFound,
    ObjectStorage,
    build_storage,
    new_object_key,
    validate_key,
)
from tests.storage.conftest import EMULATOR_BUCKET, write_random_file


@pytest.fixture(params=["local", "gcs"])
def storage(request: pytest.FixtureRequest, local_storage: LocalDiskStorage) -> ObjectStorage:
    if request.param == "local":
        return local_storage
    result: GcsStorage = request.getfixturevalue("gcs_storage")
    return result


async def test_put_download_size_exists_delete(storage: ObjectStorage, tmp_path: Path) -> None:
    key = new_object_key()
    source = tmp_path / "in.bin"
    data = write_random_file(source, 300_000)

    assert not await storage.exists(key)
    await storage.put_file(key, source, content_type="audio/wav")
    assert await storage.exists(key)
    assert await storage.size(key) == len(data)

    target = tmp_path / "out.bin"
    await storage.download_to(key, target)
    assert target.read_bytes() == data

    await storage.delete(key)
    assert not await storage.exists(key)
    # A retried delete must not fail.
    await storage.delete(key)


async def test_put_replaces_existing_object(storage: ObjectStorage, tmp_path: Path) -> None:
    key = new_object_key()
    first, second = tmp_path / "a", tmp_path / "b"
    write_random_file(first, 1000)
    data = write_random_file(second, 2000)
    await storage.put_file(key, first)
    await storage.put_file(key, second)
    target = tmp_path / "out"
    await storage.download_to(key, target)
    assert target.read_bytes() == data
    await storage.delete(key)


async def test_missing_object(storage: ObjectStorage, tmp_path: Path) -> None:
    key = new_object_key()
    target = tmp_path / "out"
    with pytest.raises(ObjectNotFound):
        await storage.download_to(key, target)
    assert not target.exists()
    # No partial download or temp file is left beside the target.
    assert [p.name for p in tmp_path.iterdir() if p.name != "objects"] == []
    with pytest.raises(ObjectNotFound):
        await storage.size(key)
    with pytest.raises(ObjectNotFound):
        async with storage.local_copy(key):
            pass


async def test_local_copy(storage: ObjectStorage, tmp_path: Path) -> None:
    key = new_object_key()
    source = tmp_path / "in.bin"
    data = write_random_file(source, 4096)
    await storage.put_file(key, source)
    async with storage.local_copy(key, tmp_dir=tmp_path) as path:
        assert path.read_bytes() == data
    await storage.delete(key)


async def test_large_file_round_trip(storage: ObjectStorage, tmp_path: Path) -> None:
    # Over the library's 8 MiB multipart limit, so GCS takes the resumable path in chunks.
    key = new_object_key()
    source = tmp_path / "big.bin"
    data = write_random_file(source, 9 * 1024 * 1024 + 12345)
    await storage.put_file(key, source)
    assert await storage.size(key) == len(data)
    target = tmp_path / "big.out"
    await storage.download_to(key, target)
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(data).digest()
    await storage.delete(key)


@pytest.mark.parametrize(
    "key",
    [
        "../etc/passwd",
        "calls/../../x",
        "/abs/path",
        "calls//x",
        "calls/./x",
        "calls/x/",
        "calls\\x",
        ".hidden",
        "calls/.tmp",
        "Calls/X",
        "calls/x y",
        "calls/x\x00",
        "",
        "a/" * 20 + "a",
    ],
)
async def test_rejects_keys_that_were_not_generated(
    storage: ObjectStorage, key: str, tmp_path: Path
) -> None:
    source = tmp_path / "in"
    source.write_bytes(b"x")
    with pytest.raises(InvalidObjectKey):
        await storage.put_file(key, source)
    with pytest.raises(InvalidObjectKey):
        await storage.exists(key)
    with pytest.raises(InvalidObjectKey):
        await storage.delete(key)


def test_new_object_key_shape() -> None:
    key = new_object_key(now=datetime(2026, 3, 4, 23, 59, tzinfo=UTC))
    assert re.fullmatch(r"calls/2026/03/04/[0-9a-f]{32}", key)
    assert validate_key(key) == key
    assert new_object_key() != new_object_key()
    assert new_object_key("exports/raw").startswith("exports/raw/")
    with pytest.raises(InvalidObjectKey):
        new_object_key("../up")


async def test_local_write_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    storage = LocalDiskStorage(tmp_path / "root")
    key = new_object_key()
    source = tmp_path / "in"
    write_random_file(source, 10_000)
    await storage.put_file(key, source)
    tmp_dir = tmp_path / "root" / ".tmp"
    assert list(tmp_dir.iterdir()) == []
    assert storage.path_for(key).stat().st_size == 10_000

    # A failed copy (missing source) leaves neither a partial object nor a temp file.
    other = new_object_key()
    with pytest.raises(FileNotFoundError):
        await storage.put_file(other, tmp_path / "missing")
    assert not await storage.exists(other)
    assert list(tmp_dir.iterdir()) == []

    await storage.delete(key)
    # Empty date directories are pruned; the root itself stays.
    assert sorted(p.name for p in (tmp_path / "root").iterdir()) == [".tmp"]


async def test_local_rejects_symlink_escape(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "calls").mkdir(parents=True)
    os.symlink(outside, root / "calls" / "2026")
    storage = LocalDiskStorage(root)
    source = tmp_path / "in"
    source.write_bytes(b"x")
    with pytest.raises(InvalidObjectKey):
        await storage.put_file("calls/2026/01/01/abc", source)
    assert list(outside.iterdir()) == []


async def test_build_storage(tmp_path: Path, gcs_client: object) -> None:
    local = build_storage("local", tmp_path, None)
    assert isinstance(local, LocalDiskStorage)
    assert local.root == (tmp_path / "objects").resolve()

    with pytest.raises(ValueError, match="bucket"):
        build_storage("gcs", tmp_path, None)
    with pytest.raises(ValueError, match="unknown storage backend"):
        build_storage("s3", tmp_path, "b")

    # Without an injected client the factory builds an anonymous one for the emulator
    # (STORAGE_EMULATOR_HOST is set by the gcs_client fixture).
    gcs = build_storage("GCS", tmp_path, EMULATOR_BUCKET)
    assert isinstance(gcs, GcsStorage)
    key = new_object_key()
    source = tmp_path / "in"
    source.write_bytes(b"hello")
    await gcs.put_file(key, source)
    assert await gcs.size(key) == 5
    await gcs.delete(key)
    await gcs.close()
