"""`DIARIZATION_BACKEND=pyannoteai`: the hosted pyannoteAI API through its official SDK.

The decoded (16 kHz, dual-mono-folded) mono signal is what gets uploaded, as 16-bit WAV,
so the service sees exactly what the local backends would.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from app.ml.diarization.base import (
    Diarization,
    DiarizationError,
    DiarizationRequest,
    Diarizer,
    SpeakerTurn,
    speaker_label,
)
from app.ml.speech.audio import SAMPLE_RATE
from app.ml.types import Stage

DEFAULT_MODEL = "precision-2"


def _client(token: str, base_url: str | None) -> Any:
    from pyannoteai.sdk import Client

    if base_url is None:
        return Client(token=token)
    # The SDK reads its address from a class attribute, and checks the token against it
    # inside the constructor, so the override has to exist before construction.
    bound = type("PyannoteAIClient", (Client,), {"API_URL": base_url.rstrip("/")})
    return bound(token=token)


class PyannoteAIDiarizer(Diarizer):
    # Finds speech itself; the pipeline's regions are ignored.
    takes_speech_regions: ClassVar[bool] = False

    def __init__(
        self,
        token: str,
        *,
        model: str = DEFAULT_MODEL,
        base_url: str | None = None,
        poll_s: int = 5,
    ) -> None:
        if not token:
            raise DiarizationError("DIARIZATION_BACKEND=pyannoteai needs PYANNOTEAI_TOKEN")
        self.token = token
        self.model = model
        self.base_url = base_url
        self.poll_s = poll_s

    def diarize(self, request: DiarizationRequest) -> Diarization:
        import requests
        import soundfile

        hints, progress = request.hints, request.progress
        pcm = np.clip(request.audio.mono(), -1.0, 1.0)
        with tempfile.TemporaryDirectory(prefix="ovozly-pyannoteai-") as tmp:
            path = Path(tmp) / "call.wav"
            soundfile.write(path, pcm, SAMPLE_RATE, subtype="PCM_16")
            try:
                with warnings.catch_warnings():
                    # The SDK warns about its temporary storage and polling on every call.
                    warnings.simplefilter("ignore")
                    client = _client(self.token, self.base_url)
                    progress(Stage.DIARIZING, 0.0, 3.0)
                    media_url = client.upload(str(path))
                    progress(Stage.DIARIZING, 1.0, 3.0)
                    job_id = client.diarize(
                        media_url,
                        num_speakers=hints.num_speakers,
                        min_speakers=None if hints.num_speakers else hints.min_speakers,
                        max_speakers=None if hints.num_speakers else hints.max_speakers,
                        model=self.model,
                    )
                    job = client.retrieve(job_id, every_seconds=self.poll_s)
            except requests.RequestException as error:
                raise DiarizationError(f"pyannoteAI request failed: {error}") from error
            except Exception as error:
                if type(error).__name__ in {"PyannoteAIFailedJob", "PyannoteAICanceledJob"}:
                    raise DiarizationError(f"pyannoteAI job did not succeed: {error}") from error
                raise
        progress(Stage.DIARIZING, 3.0, 3.0)
        return parse_output(job)


def parse_output(job: dict[str, Any]) -> Diarization:
    output = job.get("output") or {}
    entries = output.get("diarization")
    if not isinstance(entries, list):
        raise DiarizationError("pyannoteAI returned no diarization in the job output")
    labels: dict[str, str] = {}
    turns: list[SpeakerTurn] = []
    for entry in sorted(entries, key=lambda e: (float(e["start"]), float(e["end"]))):
        name = labels.setdefault(str(entry["speaker"]), speaker_label(len(labels)))
        turns.append(SpeakerTurn(name, float(entry["start"]), float(entry["end"])))
    return Diarization(turns=turns)
