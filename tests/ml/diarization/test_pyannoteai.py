"""The pyannoteAI backend through the official SDK, against a loopback server that speaks
the API's routes (token check, media upload via presigned URL, diarize job, job polling)."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import soundfile

from app.ml.diarization import DiarizationError, build_mono_diarizer
from app.ml.settings import PipelineSettings
from app.ml.speech.audio import decode_audio
from app.ml.speech.vad import SileroVad
from app.ml.types import SpeakerHints

TOKEN = "test-token"


class FakePyannoteAI(BaseHTTPRequestHandler):
    uploads: ClassVar[dict[str, bytes]] = {}
    jobs: ClassVar[dict[str, dict[str, Any]]] = {}
    polls: ClassVar[list[str]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorised(self) -> bool:
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._json(401, {"message": "bad token"})
            return False
        return True

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def do_GET(self) -> None:
        if not self._authorised():
            return
        if self.path == "/v1/test":
            self._json(200, {"status": "ok"})
        elif self.path.startswith("/v1/jobs/"):
            job_id = self.path.rsplit("/", 1)[1]
            self.polls.append(job_id)
            self._json(200, self.jobs[job_id])
        else:
            self._json(404, {})

    def do_POST(self) -> None:
        if not self._authorised():
            return
        body = json.loads(self._body())
        if self.path == "/v1/media/input":
            port = self.server.server_port  # type: ignore[attr-defined]
            host = "127.0.0.1"
            self._json(201, {"url": f"http://{host}:{port}/upload/{body['url'][8:]}"})
        elif self.path == "/v1/diarize":
            key = body["url"][8:]
            if key not in self.uploads:
                self._json(400, {"message": "unknown media"})
                return
            job_id = f"job-{len(self.jobs)}"
            count = body["numSpeakers"] or 2
            turns = [
                {"speaker": f"S{i % count}", "start": float(i), "end": float(i) + 0.9}
                for i in range(6)
            ]
            self.jobs[job_id] = {
                "jobId": job_id,
                "status": "succeeded",
                "request": body,
                "output": {"diarization": turns},
            }
            self._json(200, {"jobId": job_id, "status": "created"})
        else:
            self._json(404, {})

    def do_PUT(self) -> None:
        key = self.path.split("/upload/", 1)[1]
        self.uploads[key] = self._body()
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakePyannoteAI)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


def settings(base_url: str, token: str = TOKEN) -> PipelineSettings:
    return PipelineSettings(
        _env_file=None,
        diarization_backend="pyannoteai",
        pyannoteai_token=token,
        pyannoteai_base_url=base_url,
    )


def test_diarizes_through_the_sdk(server: str, test_audio_dir: Path) -> None:
    diarizer = build_mono_diarizer(settings(server), "cpu", SileroVad())
    audio = decode_audio(test_audio_dir / "openai_whisper_jfk.flac")
    result = diarizer(audio, hints=SpeakerHints(num_speakers=3))

    job = next(iter(FakePyannoteAI.jobs.values()))
    assert job["request"]["numSpeakers"] == 3
    assert job["request"]["model"] == "precision-2"
    # What was uploaded is the decoded, dual-mono-folded call: 16 kHz mono WAV.
    uploaded = FakePyannoteAI.uploads[job["request"]["url"][8:]]
    data, rate = soundfile.read(io.BytesIO(uploaded))
    assert rate == 16_000 and data.ndim == 1
    assert len(data) / rate == pytest.approx(11.0, abs=0.01)
    assert result.speakers == ["SPEAKER_00", "SPEAKER_01", "SPEAKER_02"]
    assert [(t.start_s, t.speaker) for t in result.turns[:4]] == [
        (0.0, "SPEAKER_00"),
        (1.0, "SPEAKER_01"),
        (2.0, "SPEAKER_02"),
        (3.0, "SPEAKER_00"),
    ]


def test_bad_token_is_a_diarization_error(server: str, test_audio_dir: Path) -> None:
    diarizer = build_mono_diarizer(settings(server, token="wrong"), "cpu", SileroVad())
    audio = decode_audio(test_audio_dir / "pisets_test_sound_en.wav")
    with pytest.raises(DiarizationError, match="pyannoteAI"):
        diarizer(audio, hints=SpeakerHints())
