"""Audio probing under its own budget: child processes, bounded concurrency, a time limit per
probe, a per-user limit of uploads in flight, and the maximum call length."""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from pathlib import Path

import psutil
import pytest

from app.core.errors import TooManyRequests
from app.services.audio_probe import ProbeLimits, ProbePool
from app.services.uploads import CallTooLong, UnreadableAudio, UploadRejected, probe_audio
from tests.factories import write_tone


def _flac(tmp_path: Path, seconds: float, name: str = "tone.flac") -> Path:
    return write_tone(
        tmp_path / name,
        container="flac",
        codec="flac",
        sample_rate=8000,
        channels=1,
        seconds=seconds,
    )


def test_a_call_over_the_limit_is_refused_naming_the_limit(tmp_path: Path) -> None:
    path = _flac(tmp_path, 30)
    assert probe_audio(path, max_duration_s=30).duration_s == pytest.approx(30, abs=0.01)
    with pytest.raises(CallTooLong) as refused:
        probe_audio(path, max_duration_s=10)
    message = refused.value.message
    assert "30.0 s long" in message and "at most 10.0 s" in message
    assert "MAX_CALL_SECONDS=10" in message


def test_decoding_stops_at_the_limit_when_the_length_is_understated(tmp_path: Path) -> None:
    """A container may declare no length, or a wrong one: decoding itself stops once it
    passes the limit, so a hostile file costs no more than the limit."""
    import av

    from app.services.uploads import _decode_all

    path = _flac(tmp_path, 120)
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        with pytest.raises(CallTooLong) as refused:
            _decode_all(container, stream, max_duration_s=5)
    # Stopped right after the limit (it says how far it got), not at the end of the file.
    assert re.search(r"more than 5\.\d s long", refused.value.message), refused.value.message


async def test_probes_run_in_child_processes_and_refusals_come_back(tmp_path: Path) -> None:
    pool = ProbePool(ProbeLimits(concurrency=2, per_user=3, timeout_s=60))
    try:
        info = await pool.probe(_flac(tmp_path, 2), None)
        assert info.codec == "flac" and info.duration_s == pytest.approx(2, abs=0.01)
        (worker,) = pool._idle
        assert worker.process.pid != os.getpid()
        assert psutil.Process(worker.process.pid).nice() > psutil.Process().nice()
        garbage = tmp_path / "garbage.wav"
        garbage.write_bytes(b"RIFF" + os.urandom(4000))
        with pytest.raises(UploadRejected, match="not a readable audio"):
            await pool.probe(garbage, None)
        with pytest.raises(UploadRejected, match=r"at most 1\.0 s"):
            await pool.probe(_flac(tmp_path, 3, "three.flac"), 1)
        # The same warm process served all three.
        assert [w.process.pid for w in pool._idle] == [worker.process.pid]
    finally:
        await pool.close()
    assert not psutil.pid_exists(worker.process.pid) or (
        psutil.Process(worker.process.pid).status() == psutil.STATUS_ZOMBIE
    )


async def test_a_probe_over_its_time_limit_is_killed_and_refused(tmp_path: Path) -> None:
    long_file = _flac(tmp_path, 1800)
    pool = ProbePool(ProbeLimits(concurrency=1, per_user=3, timeout_s=0.2))
    try:
        with pytest.raises(UnreadableAudio, match=r"could not be checked within 0\.2 s"):
            await pool.probe(long_file, None)
        assert pool._idle == []
        # A fresh process takes the next probe.
        relaxed = ProbePool(ProbeLimits(concurrency=1, per_user=3, timeout_s=60))
        try:
            assert (await relaxed.probe(_flac(tmp_path, 1, "one.flac"), None)).duration_s > 0
        finally:
            await relaxed.close()
    finally:
        await pool.close()


async def test_at_most_concurrency_probes_run_at_once(tmp_path: Path) -> None:
    files = [_flac(tmp_path, 300)] * 4
    pool = ProbePool(ProbeLimits(concurrency=2, per_user=9, timeout_s=120))
    try:
        await asyncio.gather(*(pool.probe(path, None) for path in files))
        assert len(pool._idle) <= 2
    finally:
        await pool.close()


async def test_uploads_in_flight_are_limited_per_user() -> None:
    pool = ProbePool(ProbeLimits(concurrency=1, per_user=2, timeout_s=10))
    alice, bob = uuid.uuid4(), uuid.uuid4()
    async with pool.upload_slot(alice), pool.upload_slot(alice):
        with pytest.raises(TooManyRequests, match="2 uploads in progress"):
            async with pool.upload_slot(alice):
                pass
        async with pool.upload_slot(bob):
            pass
    async with pool.upload_slot(alice):
        pass
