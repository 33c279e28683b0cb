"""OpenAI and AISHA backends against loopback servers that speak their APIs.

The servers transcribe what they receive with the bundled Whisper model, so the tests also
prove the right audio (16 kHz mono WAV of the speech regions only) goes over the wire.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from app.ml.stt import SAMPLE_RATE, SttError
from app.ml.stt.aisha_backend import AishaStt
from app.ml.stt.faster_whisper_backend import FasterWhisperStt
from app.ml.stt.openai_backend import OpenAiStt
from app.ml.stt.regions import normalise_regions
from tests.ml.stt.conftest import (
    assert_words_well_formed,
    load_audio,
    normalise_text,
    speech_regions,
)

pytestmark = pytest.mark.slow

API_KEY = "test-key"

Handler = Callable[["Request"], tuple[int, dict[str, Any]]]


class Request:
    def __init__(self, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        self.method, self.path, self.headers, self.body = method, path, headers, body
        self.fields: dict[str, bytes] = {}
        content_type = headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            message = BytesParser(policy=HTTP).parsebytes(
                f"Content-Type: {content_type}\r\n\r\n".encode() + body
            )
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                payload = part.get_payload(decode=True)
                assert isinstance(payload, bytes)
                self.fields[str(name)] = payload


class LoopbackServer:
    """A threaded HTTP server on 127.0.0.1 answering every request with `handler`."""

    def __init__(self, handler: Handler) -> None:
        self.requests: list[Request] = []
        outer = self

        class _Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                request = Request(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )
                outer.requests.append(request)
                status, payload = handler(request)
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                if status == 429:
                    self.send_header("Retry-After", "0")
                    self.send_header("retry-after-ms", "10")
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _serve

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def decode_upload(data: bytes) -> np.ndarray:
    audio, rate = soundfile.read(io.BytesIO(data), dtype="float32")
    assert rate == SAMPLE_RATE and audio.ndim == 1
    return np.asarray(audio)


@pytest.fixture(scope="module")
def jfk(test_audio_dir: Path) -> tuple[np.ndarray, list[tuple[float, float]], str]:
    audio = load_audio(test_audio_dir / "openai_whisper_jfk.flac")
    reference = (test_audio_dir / "openai_whisper_jfk.txt").read_text()
    return audio, speech_regions(audio), reference


# --- OpenAI ------------------------------------------------------------------------------


def openai_handler(recogniser: FasterWhisperStt, *, fail_first: int = 0) -> Handler:
    calls = {"n": 0}

    def handle(request: Request) -> tuple[int, dict[str, Any]]:
        calls["n"] += 1
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return 401, {"error": {"message": "Incorrect API key provided", "type": "auth"}}
        if calls["n"] <= fail_first:
            return 429, {"error": {"message": "Rate limit reached", "type": "requests"}}
        assert request.path == "/v1/audio/transcriptions"
        assert request.fields["response_format"] == b"verbose_json"
        assert request.fields["timestamp_granularities[]"] == b"word"
        audio = decode_upload(request.fields["file"])
        duration = len(audio) / SAMPLE_RATE
        result = recogniser.transcribe(audio, regions=[(0.0, duration)], language="en")
        return 200, {
            "task": "transcribe",
            "language": "english",
            "duration": duration,
            "text": " ".join(w.text for w in result.words),
            "words": [{"word": w.text, "start": w.start_s, "end": w.end_s} for w in result.words],
        }

    return handle


def test_openai_whisper_1_words_map_back_to_the_call(
    bundled_stt: FasterWhisperStt, jfk: tuple[np.ndarray, list[tuple[float, float]], str]
) -> None:
    audio, regions, reference = jfk
    # The call starts with 20 s of silence that must never be uploaded.
    padded = np.concatenate([np.zeros(20 * SAMPLE_RATE, np.float32), audio])
    shifted = [(s + 20.0, e + 20.0) for s, e in regions]
    with LoopbackServer(openai_handler(bundled_stt, fail_first=1)) as server:
        stt = OpenAiStt.connect(api_key=API_KEY, base_url=f"{server.url}/v1", model="whisper-1")
        result = stt.transcribe(padded, regions=shifted, language=None)

    assert result.language == "en" and result.language_probability == 1.0
    assert normalise_text(" ".join(w.text for w in result.words)) == normalise_text(reference)
    assert_words_well_formed(result.words, shifted)
    uploads = [r for r in server.requests if "file" in r.fields]
    assert all(len(decode_upload(r.fields["file"])) < len(audio) + SAMPLE_RATE for r in uploads)
    # One 429 answered, retried, then detection and transcription both succeeded.
    assert len(server.requests) == 3


def test_openai_bad_key_and_unreachable_host(
    bundled_stt: FasterWhisperStt, jfk: tuple[np.ndarray, list[tuple[float, float]], str]
) -> None:
    audio, regions, _ = jfk
    with LoopbackServer(openai_handler(bundled_stt)) as server:
        stt = OpenAiStt.connect(api_key="wrong", base_url=f"{server.url}/v1", max_retries=0)
        with pytest.raises(SttError, match="rejected the API key"):
            stt.transcribe(audio, regions=regions, language="en")
        url = server.url
    # The server is gone: nothing listens on that port any more.
    stt = OpenAiStt.connect(api_key=API_KEY, base_url=f"{url}/v1", max_retries=0)
    with pytest.raises(SttError, match="cannot reach") as caught:
        stt.transcribe(audio, regions=regions, language="en")
    assert caught.value.retryable


# --- AISHA -------------------------------------------------------------------------------


def aisha_handler(recogniser: FasterWhisperStt, *, fail_first: int = 0) -> Handler:
    calls = {"n": 0}
    jobs: dict[int, str] = {}
    polls: dict[int, int] = {}

    def text_of(request: Request) -> str:
        audio = decode_upload(request.fields["audio"])
        result = recogniser.transcribe(
            audio, regions=[(0.0, len(audio) / SAMPLE_RATE)], language="en"
        )
        return " ".join(w.text for w in result.words)

    def handle(request: Request) -> tuple[int, dict[str, Any]]:
        calls["n"] += 1
        if request.headers.get("x-api-key") != API_KEY:
            return 401, {"detail": "Invalid API key"}
        if calls["n"] <= fail_first:
            return 503 if calls["n"] % 2 else 429, {"detail": "busy"}
        if request.method == "POST" and request.path == "/api/v1/stt/post/":
            assert request.fields["language"] == b"en"
            return 200, {"id": calls["n"], "transcript": text_of(request)}
        if request.method == "POST" and request.path == "/api/v2/stt/post/":
            job = 1000 + len(jobs)
            jobs[job] = text_of(request)
            return 201, {"id": job, "task_id": f"task-{job}", "status": "PENDING"}
        if request.method == "GET" and request.path.startswith("/api/v2/stt/get/"):
            job = int(request.path.rstrip("/").rsplit("/", 1)[1])
            polls[job] = polls.get(job, 0) + 1
            if polls[job] < 2:
                return 200, {"id": job, "status": "PENDING"}
            return 200, {"id": job, "status": "SUCCESS", "transcript": jobs[job]}
        return 404, {"detail": "not found"}

    return handle


def test_aisha_region_by_region_with_retries(
    bundled_stt: FasterWhisperStt, jfk: tuple[np.ndarray, list[tuple[float, float]], str]
) -> None:
    audio, regions, reference = jfk
    with LoopbackServer(aisha_handler(bundled_stt, fail_first=2)) as server:
        stt = AishaStt(api_key=API_KEY, base_url=server.url, backoff_s=0.01, concurrency=1)
        result = stt.transcribe(audio, regions=regions, language="en")

    assert result.language == "en"
    posts = [r for r in server.requests if r.path == "/api/v1/stt/post/"]
    # Every region (touching ones count as one), plus a 503 and a 429 that were retried.
    assert len(posts) == len(normalise_regions(regions, len(audio) / SAMPLE_RATE)) + 2
    assert all(r.headers["x-api-key"] == API_KEY for r in server.requests)
    words = normalise_text(" ".join(w.text for w in result.words)).split()
    expected = normalise_text(reference).split()
    # Each region is recognised alone, so a word cut at a region edge may differ.
    assert len(set(words) & set(expected)) >= 0.8 * len(set(expected))
    assert_words_well_formed(result.words, regions, tolerance_s=0.0)


def test_aisha_long_region_goes_async_and_is_polled(
    bundled_stt: FasterWhisperStt, jfk: tuple[np.ndarray, list[tuple[float, float]], str]
) -> None:
    audio, _, reference = jfk
    with LoopbackServer(aisha_handler(bundled_stt)) as server:
        stt = AishaStt(api_key=API_KEY, base_url=server.url, sync_max_s=5.0, poll_interval_s=0.01)
        result = stt.transcribe(audio, regions=[(0.0, 11.0)], language="en")

    paths = [r.path for r in server.requests]
    assert paths[0] == "/api/v2/stt/post/" and paths.count("/api/v2/stt/get/1000/") == 2
    assert normalise_text(" ".join(w.text for w in result.words)) == normalise_text(reference)
    assert result.words[0].start_s == 0.0 and result.words[-1].end_s == 11.0


def test_aisha_bad_key_is_not_retried(
    bundled_stt: FasterWhisperStt, jfk: tuple[np.ndarray, list[tuple[float, float]], str]
) -> None:
    audio, regions, _ = jfk
    with LoopbackServer(aisha_handler(bundled_stt)) as server:
        stt = AishaStt(api_key="wrong", base_url=server.url, backoff_s=0.01, concurrency=1)
        with pytest.raises(SttError, match="rejected the API key") as caught:
            stt.transcribe(audio, regions=regions[:1], language="uz")
    assert len(server.requests) == 1 and not caught.value.retryable
