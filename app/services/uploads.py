"""Upload intake: stream a client's file to a local temp file, then prove it is audio.

Nothing here knows about GraphQL or storage. The resolver feeds `receive_upload` with the
upload object, runs `probe_audio` off the event loop, and only then stores the file under a
generated key. Every refusal is an `UploadRejected` whose `message` is safe to show the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import struct
import tempfile
import unicodedata
from collections.abc import AsyncIterable, AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

import av

from app.core.errors import BadUserInput
from app.storage import ObjectStorage, new_object_key

DEFAULT_READ_SIZE = 1024 * 1024
DISPLAY_NAME_MAX_CHARS = 200
FALLBACK_DISPLAY_NAME = "recording"

# Demuxers we accept. Restricting them keeps ffmpeg from following playlist-style formats
# (HLS, concat) that open other files or URLs named inside an uploaded "recording".
_ALLOWED_DEMUXERS = "wav,w64,flac,mp3,ogg,mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,aac,aiff,caf"
_OPEN_OPTIONS = {"format_whitelist": _ALLOWED_DEMUXERS, "protocol_whitelist": "file"}

# How much shorter than the container's declared length the decoded audio may be before we call
# the file truncated: encoder delay and Ogg/WebM end trimming differ by a few milliseconds.
_TRUNCATION_TOLERANCE_S = 0.5
_TRUNCATION_TOLERANCE_RATIO = 0.05


class UploadRejected(BadUserInput):
    """The upload is refused; `message` is written for the person who sent it."""


class EmptyUpload(UploadRejected):
    def __init__(self) -> None:
        super().__init__("The uploaded file is empty.")


class UploadTooLarge(UploadRejected):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"The file is larger than the {_human_size(max_bytes)} upload limit.")
        self.max_bytes = max_bytes


class UnreadableAudio(UploadRejected):
    """Not audio, corrupt or truncated audio, no audio track, or no samples at all."""


class CallTooLong(UploadRejected):
    def __init__(self, duration_s: float, max_duration_s: float, *, at_least: bool) -> None:
        length = f"{'more than ' if at_least else ''}{_human_duration(duration_s)}"
        super().__init__(
            f"The recording is {length} long; calls may be at most "
            f"{_human_duration(max_duration_s)} (MAX_CALL_SECONDS={max_duration_s:g})."
        )


@dataclass(frozen=True, slots=True)
class ReceivedFile:
    """A fully received upload on local disk; the caller owns (and removes) `path`."""

    path: Path
    size_bytes: int
    sha256_hex: str

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


@dataclass(frozen=True, slots=True)
class AudioInfo:
    """What the decoder found. `duration_s` counts decoded samples, not container metadata.

    `container` is ffmpeg's demuxer name (e.g. "wav", "mov,mp4,m4a,3gp,3g2,mj2",
    "matroska,webm"); `codec` is the decoder's name (e.g. "pcm_s16le", "opus", "mp3float").
    `sample_rate` is the rate the decoder produces, which is what the pipeline will see (Opus
    always decodes at 48 kHz, whatever rate it was encoded from).
    """

    duration_s: float
    channels: int
    sample_rate: int
    codec: str
    container: str


@runtime_checkable
class AsyncReadable(Protocol):
    """Starlette's `UploadFile` (what Strawberry hands a resolver) has this shape."""

    async def read(self, size: int = -1) -> bytes: ...


UploadSource = AsyncReadable | AsyncIterable[bytes]


async def receive_upload(
    source: UploadSource,
    *,
    max_bytes: int,
    tmp_dir: Path,
    read_size: int = DEFAULT_READ_SIZE,
) -> ReceivedFile:
    """Stream `source` into a new file in `tmp_dir`, hashing and counting on the way.

    Memory stays at about one `read_size` buffer whatever the file's size. Reading stops at
    the first byte past `max_bytes` (from a `read(n)` source we never ask for more than that
    one byte beyond the limit). On any failure, cancellation included, the temp file is
    removed: `UploadTooLarge`, `EmptyUpload`, or the source's own error.
    """
    if max_bytes <= 0 or read_size <= 0:
        raise ValueError("max_bytes and read_size must be positive")
    fd, path = await asyncio.to_thread(_new_temp_file, tmp_dir)
    try:
        with os.fdopen(fd, "wb") as out:
            sink = _HashingSink(out)
            pending = bytearray()
            async for chunk in _chunks(source, read_size, lambda: max_bytes - sink.size_bytes):
                if sink.size_bytes + len(pending) + len(chunk) > max_bytes:
                    raise UploadTooLarge(max_bytes)
                pending += chunk
                if len(pending) >= read_size:
                    # Hashing and writing a megabyte off the loop keeps other requests
                    # responsive during a long upload; hashlib releases the GIL meanwhile.
                    await asyncio.to_thread(sink.write, bytes(pending))
                    pending.clear()
            if pending:
                await asyncio.to_thread(sink.write, bytes(pending))
        if sink.size_bytes == 0:
            raise EmptyUpload()
    except BaseException:
        # Synchronous on purpose: this also runs on cancellation, where awaiting is unsafe.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise
    return ReceivedFile(path=path, size_bytes=sink.size_bytes, sha256_hex=sink.hexdigest())


def _new_temp_file(tmp_dir: Path) -> tuple[int, Path]:
    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="upload-", suffix=".part", dir=tmp_dir)
    return fd, Path(name)


class _HashingSink:
    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._digest = hashlib.sha256()
        self.size_bytes = 0

    def write(self, data: bytes) -> None:
        self._digest.update(data)
        self._out.write(data)
        self.size_bytes += len(data)

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


async def _chunks(
    source: UploadSource, read_size: int, remaining: Callable[[], int]
) -> AsyncIterator[bytes]:
    if isinstance(source, AsyncReadable):
        while True:
            # Ask for at most one byte beyond what the limit still allows: enough to know the
            # file is too large without pulling the rest of it in.
            chunk = await source.read(max(1, min(read_size, remaining() + 1)))
            if not chunk:
                return
            yield chunk
    else:
        async for chunk in source:
            if chunk:
                yield chunk


class AudioProber(Protocol):
    async def probe(self, path: Path, max_duration_s: float | None) -> AudioInfo: ...


class ThreadProber:
    """Probes in a thread of this process: for tools and tests. The API uses the bounded
    process pool of `app.services.audio_probe`."""

    async def probe(self, path: Path, max_duration_s: float | None) -> AudioInfo:
        return await asyncio.to_thread(probe_audio, path, max_duration_s=max_duration_s)


@asynccontextmanager
async def received_audio(
    source: UploadSource,
    *,
    max_bytes: int,
    tmp_dir: Path,
    prober: AudioProber | None = None,
    max_duration_s: float | None = None,
) -> AsyncIterator[tuple[ReceivedFile, AudioInfo]]:
    """Receive and probe an upload; the temp file is removed when the block exits.

    The file is stored inside the block (`stored_upload`). Any `UploadRejected` is raised
    before the block runs, so a rejected upload never reaches storage or the database.
    """
    received = await receive_upload(source, max_bytes=max_bytes, tmp_dir=tmp_dir)
    try:
        info = await (prober or ThreadProber()).probe(received.path, max_duration_s)
        yield received, info
    finally:
        received.discard()


@dataclass(frozen=True, slots=True)
class StoredUpload:
    """An upload received, probed and written to object storage under `storage_key`."""

    storage_key: str
    filename: str
    size_bytes: int
    sha256_hex: str
    audio: AudioInfo


@asynccontextmanager
async def stored_upload(
    storage: ObjectStorage,
    source: UploadSource,
    filename: str | None,
    *,
    max_bytes: int,
    tmp_dir: Path,
    prober: AudioProber | None = None,
    max_duration_s: float | None = None,
) -> AsyncIterator[StoredUpload]:
    """Receive, probe and store an upload under a new key. If the block fails (the call's
    row was not committed), the stored object is removed again: nothing is half-written."""
    key = new_object_key()
    async with received_audio(
        source,
        max_bytes=max_bytes,
        tmp_dir=tmp_dir,
        prober=prober,
        max_duration_s=max_duration_s,
    ) as (received, info):
        await storage.put_file(key, received.path)
    try:
        yield StoredUpload(
            storage_key=key,
            filename=sanitize_filename(filename),
            size_bytes=received.size_bytes,
            sha256_hex=received.sha256_hex,
            audio=info,
        )
    except Exception:
        await storage.delete(key)
        raise


def probe_audio(path: Path, *, max_duration_s: float | None = None) -> AudioInfo:
    """Decode the first audio stream of `path` completely and describe it.

    Every packet is decoded (samples are counted, then dropped) because only a full decode
    proves the file is intact: headers of a truncated or corrupted file usually parse fine.
    A recording longer than `max_duration_s` is refused as soon as that is known (from the
    container's declared length, or once decoding passes the limit), so a 10-hour file costs
    no more than the limit. Raises `UploadRejected` with a message fit for the uploader.
    """
    try:
        with av.open(str(path), mode="r", options=_OPEN_OPTIONS) as container:
            container_name = str(container.format.name)
            if not container.streams.audio:
                if container.streams.video:
                    raise UnreadableAudio("The file contains video but no audio track.")
                raise UnreadableAudio("The file contains no audio track.")
            stream = container.streams.audio[0]
            declared_s = _declared_duration_s(container, stream)
            if (
                max_duration_s is not None
                and declared_s is not None
                and declared_s > max_duration_s + _TRUNCATION_TOLERANCE_S
            ):
                raise CallTooLong(declared_s, max_duration_s, at_least=False)
            decoded_s, frame_channels, frame_rate = _decode_all(container, stream, max_duration_s)
            codec = str(stream.codec_context.name)
            channels = int(stream.codec_context.channels or frame_channels)
            sample_rate = int(stream.codec_context.sample_rate or frame_rate)
    except UploadRejected:
        raise
    except (av.FFmpegError, UnicodeDecodeError, ValueError, OSError, EOFError) as error:
        raise UnreadableAudio(
            "The file is not a readable audio recording (it may be corrupt, truncated, "
            "or in an unsupported format)."
        ) from error

    if decoded_s <= 0 or channels <= 0 or sample_rate <= 0:
        raise UnreadableAudio("The recording contains no audio.")
    if declared_s is not None and declared_s - decoded_s > max(
        _TRUNCATION_TOLERANCE_S, declared_s * _TRUNCATION_TOLERANCE_RATIO
    ):
        raise UnreadableAudio(_truncated_message(decoded_s, declared_s))
    if container_name in {"wav", "w64"} and _wav_data_is_truncated(path):
        raise UnreadableAudio("The WAV file is truncated: its header promises more audio.")
    if container_name == "ogg" and _ogg_is_truncated(path):
        raise UnreadableAudio("The Ogg file is truncated: it stops before its last page.")
    return AudioInfo(
        duration_s=decoded_s,
        channels=channels,
        sample_rate=sample_rate,
        codec=codec,
        container=container_name,
    )


def _declared_duration_s(
    container: av.container.InputContainer, stream: av.AudioStream
) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return None


def _decode_all(
    container: av.container.InputContainer,
    stream: av.AudioStream,
    max_duration_s: float | None = None,
) -> tuple[float, int, int]:
    seconds = 0.0
    channels = 0
    rate = 0
    for packet in container.demux(stream):
        for frame in packet.decode():
            if frame.sample_rate:
                seconds += frame.samples / frame.sample_rate
                rate = frame.sample_rate
            channels = len(frame.layout.channels)
        if max_duration_s is not None and seconds > max_duration_s + _TRUNCATION_TOLERANCE_S:
            # The container understated its length (or declared none): stop decoding here.
            raise CallTooLong(seconds, max_duration_s, at_least=True)
    return seconds, channels, rate


def _wav_data_is_truncated(path: Path) -> bool:
    """ffmpeg shortens a WAV's declared length to the bytes present, hiding truncation.

    A 'data' chunk size of 0 or 0xFFFFFFFF means "unknown" (streamed recorders write that) and
    is accepted; otherwise the chunk must fit in the file.
    """
    file_size = path.stat().st_size
    with path.open("rb") as handle:
        header = handle.read(12)
        if len(header) < 12 or header[:4] not in (b"RIFF", b"RIFX") or header[8:12] != b"WAVE":
            return False  # W64/RF64: leave it to the decoder.
        endian = "<" if header[:4] == b"RIFF" else ">"
        offset = 12
        while offset + 8 <= file_size:
            handle.seek(offset)
            chunk_id, chunk_size = struct.unpack(f"{endian}4sI", handle.read(8))
            if chunk_id == b"data":
                if chunk_size in (0, 0xFFFFFFFF):
                    return False
                return bool(offset + 8 + chunk_size > file_size)
            offset += 8 + chunk_size + (chunk_size & 1)
    return False


_OGG_MAX_PAGE = 27 + 255 + 255 * 255
_OGG_EOS = 0x04


def _ogg_is_truncated(path: Path) -> bool:
    """Ogg takes its declared length from the last page present, so a cut file looks whole.

    A complete stream ends with a whole page flagged end-of-stream; anything else means the
    upload (or the recorder) stopped part-way.
    """
    file_size = path.stat().st_size
    with path.open("rb") as handle:
        start = max(0, file_size - _OGG_MAX_PAGE)
        handle.seek(start)
        tail = handle.read()
    position = tail.rfind(b"OggS")
    while position >= 0:
        header_end = position + 27
        if header_end <= len(tail):
            segments = tail[position + 26]
            table = tail[header_end : header_end + segments]
            if len(table) == segments and header_end + segments + sum(table) == len(tail):
                return not tail[position + 5] & _OGG_EOS
        position = tail.rfind(b"OggS", 0, position)
    return True


def _truncated_message(decoded_s: float, declared_s: float) -> str:
    return (
        f"The recording is truncated or damaged: only {decoded_s:.1f} s of its "
        f"{declared_s:.1f} s could be decoded."
    )


def sanitize_filename(name: str | None, *, max_chars: int = DISPLAY_NAME_MAX_CHARS) -> str:
    """A display name from a client-supplied filename; never used to build a storage key.

    Keeps only the last path component (either slash style), drops control and format
    characters (including bidi overrides that make "evil\u202egpj.exe" look like a picture),
    collapses whitespace, trims to `max_chars` keeping the extension, and falls back to
    "recording" when nothing printable is left.
    """
    if not name:
        return FALLBACK_DISPLAY_NAME
    text = unicodedata.normalize("NFC", name)
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(
        " " if ch.isspace() else ch
        for ch in text
        if ch.isspace() or unicodedata.category(ch)[0] != "C"
    )
    text = " ".join(text.split()).strip(" .")
    if not text:
        return FALLBACK_DISPLAY_NAME
    if len(text) > max_chars:
        stem, dot, ext = text.rpartition(".")
        if dot and stem and 0 < len(ext) <= 10:
            text = stem[: max_chars - len(ext) - 1].rstrip(" .") + "." + ext
        else:
            text = text[:max_chars].rstrip(" .")
    return text or FALLBACK_DISPLAY_NAME


def _human_duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s"


def _human_size(num_bytes: int) -> str:
    mib = num_bytes / (1024 * 1024)
    if mib >= 1:
        return f"{mib:g} MB" if mib == int(mib) else f"{mib:.1f} MB"
    return f"{num_bytes} bytes"
