"""Where a call says personal data aloud: spans of seconds, from the transcript's word times.

The detection is the transcript masking's own (`entities.pii_spans`: cards, accounts,
phones, emails), run twice over each turn's words: once on the words as written (digits
with their spacing, as the text masking sees them), and once on the words as spoken
(number words read as digits and digit groups joined, "at"/"dot" read as "@"/"."). Two
kinds the text masking has no pattern for are added here: Uzbek passport numbers
(a two-letter series and seven digits, "AA1234567") and card security codes (three or four
digits soon after a card number, or after the words "CVV", "код"...). A matched span of
characters is mapped back to the words it touches, and the span of audio runs from the
first word's start to the last word's end, widened by a margin (word times are estimates).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from app.ml.analysis import entities as ent
from app.ml.redaction.numbers import NumberToken, normalize_token, number_token, spoken_digits
from app.ml.types import TranscriptSegment, Word

PASSPORT = "PASSPORT"
CVV = "CVV"
NUMBER = "NUMBER"
"""A long digit string no pattern names (nine digits or more said in one breath): in a bank's
call it is a card, account or document number, so it is masked too."""

LONG_NUMBER_DIGITS = 9
CVV_WINDOW_S = 30.0
"""A three- or four-digit number this soon after a card number is taken for its code."""
CVV_WINDOW_WORDS = 12

_AT_WORDS = frozenset({"at", "собака", "эт", "at-sign"})
_DOT_WORDS = frozenset({"dot", "точка", "nuqta", "нуқта", "dat"})
_GLUE_WORDS = _AT_WORDS | _DOT_WORDS

_PASSPORT = re.compile(
    r"(?<![\w])(?P<series>[A-ZА-ЯЁЎҚҒҲ]{2}|[A-ZА-ЯЁЎҚҒҲ] [A-ZА-ЯЁЎҚҒҲ]) ?(?P<num>\d{7})(?!\d)"
)
_PASSPORT_AFTER_WORD = re.compile(
    r"(?i)(?:passport\w*|паспорт\w*|pasport\w*)[^\d]{0,40}?(?<![\w])"
    r"(?P<series>[a-zа-яёўқғҳ]{2} ?)?(?P<num>\d{7})(?!\d)"
)
_CVV_AFTER_WORD = re.compile(
    r"(?i)(?:cvv\w*|cvc\w*|cv2|security code|код\w*|kod\w*)"
    r"[^\d]{0,30}?(?<!\d)(?P<num>\d{3,4})(?!\d)"
)
_NOT_PERSONAL = frozenset({ent.ORDER, ent.MONEY, ent.DATE, ent.TIME})
"""Long numbers a pattern names as something else (an order number, an amount) stay."""
_DIGIT_OR_AT = re.compile(r"[\d@]")
_STANDALONE_CODE = re.compile(r"(?<![\d+])\d{3,4}(?!\d)")
_LONG_DIGITS = re.compile(rf"(?<!\d)\+?\d{{{LONG_NUMBER_DIGITS},}}(?!\d)")


@dataclass(frozen=True, slots=True)
class SpokenSpan:
    type: str
    start_s: float
    end_s: float


@dataclass(frozen=True, slots=True)
class _Text:
    """A turn's words as one string, each character range naming the words it came from."""

    text: str
    pieces: list[tuple[int, int, int, int]]
    """(char start, char end, first word, last word) per token of `text`."""

    def words_of(self, start: int, end: int) -> tuple[int, int] | None:
        touched = [(a, b) for s, e, a, b in self.pieces if s < end and start < e]
        if not touched:
            return None
        return min(a for a, _ in touched), max(b for _, b in touched)


def _as_written(words: Sequence[Word]) -> _Text:
    pieces: list[tuple[int, int, int, int]] = []
    position = 0
    parts: list[str] = []
    for index, word in enumerate(words):
        text = word.text.strip()
        parts.append(text)
        pieces.append((position, position + len(text), index, index))
        position += len(text) + 1
    return _Text(" ".join(parts), pieces)


def _as_spoken(words: Sequence[Word]) -> _Text:
    """Runs of number words and digit groups become one digit string; "at"/"dot" glue."""
    tokens: list[tuple[str, int, int, bool]] = []  # text, first word, last word, glue
    run: list[tuple[int, NumberToken]] = []

    def close_run() -> None:
        if run:
            tokens.append((spoken_digits([t for _, t in run]), run[0][0], run[-1][0], False))
            run.clear()

    for index, word in enumerate(words):
        number = number_token(word.text)
        if number is not None:
            run.append((index, number))
            continue
        close_run()
        lowered = normalize_token(word.text)
        if lowered in _AT_WORDS:
            tokens.append(("@", index, index, True))
        elif lowered in _DOT_WORDS:
            tokens.append((".", index, index, True))
        else:
            tokens.append((word.text.strip(), index, index, False))
    close_run()
    pieces: list[tuple[int, int, int, int]] = []
    text = ""
    previous_glue = True
    for token, first, last, glue in tokens:
        if text and not glue and not previous_glue:
            text += " "
        pieces.append((len(text), len(text) + len(token), first, last))
        text += token
        previous_glue = glue
    return _Text(text, pieces)


def _typed_spans(text: str, *, text_patterns: bool = True) -> Iterator[tuple[str, int, int]]:
    """(type, char start, char end) of every personal datum in `text`; without
    `text_patterns`, only the kinds the transcript masking has no pattern for."""
    if text_patterns:
        for span in ent.pii_spans(text):
            yield span.type, span.start, span.end
    for match in _PASSPORT.finditer(text):
        yield PASSPORT, match.start(), match.end()
    for match in _PASSPORT_AFTER_WORD.finditer(text):
        start = match.start("series") if match.group("series") else match.start("num")
        yield PASSPORT, start, match.end("num")
    for match in _CVV_AFTER_WORD.finditer(text):
        yield CVV, match.start("num"), match.end("num")
    long_numbers = list(_LONG_DIGITS.finditer(text))
    if long_numbers:
        named = [s for s in ent.pattern_spans(text) if s.type in _NOT_PERSONAL]
        for match in long_numbers:
            if not any(s.start < match.end() and match.start() < s.end for s in named):
                yield NUMBER, match.start(), match.end()


@dataclass(frozen=True, slots=True)
class _WordSpan:
    type: str
    first: int
    last: int


def _may_hold_data(text: str) -> bool:
    """Every pattern needs a digit or an "@": most turns are skipped at this cheap test."""
    return _DIGIT_OR_AT.search(text) is not None


def _spoken_differs(words: Sequence[Word]) -> bool:
    """Whether reading the words as spoken can find more than reading them as written: a
    number word, "at"/"dot", or digit groups one after another."""
    previous_number = False
    for word in words:
        token = number_token(word.text)
        if token is not None and token.digits is None:
            return True
        if token is not None and previous_number:
            return True
        if token is None and normalize_token(word.text) in _GLUE_WORDS:
            return True
        previous_number = token is not None
    return False


def _word_spans(words: Sequence[Word], *, written_text_patterns: bool = True) -> list[_WordSpan]:
    found: list[_WordSpan] = []
    views = [(_as_written(words), written_text_patterns)]
    if _spoken_differs(words):
        views.append((_as_spoken(words), True))
    for view, text_patterns in views:
        if not _may_hold_data(view.text):
            continue
        for kind, start, end in _typed_spans(view.text, text_patterns=text_patterns):
            touched = view.words_of(start, end)
            if touched is not None:
                found.append(_WordSpan(kind, *touched))
    return found


def _codes_after_cards(
    words: Sequence[Word], card_end_s: float | None, taken: set[int]
) -> list[_WordSpan]:
    """Three or four digits within a few words of a card number read before them."""
    if card_end_s is None:
        return []
    view = _as_spoken(words)
    found: list[_WordSpan] = []
    for match in _STANDALONE_CODE.finditer(view.text):
        touched = view.words_of(match.start(), match.end())
        if touched is None or touched[0] in taken:
            continue
        first, last = touched
        after_card = [i for i in range(first) if words[i].start_s >= card_end_s - 0.01]
        if words[first].start_s - card_end_s > CVV_WINDOW_S or len(after_card) > CVV_WINDOW_WORDS:
            continue
        found.append(_WordSpan(CVV, first, last))
    return found


def spoken_word_ranges(
    words: Sequence[Word], *, known: Sequence[tuple[int, int, str]] | None = None
) -> list[tuple[int, int, str]]:
    """(first word, last word, type) of each run of words holding personal data, for the
    transcript masking: the same detection as `spoken_spans`, within one turn. `known`: the
    masking's own matches on the words as written (first, last, type), so they are not
    matched again (a card among them still opens the window for its code)."""
    found = _word_spans(words, written_text_patterns=known is None)
    found += [_WordSpan(kind, first, last) for first, last, kind in known or ()]
    cards = [s for s in found if s.type == ent.CARD]
    if cards:
        taken = {i for span in found for i in range(span.first, span.last + 1)}
        first_card = min(s.first for s in cards)
        card_end_s = max(words[s.last].end_s for s in cards)
        found += [c for c in _codes_after_cards(words, card_end_s, taken) if c.first > first_card]
    return [(s.first, s.last, s.type) for s in _merged(found)]


_PRIORITY = {ent.ACCOUNT: 0, ent.CARD: 1, CVV: 2, PASSPORT: 3, ent.PHONE: 4, ent.EMAIL: 5}


def spoken_spans(
    segments: Sequence[TranscriptSegment], *, margin_s: float, duration_s: float | None = None
) -> list[SpokenSpan]:
    """Every span of the call where personal data is said, in time order. A turn whose text
    holds personal data but carries no word times is masked whole."""
    spans: list[SpokenSpan] = []
    card_end_s: float | None = None
    for segment in sorted(segments, key=lambda s: s.start_s):
        words = [w for w in segment.words if w.text.strip()]
        if not words:
            if segment.text.strip():
                kinds = {kind for kind, _, _ in _typed_spans(segment.text)}
                if kinds:
                    kind = min(kinds, key=lambda k: _PRIORITY.get(k, 9))
                    spans.append(SpokenSpan(kind, segment.start_s, segment.end_s))
            continue
        if card_end_s is not None and segment.start_s - card_end_s > CVV_WINDOW_S:
            card_end_s = None
        found = _word_spans(words)
        taken = {i for span in found for i in range(span.first, span.last + 1)}
        inside_turn_cards = [s for s in found if s.type == ent.CARD]
        if inside_turn_cards:
            card_end_s = max(words[s.last].end_s for s in inside_turn_cards)
            first_card = min(s.first for s in inside_turn_cards)
            codes = _codes_after_cards(words, card_end_s, taken)
            found += [c for c in codes if c.first > first_card]
        elif card_end_s is not None:
            found += _codes_after_cards(words, card_end_s, taken)
        for span in _merged(found):
            start = max(0.0, words[span.first].start_s - margin_s)
            end = words[span.last].end_s + margin_s
            if duration_s is not None:
                end = min(end, duration_s)
            spans.append(SpokenSpan(span.type, round(start, 3), round(end, 3)))
    return sorted(spans, key=lambda s: (s.start_s, s.end_s))


def _merged(spans: Sequence[_WordSpan]) -> list[_WordSpan]:
    """Overlapping word ranges become one, named by the most specific type among them."""
    out: list[_WordSpan] = []
    for span in sorted(spans, key=lambda s: (s.first, s.last)):
        if out and span.first <= out[-1].last:
            last = out[-1]
            kind = min((last.type, span.type), key=lambda k: _PRIORITY.get(k, 9))
            out[-1] = _WordSpan(kind, last.first, max(last.last, span.last))
        else:
            out.append(span)
    return out
