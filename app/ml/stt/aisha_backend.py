"""AISHA (aisha.group) hosted speech-to-text, the backend for Uzbek.

API as documented at aisha.group/en/api-documentation and used by public client code; the
parts the documentation leaves open are marked ASSUMED:
- every request carries `X-Api-Key`;
- `POST /api/v1/stt/post/` (multipart: `audio` file, `language` uz|ru|en,
  `has_diarization`) transcribes short audio synchronously and answers JSON with the text in
  `transcript` (ASSUMED: `text` is accepted as an alias);
- `POST /api/v2/stt/post/` takes long audio asynchronously and answers `{"id": ...,
  "task_id": ..., "status": ...}`; `GET /api/v2/stt/get/{id}/` is polled until `status` is
  SUCCESS (text in `transcript`) or a failure state (ASSUMED: FAILED/FAILURE/ERROR).
AISHA returns no word times: each region's words are spread over it in proportion to their
length, so word times are estimates, exact only at region edges. It cannot identify
languages either: the language is STT_LANGUAGE, the per-call language, or Uzbek.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np

from app.ml.stt.base import Regions, SttError, SttResult, mono_float32, no_speech
from app.ml.stt.openai_backend import wav_bytes
from app.ml.stt.regions import normalise_regions, pack_regions, sorted_words, spread_words
from app.ml.types import Word

if TYPE_CHECKING:
    from app.ml.settings import PipelineSettings

DEFAULT_BASE_URL = "https://back.aisha.group"
SUPPORTED_LANGUAGES = frozenset({"uz", "ru", "en"})
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
DONE_STATES = frozenset({"SUCCESS", "DONE", "COMPLETED"})
FAILED_STATES = frozenset({"FAILED", "FAILURE", "ERROR"})


class AishaStt:
    """`SpeechToText` over AISHA's REST API, one request per speech region."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        default_language: str | None = None,
        sync_max_s: float = 60.0,
        max_retries: int = 4,
        backoff_s: float = 1.0,
        poll_interval_s: float = 3.0,
        max_wait_s: float = 900.0,
        concurrency: int = 4,
        timeout_s: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not api_key.strip():
            raise SttError("STT_BACKEND=aisha needs AISHA_API_KEY")
        self._base_url = base_url.rstrip("/")
        self._default_language = default_language
        self._sync_max_s = sync_max_s
        self._max_retries = max_retries
        self._backoff_s = backoff_s
        self._poll_interval_s = poll_interval_s
        self._max_wait_s = max_wait_s
        self._concurrency = concurrency
        self._sleep = sleep
        self._client = httpx.Client(
            base_url=self._base_url,
            headers={"X-Api-Key": api_key.strip()},
            timeout=timeout_s,
        )

    @classmethod
    def from_settings(cls, settings: PipelineSettings) -> AishaStt:
        if settings.aisha_api_key is None:
            raise SttError("STT_BACKEND=aisha needs AISHA_API_KEY")
        return cls(
            api_key=settings.aisha_api_key.get_secret_value(),
            base_url=settings.aisha_base_url or DEFAULT_BASE_URL,
            default_language=settings.stt_language,
        )

    def close(self) -> None:
        self._client.close()

    def detect_language(self, audio: np.ndarray, regions: Regions) -> tuple[str, float] | None:
        """AISHA has no language identification: None (unknown) unless STT_LANGUAGE is set."""
        if not normalise_regions(regions, len(audio) / 16_000) or not self._default_language:
            return None
        return self._default_language, 1.0

    def transcribe(self, audio: np.ndarray, *, regions: Regions, language: str | None) -> SttResult:
        audio = mono_float32(audio)
        language = language or self._default_language or "uz"
        if language not in SUPPORTED_LANGUAGES:
            raise SttError(
                f"AISHA transcribes {', '.join(sorted(SUPPORTED_LANGUAGES))}, not {language!r}"
            )
        # One group per region: max_group_s=0 never packs two regions together.
        groups = pack_regions(audio, regions, max_group_s=0.0)
        if not groups:
            return no_speech(language)

        def one(index: int) -> list[Word]:
            piece = groups[index].pieces[0]
            text = self._transcribe_clip(groups[index].audio, language)
            return spread_words(text, piece.original_start_s, piece.original_end_s)

        # Regions are independent requests; a few in flight hide the API's latency.
        with ThreadPoolExecutor(max_workers=self._concurrency) as pool:
            per_region = list(pool.map(one, range(len(groups))))
        words = sorted_words(word for region in per_region for word in region)
        return SttResult(words=words, language=language, language_probability=None)

    # --- API -----------------------------------------------------------------------------

    def _transcribe_clip(self, clip: np.ndarray, language: str) -> str:
        files = {"audio": ("speech.wav", wav_bytes(clip), "audio/wav")}
        data = {"language": language, "has_diarization": "false", "title": "ovozly"}
        if len(clip) / 16_000 <= self._sync_max_s:
            return _transcript(self._call("POST", "/api/v1/stt/post/", files=files, data=data))
        job = self._call("POST", "/api/v2/stt/post/", files=files, data=data)
        job_id = job.get("id") or job.get("task_id")
        if job_id is None:
            raise SttError(f"AISHA accepted a long upload but returned no job id: {job!r}")
        deadline = time.monotonic() + self._max_wait_s
        while time.monotonic() < deadline:
            self._sleep(self._poll_interval_s)
            status = self._call("GET", f"/api/v2/stt/get/{job_id}/")
            state = str(status.get("status", "")).upper()
            if state in DONE_STATES:
                return _transcript(status)
            if state in FAILED_STATES:
                raise SttError(f"AISHA failed to transcribe job {job_id}: {status!r}")
        raise SttError(
            f"AISHA job {job_id} did not finish within {self._max_wait_s:.0f} s", retryable=True
        )

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """One API call, retried with exponential backoff on 429/5xx and connection errors."""
        for attempt in range(self._max_retries + 1):
            last = attempt == self._max_retries
            try:
                response = self._client.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if last:
                    raise SttError(
                        f"cannot reach AISHA at {self._base_url}: {exc}; check the network "
                        "and AISHA_BASE_URL",
                        retryable=True,
                    ) from exc
                self._sleep(self._backoff_s * 2**attempt)
                continue
            if response.status_code in RETRYABLE_STATUS and not last:
                self._sleep(_retry_after(response) or self._backoff_s * 2**attempt)
                continue
            return _json(response)
        raise AssertionError("unreachable: the last attempt returns or raises")


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers["Retry-After"]))
    except (KeyError, ValueError):
        return None


def _json(response: httpx.Response) -> dict[str, Any]:
    status = response.status_code
    if status in {401, 403}:
        raise SttError(f"AISHA rejected the API key (HTTP {status}): check AISHA_API_KEY")
    if status == 429:
        raise SttError("AISHA kept rate-limiting requests (429); try again later", retryable=True)
    if status >= 400:
        raise SttError(
            f"AISHA answered HTTP {status}: {response.text[:300]}", retryable=status >= 500
        )
    try:
        payload = response.json()
    except ValueError as exc:
        raise SttError(f"AISHA answered with non-JSON: {response.text[:300]}") from exc
    if not isinstance(payload, dict):
        raise SttError(f"AISHA answered with unexpected JSON: {payload!r}")
    return payload


def _transcript(payload: dict[str, Any]) -> str:
    text = payload.get("transcript", payload.get("text"))
    if text is None:
        raise SttError(f"AISHA response has no transcript: {payload!r}")
    return str(text).strip()
