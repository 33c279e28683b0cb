"""PII redaction of segment text and words: card and account numbers keep their last four
digits, phones and emails become placeholders. Works on copies; the caller drops the originals.

Numbers said as words ("four five three two ...", "сорок пять тридцать два ...") and the
kinds only speech redaction names (passport numbers, security codes, long digit strings)
are found by the same detection that masks the audio (`app.ml.redaction.spoken`) and become
`[CARD]`, `[PASSPORT]`, ...: what `Call.redactions` lists as masked is masked in the text too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from app.ml.analysis.entities import Span, pii_spans, text_mask
from app.ml.redaction.spoken import spoken_word_ranges
from app.ml.types import TranscriptSegment, Word

_TOKEN = re.compile(r"\S+")
_EDGE = ",.;:!?()[]«»\"'"
"""Punctuation around a token stays outside its mask ("9012," keeps its comma)."""


def _spoken_mask(kind: str) -> str:
    return f"[{kind}]"


def redact_text(text: str, spans: Sequence[Span] | None = None) -> str:
    spans = pii_spans(text) if spans is None else spans
    ranges = [(span.start, span.end, text_mask(span)) for span in spans]
    # What is said in words, read over the text's tokens.
    tokens = list(_TOKEN.finditer(text))
    known = [
        (touched[0], touched[-1], span.type)
        for span in spans
        if (
            touched := [
                i for i, t in enumerate(tokens) if t.start() < span.end and span.start < t.end()
            ]
        )
    ]
    pseudo_words = [Word(t.group(), float(i), float(i)) for i, t in enumerate(tokens)]
    for first, last, kind in spoken_word_ranges(pseudo_words, known=known):
        opening, closing = tokens[first].group(), tokens[last].group()
        start = tokens[first].start() + len(opening) - len(opening.lstrip(_EDGE))
        end = tokens[last].end() - (len(closing) - len(closing.rstrip(_EDGE)))
        ranges.append((start, end, _spoken_mask(kind)))
    for start, end, mask in reversed(_merged(ranges)):
        text = text[:start] + mask + text[end:]
    return text


def _merged(ranges: Sequence[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Overlapping ranges as one, with the mask of the one that starts first (a written
    span's own mask, "****9012", where both readings found the same number)."""
    merged: list[tuple[int, int, str]] = []
    for first, last, mask in sorted(ranges, key=lambda r: r[0]):
        if merged and first < merged[-1][1]:
            previous = merged[-1]
            merged[-1] = (previous[0], max(previous[1], last), previous[2])
        else:
            merged.append((first, last, mask))
    return merged


def _masked_ranges(words: Sequence[Word]) -> list[tuple[int, int, str]]:
    """(first word, last word, mask) of every run of words to merge into one masked word."""
    offsets: list[tuple[int, int]] = []
    position = 0
    for word in words:
        offsets.append((position, position + len(word.text)))
        position += len(word.text) + 1
    joined = " ".join(word.text for word in words)
    ranges: list[tuple[int, int, str]] = []
    known: list[tuple[int, int, str]] = []
    for span in pii_spans(joined):
        touched = [
            i for i, (start, end) in enumerate(offsets) if start < span.end and span.start < end
        ]
        if touched:
            ranges.append((touched[0], touched[-1], text_mask(span)))
            known.append((touched[0], touched[-1], span.type))
    # A written span keeps its own mask ("****9012"); the spoken reading adds what it finds.
    for first, last, kind in spoken_word_ranges(words, known=known):
        ranges.append((first, last, _spoken_mask(kind)))
    # Word ranges are inclusive: shift to half-open for the merge and back.
    return [(a, b - 1, m) for a, b, m in _merged([(a, b + 1, m) for a, b, m in ranges])]


def redact_words(words: Sequence[Word]) -> list[Word]:
    """Words that make up a PII span are merged into one word holding the mask, timed from the
    first to the last of them (a card read as four groups must not leave its groups behind)."""
    if not words:
        return []
    ranges = _masked_ranges(words)
    if not ranges:
        return list(words)
    out: list[Word] = []
    i = 0
    for first, last, mask in ranges:
        out.extend(words[i:first])
        confidences = [w.confidence for w in words[first : last + 1] if w.confidence is not None]
        out.append(
            Word(
                text=mask,
                start_s=words[first].start_s,
                end_s=words[last].end_s,
                confidence=min(confidences) if confidences else None,
            )
        )
        i = last + 1
    out.extend(words[i:])
    return out


def redact_segment(segment: TranscriptSegment) -> TranscriptSegment:
    return replace(segment, text=redact_text(segment.text), words=redact_words(segment.words))
