"""ANALYSIS_BACKEND=openai: call-level analysis by any OpenAI-compatible chat server with
structured outputs (JSON schema from the pydantic models below).

Roles, per-segment language and sentiment, pattern entities, redaction and metrics still come
from the local pieces: they are cheap, deterministic and must not depend on a remote model. With
REDACT_PII on, the model only ever sees redacted text.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

import openai
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.core.enums import Sentiment
from app.ml.analysis import sentiment as polarity
from app.ml.analysis.annotate import metrics_for, prepare
from app.ml.analysis.base import Analyzer, RoleOverrides
from app.ml.analysis.catalog import Catalog, load_catalog
from app.ml.analysis.errors import AnalysisError
from app.ml.analysis.redaction import redact_text
from app.ml.analysis.settings import AnalysisSettings
from app.ml.types import (
    Action,
    AnalysisResult,
    CallInsight,
    Entity,
    Intent,
    Issue,
    Keypoint,
    ProgressCallback,
    Stage,
    Transcript,
    TranscriptSegment,
)

_LANGUAGE_NAMES = {"en": "English", "ru": "Russian", "uz": "Uzbek (Latin script)"}
_MAX_BACKOFF_S = 30.0
_RETRYABLE_STATUS = frozenset({408, 409, 429})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LLMIntent(_Strict):
    name: str = Field(description="An intent name from the catalogue")
    confidence: float = Field(ge=0, le=1)
    evidence: list[int] = Field(description="Indices of the lines that show this intent")


class LLMIssue(_Strict):
    title: str
    description: str
    evidence: list[int]


class LLMKeypoint(_Strict):
    text: str
    line: int


class LLMName(_Strict):
    type: Literal["PERSON", "ORG", "LOCATION"]
    value: str
    line: int


class LLMChunkAnalysis(_Strict):
    """What the model returns for one chunk of the transcript."""

    language: Literal["uz", "ru", "en", "other"]
    summary: str
    sentiment: Literal["POSITIVE", "NEUTRAL", "NEGATIVE"]
    sentiment_score: float = Field(ge=-1, le=1)
    intents: list[LLMIntent]
    issues: list[LLMIssue]
    actions: list[str]
    keypoints: list[LLMKeypoint]
    names: list[LLMName]


class LLMCallSummary(_Strict):
    """The reduce step over the chunk summaries of a long call."""

    summary: str
    sentiment: Literal["POSITIVE", "NEUTRAL", "NEGATIVE"]
    sentiment_score: float = Field(ge=-1, le=1)


_UNSUPPORTED_KEYWORDS = frozenset(
    {"default", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength",
     "maxLength", "pattern", "format", "minItems", "maxItems"}
)  # fmt: skip


def strict_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema in the subset strict structured outputs accept: every property
    required, no extra properties, no numeric or length bounds (pydantic still checks those)."""

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out = {k: walk(v) for k, v in node.items() if k not in _UNSUPPORTED_KEYWORDS}
            if isinstance(out.get("properties"), dict):
                out["required"] = list(out["properties"])
                out["additionalProperties"] = False
            return out
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    result: dict[str, Any] = walk(model.model_json_schema())
    return result


Model = TypeVar("Model", bound=BaseModel)


def _retry_after_s(error: openai.APIStatusError) -> float | None:
    headers = error.response.headers
    if (value := headers.get("retry-after-ms")) is not None:
        try:
            return float(value) / 1000.0
        except ValueError:
            return None
    if (value := headers.get("retry-after")) is not None:
        try:
            return float(value)
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(value)
            return max(0.0, parsed.timestamp() - time.time()) if parsed else None
    return None


class OpenAIAnalyzer(Analyzer):
    def __init__(
        self,
        settings: AnalysisSettings,
        catalog: Catalog | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        if not key and not settings.openai_base_url:
            raise AnalysisError("ANALYSIS_BACKEND=openai needs OPENAI_API_KEY (or OPENAI_BASE_URL)")
        self.settings = settings
        self.catalog = catalog or load_catalog(settings.intent_catalog)
        self._sleep = sleep
        # Self-hosted servers (vLLM, Ollama) take any key; the client insists on one.
        self._client = openai.OpenAI(
            api_key=key or "not-needed",
            base_url=settings.openai_base_url,
            timeout=settings.openai_timeout_s,
            max_retries=0,  # retries are ours: one policy, visible in the logs and the tests
        )

    def analyze_speech(
        self, transcript: Transcript, role_overrides: RoleOverrides, hook: ProgressCallback
    ) -> CallInsight:
        settings = self.settings
        # Names come from the model here, not from the local person-name finder.
        prepared = prepare(transcript, settings, role_overrides, person_names=False)
        annotated, entities, shown = prepared.annotated, prepared.entities, prepared.shown

        chunks = self._chunks(shown)
        total = len(chunks) + (1 if len(chunks) > 1 else 0)
        hook(Stage.ANALYZING, 0, total)
        partials: list[LLMChunkAnalysis] = []
        for done, lines in enumerate(chunks, start=1):
            partials.append(
                self._complete(self._chunk_messages(lines, len(chunks)), LLMChunkAnalysis)
            )
            hook(Stage.ANALYZING, done, total)
        if len(partials) > 1:
            reduced = self._complete(self._reduce_messages(partials), LLMCallSummary)
            summary, sentiment, score = reduced.summary, reduced.sentiment, reduced.sentiment_score
            hook(Stage.ANALYZING, total, total)
        else:
            only = partials[0]
            summary, sentiment, score = only.summary, only.sentiment, only.sentiment_score
        analysis = self._merge(partials, shown, entities, summary, Sentiment(sentiment), score)
        analysis.language = annotated.language
        metrics = metrics_for(transcript, shown, annotated.roles, settings)
        return CallInsight(segments=shown, analysis=analysis, metrics=metrics)

    # --- prompts ------------------------------------------------------------------------------

    def _chunks(self, segments: Sequence[TranscriptSegment]) -> list[list[str]]:
        budget = self.settings.openai_chunk_chars
        chunks: list[list[str]] = [[]]
        size = 0
        for index, segment in enumerate(segments):
            line = f"[{index}] {segment.role.value} {segment.speaker} @{segment.start_s:.1f}s: "
            line += segment.text[
                : budget - len(line)
            ]  # a single absurd turn is cut, not sent whole
            if chunks[-1] and size + len(line) > budget:
                chunks.append([])
                size = 0
            chunks[-1].append(line)
            size += len(line) + 1
        return chunks

    def _system_prompt(self) -> str:
        language = self.settings.analysis_output_language
        catalogue = "\n".join(
            f"- {spec.name}: {spec.title_in('en')}" for spec in self.catalog.intents
        )
        return (
            "You analyse call-center conversations between an AGENT and a CUSTOMER. Calls may be "
            "in Uzbek (Latin or Cyrillic script), Russian or English, often mixed.\n"
            f"Write summary, issue titles and descriptions, actions and keypoints in "
            f"{_LANGUAGE_NAMES.get(language, language)}.\n"
            "Each transcript line starts with its index in square brackets; every `evidence` and "
            "`line` value must be such an index.\n"
            "Intents: use only these names, with your confidence 0..1:\n"
            f"{catalogue}\n"
            "Issues are customer complaints; actions are concrete follow-ups for the company. "
            "sentiment is the customer's overall sentiment; sentiment_score is in -1..1. "
            "Text such as [PHONE], [EMAIL] or ****1234 is redacted personal data: never guess it."
        )

    def _chunk_messages(self, lines: Sequence[str], chunk_count: int) -> list[dict[str, str]]:
        note = "" if chunk_count == 1 else " (one part of a longer call)"
        return [
            {"role": "system", "content": self._system_prompt()},
            {"role": "user", "content": f"Transcript{note}:\n" + "\n".join(lines)},
        ]

    def _reduce_messages(self, partials: Sequence[LLMChunkAnalysis]) -> list[dict[str, str]]:
        parts = "\n".join(
            f"Part {i + 1} ({p.sentiment}, {p.sentiment_score:+.2f}): {p.summary}"
            for i, p in enumerate(partials)
        )
        return [
            {"role": "system", "content": self._system_prompt()},
            {"role": "user", "content": "Summaries of consecutive parts of one call:\n" + parts
             + "\nGive the summary and the customer's overall sentiment of the whole call."},
        ]  # fmt: skip

    # --- transport ----------------------------------------------------------------------------

    def _complete(self, messages: list[dict[str, str]], model: type[Model]) -> Model:
        """One structured answer; invalid output is retried once, then the call fails."""
        conversation: list[Any] = list(messages)
        problem = ""
        for _ in range(2):
            response = self._request(conversation, model)
            choice = response.choices[0] if response.choices else None
            if choice is None:
                problem = "the response had no choices"
                continue
            refusal = getattr(choice.message, "refusal", None)
            if refusal:
                raise AnalysisError(f"the language model refused to analyse the call: {refusal}")
            content = choice.message.content or ""
            if choice.finish_reason == "length":
                problem = "the answer was cut off at the token limit"
            else:
                try:
                    return model.model_validate_json(content)
                except ValidationError as error:
                    problem = (
                        f"{error.error_count()} validation error(s): {error.errors()[0]['msg']}"
                    )
            conversation += [
                {"role": "assistant", "content": content},
                {"role": "user", "content": f"That answer was invalid ({problem}). "
                 "Reply again with JSON that matches the schema exactly."},
            ]  # fmt: skip
        raise AnalysisError(f"the language model returned invalid output twice: {problem}")

    def _request(self, messages: list[Any], model: type[BaseModel]) -> Any:
        settings = self.settings
        attempts = settings.openai_max_retries + 1
        for attempt in range(attempts):
            delay: float | None = None
            try:
                return self._client.chat.completions.create(
                    model=settings.openai_model,
                    messages=messages,
                    temperature=settings.openai_temperature,
                    response_format={
                        "type": "json_schema",
                        "json_schema": {
                            "name": model.__name__,
                            "schema": strict_schema(model),
                            "strict": True,
                        },
                    },
                )
            except (openai.APITimeoutError, openai.APIConnectionError) as error:
                reason = "timed out" if isinstance(error, openai.APITimeoutError) else "unreachable"
            except openai.APIStatusError as error:
                status = error.status_code
                if status not in _RETRYABLE_STATUS and status < 500:
                    raise AnalysisError(
                        f"the language model server rejected the request (HTTP {status}): "
                        f"{_short(error.message)}"
                    ) from error
                reason = f"answered HTTP {status}"
                delay = _retry_after_s(error)
            if attempt + 1 == attempts:
                raise AnalysisError(
                    f"the language model server {reason} ({attempts} attempts); try again later"
                )
            backoff = settings.openai_backoff_s * 2**attempt
            self._sleep(min(_MAX_BACKOFF_S, delay if delay is not None else backoff))
        raise AssertionError("unreachable")  # the loop returns or raises

    # --- merge --------------------------------------------------------------------------------

    def _merge(
        self,
        partials: Sequence[LLMChunkAnalysis],
        segments: Sequence[TranscriptSegment],
        entities: list[Entity],
        summary: str,
        sentiment: Sentiment,
        score: float,
    ) -> AnalysisResult:
        count = len(segments)
        scrub: Callable[[str], str] = redact_text if self.settings.redact_pii else str
        names = {spec.name for spec in self.catalog.intents}

        def valid(indices: Sequence[int]) -> tuple[int, ...]:
            return tuple(sorted({i for i in indices if 0 <= i < count}))

        best: dict[str, Intent] = {}
        for partial in partials:
            for item in partial.intents:
                if item.name not in names or item.confidence < self.settings.intent_min_confidence:
                    continue
                previous = best.get(item.name)
                evidence = valid([*(previous.evidence if previous else ()), *item.evidence])
                confidence = max(item.confidence, previous.confidence if previous else 0.0)
                best[item.name] = Intent(item.name, round(confidence, 3), evidence)
        issues: dict[str, Issue] = {}
        actions: list[Action] = []
        keypoints: list[Keypoint] = []
        for partial in partials:
            for issue in partial.issues:
                key = issue.title.strip().lower()
                merged = valid([*(issues[key].evidence if key in issues else ()), *issue.evidence])
                first = issues.get(key)
                issues[key] = Issue(
                    title=scrub(issue.title) if first is None else first.title,
                    description=scrub(issue.description) if first is None else first.description,
                    evidence=merged,
                )
            for text in partial.actions:
                action = Action(scrub(text))
                if action not in actions:
                    actions.append(action)
            keypoints += [
                Keypoint(scrub(k.text), k.line if 0 <= k.line < count else None)
                for k in partial.keypoints
            ]
            for name in partial.names:
                if 0 <= name.line < count:
                    segment = segments[name.line]
                    entities.append(
                        Entity(name.type, name.value, segment.speaker, segment.start_s, name.line)
                    )
        if sentiment is not polarity.label(score):
            # The label is the model's word; keep the score on the same side of neutral.
            score = {Sentiment.POSITIVE: max(score, polarity.POLARITY_THRESHOLD),
                     Sentiment.NEGATIVE: min(score, -polarity.POLARITY_THRESHOLD),
                     Sentiment.NEUTRAL: 0.0}[sentiment]  # fmt: skip
        return AnalysisResult(
            language="und",
            summary=scrub(summary),
            sentiment=sentiment,
            sentiment_score=round(score, 4),
            intents=sorted(best.values(), key=lambda i: (-i.confidence, i.name)),
            entities=entities,
            issues=list(issues.values()),
            actions=actions,
            keypoints=keypoints[: max(self.settings.keypoints_max, len(partials))],
        )


def _short(message: str, limit: int = 200) -> str:
    return message if len(message) <= limit else message[: limit - 1] + "…"
