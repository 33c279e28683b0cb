"""OpenAI's hosted transcription (`whisper-1`, `gpt-4o-transcribe`, ...) as a backend.

Speech regions are packed into WAV uploads of at most 30 s (see `regions.py`), so silence
is never sent and the request count stays low on long calls. `whisper-1` is asked for
`verbose_json` with word timestamps; the gpt-4o models return text only, whose words are
spread over the upload's speech (times are estimates, exact at region edges).
`OPENAI_BASE_URL` points the client at any server speaking this API.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import numpy as np
import soundfile

from app.ml.stt.base import (
    SAMPLE_RATE,
    Regions,
    SttError,
    SttResult,
    mono_float32,
    no_speech,
    spoken_language,
)
from app.ml.stt.languages import language_code
from app.ml.stt.regions import (
    PackedGroup,
    drop_repetition_loops,
    pack_regions,
    sample_windows,
    sorted_words,
    spread_over_group,
)
from app.ml.types import Word

if TYPE_CHECKING:
    from app.ml.settings import PipelineSettings

UPLOAD_S = 30.0
LANGUAGE_WINDOWS = 3


def wav_bytes(audio: np.ndarray) -> bytes:
    """16-bit PCM WAV: a tenth of a float upload's size, and every STT API reads it."""
    buffer = io.BytesIO()
    soundfile.write(buffer, audio, SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


class OpenAiStt:
    """`SpeechToText` over the OpenAI audio transcription endpoint."""

    def __init__(self, client: Any, *, model: str) -> None:
        self._client = client
        self._model = model
        self._word_times = model.startswith("whisper")

    @classmethod
    def from_settings(cls, settings: PipelineSettings) -> OpenAiStt:
        if settings.openai_api_key is None:
            raise SttError("STT_BACKEND=openai needs OPENAI_API_KEY")
        return cls.connect(
            api_key=settings.openai_api_key.get_secret_value(),
            base_url=settings.openai_base_url,
            model=settings.stt_model or settings.openai_stt_model,
        )

    @classmethod
    def connect(
        cls,
        *,
        api_key: str,
        base_url: str | None = None,
        model: str = "whisper-1",
        max_retries: int = 4,
        timeout_s: float = 120.0,
    ) -> OpenAiStt:
        import openai

        # The client retries 408/409/429/5xx and connection errors with exponential backoff,
        # honouring Retry-After.
        client = openai.OpenAI(
            api_key=api_key, base_url=base_url, max_retries=max_retries, timeout=timeout_s
        )
        return cls(client, model=model)

    def detect_language(self, audio: np.ndarray, regions: Regions) -> tuple[str, float] | None:
        """Majority of the languages `whisper-1` reports for windows sampled over the call,
        weighted by their speech; the probability is that weighted share. The gpt-4o models
        report no language, so for them this returns None and each upload is auto-detected.
        """
        groups = pack_regions(mono_float32(audio), regions, max_group_s=UPLOAD_S, split_long=True)
        if not groups or not self._word_times:
            return None
        votes: dict[str, float] = {}
        for window in sample_windows(groups, count=LANGUAGE_WINDOWS):
            response = self._request(window, language=None)
            code = language_code(getattr(response, "language", None))
            if code:
                votes[code] = votes.get(code, 0.0) + window.speech_s
        if not votes:
            return None
        best = max(votes, key=lambda code: votes[code])
        return best, round(votes[best] / sum(votes.values()), 4)

    def transcribe(self, audio: np.ndarray, *, regions: Regions, language: str | None) -> SttResult:
        groups = pack_regions(mono_float32(audio), regions, max_group_s=UPLOAD_S, split_long=True)
        if not groups:
            return no_speech(language)
        language, probability = spoken_language(self, audio, regions, language)
        words: list[Word] = []
        for group in groups:
            response = self._request(group, language=language)
            words.extend(self._words(response, group))
        return SttResult(
            words=drop_repetition_loops(sorted_words(words)),
            language=language,
            language_probability=probability,
        )

    def _words(self, response: Any, group: PackedGroup) -> list[Word]:
        timed = getattr(response, "words", None)
        if self._word_times and timed:
            limit = group.duration_s
            return [
                group.map_word(
                    item.word.strip(), min(item.start, limit), min(item.end, limit), None
                )
                for item in timed
                if item.word.strip()
            ]
        return spread_over_group(str(getattr(response, "text", "") or ""), group)

    def _request(self, group: PackedGroup, *, language: str | None) -> Any:
        import openai

        kwargs: dict[str, Any] = {
            "model": self._model,
            "file": ("speech.wav", wav_bytes(group.audio), "audio/wav"),
        }
        if language:
            kwargs["language"] = language
        if self._word_times:
            kwargs["response_format"] = "verbose_json"
            kwargs["timestamp_granularities"] = ["word"]
        else:
            kwargs["response_format"] = "json"
        try:
            return self._client.audio.transcriptions.create(**kwargs)
        except openai.AuthenticationError as exc:
            raise SttError("OpenAI rejected the API key (401): check OPENAI_API_KEY") from exc
        except openai.PermissionDeniedError as exc:
            raise SttError(f"OpenAI refused access to model {self._model!r} (403)") from exc
        except openai.NotFoundError as exc:
            raise SttError(
                f"OpenAI has no transcription model {self._model!r} at "
                f"{self._client.base_url} (404): check STT_MODEL / OPENAI_BASE_URL"
            ) from exc
        except openai.RateLimitError as exc:
            raise SttError(
                "OpenAI kept rate-limiting transcription (429) after retries; try again later",
                retryable=True,
            ) from exc
        except openai.APIConnectionError as exc:
            raise SttError(
                f"cannot reach the OpenAI API at {self._client.base_url}: check the network "
                "and OPENAI_BASE_URL",
                retryable=True,
            ) from exc
        except openai.APIStatusError as exc:
            raise SttError(
                f"OpenAI transcription failed with HTTP {exc.status_code}: {exc.message}",
                retryable=exc.status_code >= 500,
            ) from exc
