"""PII redaction of segment text and words: card and account numbers keep their last four
digits, phones and emails become placeholders. Works on copies; the caller drops the originals."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from app.ml.analysis.entities import Span, pii_spans, text_mask
from app.ml.types import TranscriptSegment, Word


def redact_text(text: str, spans: Sequence[Span] | None = None) -> str:
    spans = pii_spans(text) if spans is None else spans
    for span in sorted(spans, key=lambda span: span.start, reverse=True):
        text = text[: span.start] + text_mask(span) + text[span.end :]
    return text


def redact_words(words: Sequence[Word]) -> list[Word]:
    """Words that make up a PII span are merged into one word holding the mask, timed from the
    first to the last of them (a card read as four groups must not leave its groups behind)."""
    if not words:
        return []
    offsets: list[tuple[int, int]] = []
    position = 0
    for word in words:
        offsets.append((position, position + len(word.text)))
        position += len(word.text) + 1
    joined = " ".join(word.text for word in words)
    spans = pii_spans(joined)
    if not spans:
        return list(words)
    out: list[Word] = []
    i = 0
    while i < len(words):
        start, end = offsets[i]
        span = next((s for s in spans if start < s.end and s.start < end), None)
        if span is None:
            out.append(words[i])
            i += 1
            continue
        j = i
        while j + 1 < len(words) and offsets[j + 1][0] < span.end:
            j += 1
        confidences = [w.confidence for w in words[i : j + 1] if w.confidence is not None]
        out.append(
            Word(
                text=text_mask(span),
                start_s=words[i].start_s,
                end_s=words[j].end_s,
                confidence=min(confidences) if confidences else None,
            )
        )
        i = j + 1
    return out


def redact_segment(segment: TranscriptSegment) -> TranscriptSegment:
    return replace(segment, text=redact_text(segment.text), words=redact_words(segment.words))
