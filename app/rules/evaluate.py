"""Evaluating validated rules against one call's facts, with evidence."""

from __future__ import annotations

from dataclasses import dataclass

from app.ml.analysis.sentiment import label
from app.rules.facts import CallFacts, quarter_of
from app.rules.model import (
    Condition,
    IntentCondition,
    InterruptionsCondition,
    PhraseCondition,
    Rule,
    ScorecardItem,
    SentimentCondition,
    SilenceCondition,
    TalkRatioCondition,
)
from app.rules.text import compile_phrase, find_phrase

MAX_EVIDENCE_PER_CONDITION = 20


@dataclass(frozen=True, slots=True)
class Evidence:
    condition: int
    """Index of the condition in its rule."""
    segment_index: int | None
    text: str
    """The matched words as spoken, or what was observed ("silence of 34.0 s")."""

    def to_json(self) -> dict[str, object]:
        return {"condition": self.condition, "segmentIndex": self.segment_index, "text": self.text}


@dataclass(frozen=True, slots=True)
class Outcome:
    matched: bool
    evidence: list[Evidence]


def _phrase(condition: PhraseCondition, facts: CallFacts, index: int) -> list[Evidence]:
    compiled = [compile_phrase(phrase) for phrase in condition.phrases]
    found: list[Evidence] = []
    for segment in facts.segments:
        if condition.role is not None and segment.role is not condition.role:
            continue
        tokens = facts.tokens(segment)
        for phrase in compiled:
            for text in find_phrase(phrase, tokens, segment.text):
                found.append(Evidence(index, segment.index, text))
                if len(found) >= MAX_EVIDENCE_PER_CONDITION:
                    return found
    return found


def _sentiment(condition: SentimentCondition, facts: CallFacts, index: int) -> list[Evidence]:
    wanted = condition.sentiment
    if condition.role is None and condition.quarter is None:
        if facts.sentiment is wanted:
            return [Evidence(index, None, f"call sentiment {wanted.value}")]
        return []
    length = max([facts.duration_s, *(s.end_s for s in facts.segments)])
    turns = [
        s
        for s in facts.segments
        if s.sentiment_score is not None
        and (condition.role is None or s.role is condition.role)
        and (condition.quarter is None or quarter_of(s, length) == condition.quarter)
    ]
    weights = [max(s.end_s - s.start_s, 0.1) for s in turns]
    if not turns:
        return []
    score = sum((s.sentiment_score or 0.0) * w for s, w in zip(turns, weights, strict=True))
    score /= sum(weights)
    if label(score) is not wanted:
        return []
    agreeing = [s for s in turns if label(s.sentiment_score or 0.0) is wanted]
    where = f"quarter {condition.quarter}" if condition.quarter else "the call"
    who = condition.role.value if condition.role else "all speakers"
    summary = Evidence(index, None, f"{who} {wanted.value} in {where} (score {score:.2f})")
    rest = [Evidence(index, s.index, s.text) for s in agreeing]
    return [summary, *rest][:MAX_EVIDENCE_PER_CONDITION]


def _silence(condition: SilenceCondition, facts: CallFacts, index: int) -> list[Evidence]:
    found = []
    ordered = sorted(facts.segments, key=lambda s: s.start_s)
    speech_end = 0.0
    previous = None
    for segment in ordered:
        gap = segment.start_s - speech_end
        if gap > condition.longer_than_seconds and previous is not None:
            found.append(Evidence(index, segment.index, f"silence of {gap:.1f} s before"))
        speech_end = max(speech_end, segment.end_s)
        previous = segment
    return found[:MAX_EVIDENCE_PER_CONDITION]


def _talk_ratio(condition: TalkRatioCondition, facts: CallFacts, index: int) -> list[Evidence]:
    ratio = facts.talk_ratio_by_role.get(condition.role)
    if ratio is None:
        return []
    if condition.above is not None and not ratio > condition.above:
        return []
    if condition.below is not None and not ratio < condition.below:
        return []
    return [Evidence(index, None, f"{condition.role.value} talk ratio {ratio:.2f}")]


def _interruptions(
    condition: InterruptionsCondition, facts: CallFacts, index: int
) -> list[Evidence]:
    if facts.interruptions > condition.above:
        return [Evidence(index, None, f"{facts.interruptions} interruptions")]
    return []


def _intent(condition: IntentCondition, facts: CallFacts, index: int) -> list[Evidence]:
    if condition.intent.lower() in facts.intents:
        return [Evidence(index, None, f"intent {condition.intent}")]
    return []


def _observe(condition: Condition, facts: CallFacts, index: int) -> list[Evidence]:
    match condition:
        case PhraseCondition():
            return _phrase(condition, facts, index)
        case SentimentCondition():
            return _sentiment(condition, facts, index)
        case SilenceCondition():
            return _silence(condition, facts, index)
        case TalkRatioCondition():
            return _talk_ratio(condition, facts, index)
        case InterruptionsCondition():
            return _interruptions(condition, facts, index)
        case IntentCondition():
            return _intent(condition, facts, index)


def evaluate(rule: Rule, facts: CallFacts) -> Outcome:
    results: list[tuple[bool, list[Evidence]]] = []
    for index, condition in enumerate(rule.conditions):
        evidence = _observe(condition, facts, index)
        holds = bool(evidence) != condition.negate
        # A negated condition holds by absence: there is nothing to point at.
        results.append((holds, [] if condition.negate else evidence))
    if rule.match == "ALL":
        matched = all(holds for holds, _ in results)
    else:
        matched = any(holds for holds, _ in results)
    if not matched:
        return Outcome(False, [])
    return Outcome(True, [item for holds, evidence in results if holds for item in evidence])


@dataclass(frozen=True, slots=True)
class ItemResult:
    name: str
    weight: float
    passed: bool
    evidence: list[Evidence]

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "weight": self.weight,
            "passed": self.passed,
            "evidence": [e.to_json() for e in self.evidence],
        }


def score(items: list[ScorecardItem], facts: CallFacts) -> tuple[float, list[ItemResult]]:
    """The weighted share of items passed, 0..1, and each item's result."""
    results = []
    for item in items:
        outcome = evaluate(item.rule, facts)
        results.append(
            ItemResult(
                item.name, item.weight, outcome.matched == item.should_match, outcome.evidence
            )
        )
    total = sum(r.weight for r in results)
    passed = sum(r.weight for r in results if r.passed)
    return (round(passed / total, 4) if total else 0.0), results
