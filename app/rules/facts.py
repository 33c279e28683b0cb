"""What rules look at: a finished call's turns, sentiment, metrics and intents, and the
sentiment trend per role per quarter of the call."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property

from app.core.enums import Sentiment, SpeakerRole
from app.ml.analysis.sentiment import label
from app.rules.text import Token, tokenize

QUARTERS = 4


@dataclass(frozen=True, slots=True)
class SegmentFact:
    index: int
    role: SpeakerRole
    start_s: float
    end_s: float
    text: str
    sentiment_score: float | None


@dataclass(frozen=True, slots=True)
class TrendPoint:
    role: SpeakerRole
    quarter: int
    """1-4."""
    score: float
    """Duration-weighted mean of the turns' scores, -1..1."""
    sentiment: Sentiment
    turns: int


def quarter_of(segment: SegmentFact, duration_s: float) -> int:
    """The quarter (1-4) holding the turn's midpoint."""
    if duration_s <= 0:
        return 1
    middle = (segment.start_s + segment.end_s) / 2
    return min(QUARTERS, int(middle / (duration_s / QUARTERS)) + 1)


def sentiment_trend(segments: list[SegmentFact], duration_s: float) -> list[TrendPoint]:
    """Per role per quarter, only where that role had scored turns; ordered by role, quarter.
    Longer turns weigh more (a minute of complaint outweighs "ok, thanks")."""
    length = max([duration_s, *(s.end_s for s in segments)])
    sums: dict[tuple[SpeakerRole, int], list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for segment in segments:
        if segment.sentiment_score is None:
            continue
        weight = max(segment.end_s - segment.start_s, 0.1)
        totals = sums[(segment.role, quarter_of(segment, length))]
        totals[0] += segment.sentiment_score * weight
        totals[1] += weight
        totals[2] += 1
    points = []
    for (role, quarter), (weighted, weights, turns) in sums.items():
        score = round(weighted / weights, 4)
        points.append(TrendPoint(role, quarter, score, label(score), int(turns)))
    order = list(SpeakerRole)
    return sorted(points, key=lambda p: (order.index(p.role), p.quarter))


@dataclass(frozen=True)
class CallFacts:
    call_id: uuid.UUID
    duration_s: float
    segments: list[SegmentFact]
    sentiment: Sentiment | None
    interruptions: int
    talk_ratio_by_role: dict[SpeakerRole, float]
    intents: frozenset[str]
    """Intent names, lower case."""
    _tokens: dict[int, list[Token]] = field(default_factory=dict, repr=False, compare=False)

    def tokens(self, segment: SegmentFact) -> list[Token]:
        cached = self._tokens.get(segment.index)
        if cached is None:
            cached = self._tokens[segment.index] = tokenize(segment.text)
        return cached

    @cached_property
    def trend(self) -> list[TrendPoint]:
        return sentiment_trend(self.segments, self.duration_s)
