"""Sentiment per utterance and per call, with a score in -1..1.

English uses VADER. Russian and Uzbek use the stem lexicons in `data/sentiment.yaml` with
VADER's recipe (negation flips and damps, intensifiers boost, the sum is squashed into -1..1),
so scores from the three languages sit on one scale and one threshold serves them all.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from app.core.enums import Sentiment
from app.ml.analysis import text as tx

POLARITY_THRESHOLD = 0.2
"""|score| at or above which an utterance or a call is POSITIVE or NEGATIVE."""
_NEGATION_FACTOR = -0.74  # VADER's constant: "not good" is about three quarters as bad as good
_INTENSIFIER_FACTOR = 1.3
_ALPHA = 15.0  # VADER's normaliser: score / sqrt(score^2 + alpha)


@dataclass(frozen=True, slots=True)
class Lexicon:
    single: Mapping[str, float]
    """One-word stems, matched by prefix."""
    phrases: Sequence[tuple[tuple[str, ...], float]]
    """Multi-word stems, longest first, each word matched by prefix."""
    negators: frozenset[str]
    intensifiers: frozenset[str]


def _load_lexicon(raw: Mapping[str, Any]) -> Lexicon:
    single: dict[str, float] = {}
    phrases: list[tuple[tuple[str, ...], float]] = []
    for stem, weight in raw["stems"].items():
        words = tuple(tx.normalize(str(stem)).split())
        if len(words) == 1:
            single[words[0]] = float(weight)
        else:
            phrases.append((words, float(weight)))
    phrases.sort(key=lambda item: -len(item[0]))
    return Lexicon(
        single=single,
        phrases=phrases,
        negators=frozenset(tx.normalize(w) for w in raw["negators"]),
        intensifiers=frozenset(tx.normalize(w) for w in raw["intensifiers"]),
    )


@lru_cache(maxsize=1)
def _lexicons() -> dict[str, Lexicon]:
    raw = yaml.safe_load(
        resources.files("app.ml.analysis").joinpath("data/sentiment.yaml").read_text("utf-8")
    )
    return {language: _load_lexicon(section) for language, section in raw.items()}


@lru_cache(maxsize=1)
def _vader() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def _stem_weight(token: str, single: Mapping[str, float]) -> float | None:
    # Longest stem first: "недовол" must win over a shorter stem it starts with.
    for end in range(len(token), 1, -1):
        weight = single.get(token[:end])
        if weight is not None:
            return weight
    return None


def _lexicon_score(words: Sequence[str], lexicon: Lexicon) -> float:
    total = 0.0
    i = 0
    while i < len(words):
        weight: float | None = None
        width = 1
        for phrase, phrase_weight in lexicon.phrases:
            n = len(phrase)
            window = words[i : i + n]
            if len(window) == n and all(
                w.startswith(p) for w, p in zip(window, phrase, strict=True)
            ):
                weight, width = phrase_weight, n
                break
        phrase_match = weight is not None
        if weight is None:
            weight = _stem_weight(words[i], lexicon.single)
        if weight is not None:
            before = words[max(0, i - 3) : i]
            if not phrase_match and any(w in lexicon.negators for w in before):
                weight *= _NEGATION_FACTOR
            elif any(w in lexicon.intensifiers for w in before):
                weight *= _INTENSIFIER_FACTOR
            # Uzbek negates after the word: "yaxshi emas" is "not good".
            after = words[i + width : i + width + 1]
            if not phrase_match and after and after[0] in lexicon.negators and weight > 0:
                weight *= _NEGATION_FACTOR
            total += weight
        i += width
    return total / math.sqrt(total * total + _ALPHA) if total else 0.0


def score_text(text: str, language: str) -> float:
    """Sentiment of one utterance in -1..1 (0 for unknown languages or no opinion words)."""
    if not text.strip():
        return 0.0
    if language == "en":
        return float(_vader().polarity_scores(text)["compound"])
    if language == "ru":
        return _lexicon_score(tx.tokens(text), _lexicons()["ru"])
    if language == "uz":
        return _lexicon_score(tx.uz_tokens(text), _lexicons()["uz"])
    return 0.0


def label(score: float) -> Sentiment:
    if score >= POLARITY_THRESHOLD:
        return Sentiment.POSITIVE
    if score <= -POLARITY_THRESHOLD:
        return Sentiment.NEGATIVE
    return Sentiment.NEUTRAL


def call_score(scores: Sequence[float], weights: Sequence[float]) -> float:
    """The call's score: a weighted mean in which opinionated turns count for more than
    neutral ones, so a complaint is not averaged away by "yes", "ok" and "one moment"."""
    numerator = 0.0
    denominator = 0.0
    for score, weight in zip(scores, weights, strict=True):
        emphasis = weight * (0.25 + abs(score))
        numerator += score * emphasis
        denominator += emphasis
    return round(numerator / denominator, 4) if denominator else 0.0
