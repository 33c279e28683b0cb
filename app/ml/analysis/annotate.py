"""Steps both backends share: per-segment roles, language and sentiment; entities; redaction;
metrics. The LLM backend reuses them so segments and metrics never depend on an LLM."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from app.core.enums import Sentiment, SpeakerRole
from app.ml.analysis import entities as ent
from app.ml.analysis import language as lang
from app.ml.analysis import sentiment as polarity
from app.ml.analysis.insights import segment_weight
from app.ml.analysis.metrics import compute_metrics
from app.ml.analysis.redaction import redact_segment
from app.ml.analysis.roles import assign_roles
from app.ml.analysis.settings import AnalysisSettings
from app.ml.types import (
    AnalysisResult,
    CallInsight,
    CallMetrics,
    Entity,
    Transcript,
    TranscriptSegment,
)


@dataclass(slots=True)
class Annotated:
    """Segments with role, language and sentiment filled in (text still unredacted)."""

    segments: list[TranscriptSegment]
    roles: dict[str, SpeakerRole]
    language: str
    sentiment_score: float


def is_empty(transcript: Transcript) -> bool:
    return not any(segment.text.strip() for segment in transcript.segments)


def annotate(
    transcript: Transcript,
    settings: AnalysisSettings,
    role_overrides: Mapping[str, SpeakerRole] | None,
) -> Annotated:
    ordered = sorted(
        (s for s in transcript.segments if s.text.strip()), key=lambda s: (s.start_s, s.end_s)
    )
    ordered_transcript = replace(transcript, segments=ordered)
    roles = assign_roles(
        ordered_transcript, agent_channel=settings.agent_channel, overrides=role_overrides
    )
    guesses = [lang.detect_segment(segment.text) for segment in ordered]
    call_language = lang.detect_call(guesses)
    codes = lang.settle_segments(guesses, call_language)
    segments: list[TranscriptSegment] = []
    for segment, code in zip(ordered, codes, strict=True):
        score = round(polarity.score_text(segment.text, code), 4)
        segments.append(
            replace(
                segment,
                words=list(segment.words),
                role=roles.get(segment.speaker, SpeakerRole.UNKNOWN),
                # The pipeline's per-turn decision (audio, checked against text) wins; the
                # text identifier fills in for transcripts that carry no language.
                language=segment.language or (code if code != lang.UNDETERMINED else None),
                sentiment=polarity.label(score),
                sentiment_score=score,
            )
        )
    call_score = polarity.call_score(
        [s.sentiment_score or 0.0 for s in segments], [segment_weight(s) for s in segments]
    )
    return Annotated(segments, roles, call_language, call_score)


def extract_entities(segments: Sequence[TranscriptSegment], *, names: bool) -> list[Entity]:
    """Entities of the whole call (unredacted values), first mention of each value kept."""
    per_segment: list[list[ent.Span]] = [ent.pattern_spans(s.text) for s in segments]
    if names:
        russian = [i for i, s in enumerate(segments) if s.language == "ru"]
        for i, spans in zip(
            russian, ent.russian_names([segments[i].text for i in russian]), strict=True
        ):
            per_segment[i].extend(spans)
        for i, segment in enumerate(segments):
            taken = {span.value for span in per_segment[i] if span.type == ent.PERSON}
            for span in ent.introduced_names(segment.text):
                if not any(span.value in value or value in span.value for value in taken):
                    per_segment[i].append(span)
    found: list[Entity] = []
    seen: set[tuple[str, str]] = set()
    for i, spans in enumerate(per_segment):
        segment = segments[i]
        for span in spans:
            key = (span.type, span.value.lower())
            if key in seen:
                continue
            seen.add(key)
            # Card and account numbers are never kept whole, whatever REDACT_PII says.
            value = ent.masked_value(span) if span.type in (ent.CARD, ent.ACCOUNT) else span.value
            found.append(
                Entity(
                    span.type,
                    value,
                    speaker=segment.speaker,
                    start_s=segment.start_s,
                    segment_index=i,
                )
            )
    return found


def redact_entities(entities: Sequence[Entity]) -> list[Entity]:
    redacted: list[Entity] = []
    for entity in entities:
        if entity.type in ent.PII_TYPES:
            span = ent.Span(entity.type, 0, 0, entity.value)
            redacted.append(replace(entity, value=ent.masked_value(span)))
        else:
            redacted.append(entity)
    return redacted


def finish_segments(
    segments: Sequence[TranscriptSegment], *, redact: bool
) -> list[TranscriptSegment]:
    return [redact_segment(s) for s in segments] if redact else list(segments)


@dataclass(slots=True)
class Prepared:
    """What every analyzer starts from: the annotated turns, the entities found in them, and
    the turns as shown (PII redacted when REDACT_PII is on; entities masked likewise)."""

    annotated: Annotated
    entities: list[Entity]
    shown: list[TranscriptSegment]


def prepare(
    transcript: Transcript,
    settings: AnalysisSettings,
    role_overrides: Mapping[str, SpeakerRole] | None,
    *,
    person_names: bool,
) -> Prepared:
    """The analyzers' common opening: annotate, find entities, redact."""
    annotated = annotate(transcript, settings, role_overrides)
    entities = extract_entities(annotated.segments, names=person_names)
    shown = finish_segments(annotated.segments, redact=settings.redact_pii)
    if settings.redact_pii:
        entities = redact_entities(entities)
    return Prepared(annotated, entities, shown)


def metrics_for(
    transcript: Transcript,
    segments: Sequence[TranscriptSegment],
    roles: Mapping[str, SpeakerRole],
    settings: AnalysisSettings,
) -> CallMetrics:
    return compute_metrics(
        segments,
        transcript.duration_s,
        roles,
        interruption_threshold_s=settings.interruption_threshold_s,
    )


def empty_insight(transcript: Transcript, settings: AnalysisSettings) -> CallInsight:
    """A silence-only call: a valid analysis with language "und", not a failure."""
    return CallInsight(
        segments=[],
        analysis=AnalysisResult(
            language=lang.UNDETERMINED, summary="", sentiment=Sentiment.NEUTRAL, sentiment_score=0.0
        ),
        metrics=compute_metrics(
            [],
            transcript.duration_s,
            {},
            interruption_threshold_s=settings.interruption_threshold_s,
        ),
    )
