"""Upload intake: streaming receive with limits, audio probing, display names."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import av
import numpy as np
import psutil
import pytest
from starlette.datastructures import UploadFile

from app.services.uploads import (
    EmptyUpload,
    ThreadProber,
    UnreadableAudio,
    UploadRejected,
    UploadTooLarge,
    probe_audio,
    receive_upload,
    received_audio,
    sanitize_filename,
)
from tests.factories import header_only_wav, tone_file, write_tone

# (suffix, container, codec, expected decoder name, expected demuxer)
FORMATS = [
    ("wav", "wav", "pcm_s16le", "pcm_s16le", "wav"),
    ("flac", "flac", "flac", "flac", "flac"),
    ("mp3", "mp3", "libmp3lame", "mp3float", "mp3"),
    ("ogg", "ogg", "libopus", "opus", "ogg"),
    ("m4a", "ipod", "aac", "aac", "mov,mp4,m4a,3gp,3g2,mj2"),
    ("webm", "webm", "libopus", "opus", "matroska,webm"),
]


def _rates(codec: str) -> list[int]:
    # Opus encodes only at 8/12/16/24/48 kHz.
    return [8000, 48000] if codec == "libopus" else [8000, 44100]


CASES = [
    pytest.param(fmt, rate, channels, id=f"{fmt[0]}-{rate}-{channels}ch")
    for fmt in FORMATS
    for rate in _rates(fmt[2])
    for channels in (1, 2)
]


# --- probe_audio: accepted formats ---------------------------------------------------------


@pytest.mark.parametrize(("fmt", "rate", "channels"), CASES)
def test_probe_accepts_every_supported_format(
    tmp_path: Path, fmt: tuple[str, str, str, str, str], rate: int, channels: int
) -> None:
    _, container, codec, decoder, demuxer = fmt
    # The upload's temp file carries no meaningful extension; probing must go by content.
    path = write_tone(
        tmp_path / "upload.part",
        container=container,
        codec=codec,
        sample_rate=rate,
        channels=channels,
        seconds=1.5,
    )
    info = probe_audio(path)
    assert info.channels == channels
    # Opus always decodes at 48 kHz whatever rate it was encoded from.
    assert info.sample_rate == (48000 if decoder == "opus" else rate)
    assert info.codec == decoder
    assert info.container == demuxer
    # Encoder delay/padding adds a few tens of milliseconds for lossy codecs.
    assert info.duration_s == pytest.approx(1.5, abs=0.06)


def test_probe_multichannel_wav(tmp_path: Path) -> None:
    path = write_tone(
        tmp_path / "quad.wav", container="wav", codec="pcm_s16le", sample_rate=16000, channels=4
    )
    info = probe_audio(path)
    assert (info.channels, info.sample_rate) == (4, 16000)
    assert info.duration_s == pytest.approx(1.0, abs=1e-3)


def test_duration_comes_from_samples_when_header_says_unknown(tmp_path: Path) -> None:
    # Streaming recorders write 0xFFFFFFFF as the RIFF and data sizes before they know the length.
    path = tone_file(tmp_path, "wav", seconds=2.0)
    data = bytearray(path.read_bytes())
    data[4:8] = struct.pack("<I", 0xFFFFFFFF)
    data_at = data.index(b"data")
    data[data_at + 4 : data_at + 8] = struct.pack("<I", 0xFFFFFFFF)
    path.write_bytes(bytes(data))
    info = probe_audio(path)
    assert info.duration_s == pytest.approx(2.0, abs=1e-3)


def test_duration_ignores_a_container_that_overstates_nothing_but_decodes_longer(
    tmp_path: Path,
) -> None:
    # A WAV whose data chunk claims fewer bytes than follow: ffmpeg honours the header, and the
    # reported duration is what was actually decoded, not the file size.
    path = tone_file(tmp_path, "wav", seconds=2.0)
    data = bytearray(path.read_bytes())
    data_at = data.index(b"data")
    data[data_at + 4 : data_at + 8] = struct.pack("<I", 8000 * 2)  # one second of s16 mono
    path.write_bytes(bytes(data))
    assert probe_audio(path).duration_s == pytest.approx(1.0, abs=1e-3)


async def test_probe_in_a_thread(tmp_path: Path) -> None:
    info = await ThreadProber().probe(
        tone_file(tmp_path, "flac", sample_rate=44100, channels=2), None
    )
    assert info.codec == "flac"


# --- probe_audio: rejections ----------------------------------------------------------------


@pytest.mark.parametrize("suffix", [f[0] for f in FORMATS])
def test_probe_rejects_truncated_files(tmp_path: Path, suffix: str) -> None:
    path = tone_file(tmp_path, suffix, sample_rate=48000, channels=2, seconds=3.0)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UnreadableAudio):
        probe_audio(path)


@pytest.mark.parametrize("suffix", ["mp3", "flac"])
def test_probe_rejects_corrupted_payload(tmp_path: Path, suffix: str) -> None:
    path = tone_file(tmp_path, suffix, sample_rate=44100, channels=2, seconds=2.0)
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(7)
    for position in range(4000, len(data) - 200, 50):
        data[position] = int(rng.integers(0, 256))
    path.write_bytes(bytes(data))
    with pytest.raises(UnreadableAudio):
        probe_audio(path)


def test_probe_rejects_wav_header_without_its_data(tmp_path: Path) -> None:
    path = tone_file(tmp_path, "wav", sample_rate=44100, channels=2)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(UnreadableAudio, match="truncated"):
        probe_audio(path)


def test_probe_rejects_zero_length_audio(tmp_path: Path) -> None:
    path = header_only_wav(tmp_path / "empty.wav")
    with pytest.raises(UnreadableAudio, match="no audio"):
        probe_audio(path)


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"hello, this is not a recording\n" * 100, id="text"),
        pytest.param(os.urandom(50_000), id="random"),
        pytest.param(b"%PDF-1.4\n" + os.urandom(5000), id="pdf"),
        pytest.param(
            b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n/etc/passwd\n#EXT-X-ENDLIST\n",
            id="hls-playlist",
        ),
    ],
)
def test_probe_rejects_non_audio(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "upload.part"
    path.write_bytes(content)
    with pytest.raises(UnreadableAudio) as caught:
        probe_audio(path)
    assert "not a readable audio recording" in caught.value.message


def test_probe_rejects_video_only(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(10):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    with pytest.raises(UnreadableAudio, match="video but no audio"):
        probe_audio(path)


# --- receive_upload -------------------------------------------------------------------------


class CountingReader:
    """An upload source with `read(n)`, like Starlette's UploadFile, that records each read."""

    def __init__(self, data: bytes) -> None:
        self._buffer = io.BytesIO(data)
        self.reads: list[int] = []
        self.bytes_read = 0

    async def read(self, size: int = -1) -> bytes:
        self.reads.append(size)
        chunk = self._buffer.read(size)
        self.bytes_read += len(chunk)
        return chunk


async def test_receive_from_starlette_upload_file(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    upload = UploadFile(file=io.BytesIO(data), filename="call.wav")
    received = await receive_upload(upload, max_bytes=10 * 1024 * 1024, tmp_dir=tmp_path / "up")
    assert received.size_bytes == len(data)
    assert received.sha256_hex == hashlib.sha256(data).hexdigest()
    assert received.path.read_bytes() == data
    assert received.path.parent == tmp_path / "up"
    received.discard()
    assert not received.path.exists()


async def test_receive_from_async_iterator_of_small_chunks(tmp_path: Path) -> None:
    pieces = [os.urandom(1000) for _ in range(500)]

    async def stream() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece
            yield b""  # empty chunks are allowed and ignored

    received = await receive_upload(stream(), max_bytes=1_000_000, tmp_dir=tmp_path)
    assert received.size_bytes == 500_000
    assert received.path.read_bytes() == b"".join(pieces)


async def test_limit_is_inclusive(tmp_path: Path) -> None:
    data = os.urandom(4096)
    received = await receive_upload(CountingReader(data), max_bytes=4096, tmp_dir=tmp_path)
    assert received.size_bytes == 4096


async def test_too_large_stops_reading_early(tmp_path: Path) -> None:
    limit = 2 * 1024 * 1024
    reader = CountingReader(os.urandom(50 * 1024 * 1024))
    with pytest.raises(UploadTooLarge) as caught:
        await receive_upload(reader, max_bytes=limit, tmp_dir=tmp_path, read_size=256 * 1024)
    assert isinstance(caught.value, UploadRejected)
    assert "2 MB" in caught.value.message
    # Exactly one byte past the limit was pulled from the client, in limit/read_size + 1 reads.
    assert reader.bytes_read == limit + 1
    assert len(reader.reads) == limit // (256 * 1024) + 1
    assert list(tmp_path.iterdir()) == []


async def test_too_large_from_iterator_stops_at_first_chunk_over(tmp_path: Path) -> None:
    consumed = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal consumed
        while True:
            consumed += 1
            yield b"x" * 65536

    with pytest.raises(UploadTooLarge):
        await receive_upload(endless(), max_bytes=1_000_000, tmp_dir=tmp_path)
    assert consumed == 1_000_000 // 65536 + 1
    assert list(tmp_path.iterdir()) == []


async def test_empty_upload(tmp_path: Path) -> None:
    with pytest.raises(EmptyUpload):
        await receive_upload(CountingReader(b""), max_bytes=100, tmp_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


async def test_source_failure_and_cancellation_leave_no_temp_file(tmp_path: Path) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"a" * 10
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await receive_upload(broken(), max_bytes=100, tmp_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []

    started = asyncio.Event()

    async def stalls() -> AsyncIterator[bytes]:
        yield b"a" * 10
        started.set()
        await asyncio.sleep(3600)  # a client that stops sending: the stall under test
        yield b"never"

    task = asyncio.create_task(receive_upload(stalls(), max_bytes=100, tmp_dir=tmp_path))
    await started.wait()
    assert len(list(tmp_path.iterdir())) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert list(tmp_path.iterdir()) == []


async def test_receiving_200_mb_keeps_memory_flat(tmp_path: Path) -> None:
    process = psutil.Process()
    block = os.urandom(64 * 1024)
    total = 200 * 1024 * 1024
    peak_rss = 0

    async def generated() -> AsyncIterator[bytes]:
        nonlocal peak_rss
        sent = 0
        while sent < total:
            yield block
            sent += len(block)
            if sent % (4 * 1024 * 1024) == 0:
                peak_rss = max(peak_rss, process.memory_info().rss)

    baseline = process.memory_info().rss
    received = await receive_upload(generated(), max_bytes=total, tmp_dir=tmp_path)
    peak_rss = max(peak_rss, process.memory_info().rss)
    assert received.size_bytes == total
    assert peak_rss - baseline < 30 * 1024 * 1024
    received.discard()


async def test_received_audio_probes_and_cleans_up(tmp_path: Path) -> None:
    source = tone_file(tmp_path, "mp3", sample_rate=44100, channels=2)
    spool = tmp_path / "spool"
    async with received_audio(
        UploadFile(file=io.BytesIO(source.read_bytes())), max_bytes=10**7, tmp_dir=spool
    ) as (received, info):
        assert received.path.is_file()
        assert info.codec == "mp3float"
    assert list(spool.iterdir()) == []

    with pytest.raises(UnreadableAudio):
        async with received_audio(
            UploadFile(file=io.BytesIO(b"not audio" * 100)), max_bytes=10**7, tmp_dir=spool
        ):
            pytest.fail("the block must not run for a rejected upload")
    assert list(spool.iterdir()) == []


# --- sanitize_filename ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("call.wav", "call.wav"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\agent\\Desktop\\call 1.mp3", "call 1.mp3"),
        ("/abs/path/to/rec.flac", "rec.flac"),
        ("bad\x00name\x1b[31m.wav", "badname[31m.wav"),
        ("evil\u202egpj.exe", "evilgpj.exe"),
        ("  tabs\tand\nnewlines  .ogg", "tabs and newlines .ogg"),
        ("..", "recording"),
        ("", "recording"),
        (None, "recording"),
        ("dir/", "recording"),
        ("\x01\x02", "recording"),
        ("Звонок клиента.m4a", "Звонок клиента.m4a"),
    ],
)
def test_sanitize_filename(raw: str | None, expected: str) -> None:
    assert sanitize_filename(raw) == expected


def test_sanitize_filename_trims_but_keeps_extension() -> None:
    name = sanitize_filename("a" * 500 + ".wav")
    assert len(name) == 200
    assert name.endswith("aaa.wav")
    assert len(sanitize_filename("b" * 500)) == 200
