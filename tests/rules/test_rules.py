"""The rule language on its own: validation naming the field, refusal of empty,
contradictory and regex-like rules, script-insensitive phrases, every condition kind with its
evidence, scorecards, and the sentiment trend."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from app.core.enums import Sentiment, SpeakerRole
from app.core.errors import BadUserInput
from app.rules.evaluate import evaluate, score
from app.rules.facts import CallFacts, SegmentFact, sentiment_trend
from app.rules.model import parse_rule, parse_scorecard_items
from app.rules.text import compile_phrase, find_phrase, fold, tokenize

AGENT = SpeakerRole.AGENT
CUSTOMER = SpeakerRole.CUSTOMER


def facts(
    turns: list[tuple[SpeakerRole, float, float, str, float | None]],
    *,
    sentiment: Sentiment = Sentiment.NEUTRAL,
    interruptions: int = 0,
    ratios: dict[SpeakerRole, float] | None = None,
    intents: tuple[str, ...] = (),
    duration_s: float | None = None,
) -> CallFacts:
    segments = [
        SegmentFact(i, role, start, end, text, score)
        for i, (role, start, end, text, score) in enumerate(turns)
    ]
    return CallFacts(
        call_id=uuid.uuid4(),
        duration_s=duration_s if duration_s is not None else max(t[2] for t in turns),
        segments=segments,
        sentiment=sentiment,
        interruptions=interruptions,
        talk_ratio_by_role=ratios or {AGENT: 0.5, CUSTOMER: 0.5},
        intents=frozenset(intents),
    )


def rule(*conditions: dict[str, Any], match: str = "ALL") -> dict[str, Any]:
    return {"match": match, "conditions": list(conditions)}


CALL = facts(
    [
        (AGENT, 0.0, 4.0, "Assalomu alaykum, Ovozly bank, sizga qanday yordam bera olaman?", 0.3),
        (CUSTOMER, 4.5, 9.0, "Мен обунани бекор қилмоқчиман, хизмат жуда ёмон", -0.7),
        (AGENT, 45.0, 50.0, "Kechirasiz. Yana savollaringiz bormi?", 0.1),
        (CUSTOMER, 50.5, 60.0, "Нет, спасибо, всё хорошо", 0.6),
    ],
    sentiment=Sentiment.NEUTRAL,
    interruptions=4,
    ratios={AGENT: 0.35, CUSTOMER: 0.65},
    intents=("cancellation",),
)


# --- phrases -------------------------------------------------------------------------------------


def test_folding_makes_scripts_and_apostrophes_equal() -> None:
    assert fold("Oʻzbekiston") == fold("O'zbekiston") == fold("ЎЗБЕКИСТОН") == "ozbekiston"
    assert fold("Қилмоқчиман") == fold("qilmoqchiman")
    assert fold("ёмон") == fold("yomon")


@pytest.mark.parametrize(
    ("phrase", "expected"),
    [
        ("bekor qil*", ["бекор қилмоқчиман"]),  # Latin phrase, Cyrillic speech
        ("ОБУНА*", ["обунани"]),  # Cyrillic phrase, case folded
        ("yomon", ["ёмон"]),
        ("sub*tion", []),
        ("xizmat juda", ["хизмат жуда"]),
    ],
)
def test_phrases_match_across_case_and_script(phrase: str, expected: list[str]) -> None:
    text = CALL.segments[1].text
    assert find_phrase(compile_phrase(phrase), tokenize(text), text) == expected


def test_hyphenated_phrases_and_cyrillic_after_a_wildcard_match() -> None:
    # Speech splits "по-русски" into two tokens; the accepted phrase must match it.
    text = "Можно по-русски? Это call-back, уведомление пришло"
    assert find_phrase(compile_phrase("по-русски"), tokenize(text), text) == ["по-русски"]
    assert find_phrase(compile_phrase("po russki"), tokenize(text), text) == ["по-русски"]
    assert find_phrase(compile_phrase("call-back"), tokenize(text), text) == ["call-back"]
    assert find_phrase(compile_phrase("call_back"), tokenize(text), text) == ["call-back"]
    # Inside a word Cyrillic "е" is "e"; only at a word's start is it "ye".
    assert find_phrase(compile_phrase("*ение"), tokenize(text), text) == ["уведомление"]
    assert find_phrase(compile_phrase("увед*ение"), tokenize(text), text) == ["уведомление"]
    assert find_phrase(compile_phrase("е*"), tokenize("ещё раз"), "ещё раз") == ["ещё"]


def test_wildcards_stay_inside_a_word_and_are_linear() -> None:
    text = "please cancel my subscription now"
    assert find_phrase(compile_phrase("sub*tion"), tokenize(text), text) == ["subscription"]
    assert find_phrase(compile_phrase("can*l my"), tokenize(text), text) == ["cancel my"]
    assert find_phrase(compile_phrase("cancel*now"), tokenize(text), text) == []
    # The classic catastrophic-backtracking shape costs nothing here.
    hostile = " ".join(["a" * 60 + "b"] * 2000)
    started = time.perf_counter()
    compiled = compile_phrase("a*a*a*a*c")
    assert find_phrase(compiled, tokenize(hostile), hostile) == []
    assert time.perf_counter() - started < 1.0


# --- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "rule.conditions: Field required"),
        (rule(), "rule.conditions: List should have at least 1 item"),
        ("cancel", "rule: must be an object"),
        (rule({"type": "PHRASE", "phrases": []}), "rule.conditions[0].phrases: List should"),
        (rule({"type": "PHRASE", "phrases": ["  "]}), "rule.conditions[0].phrases: a phrase"),
        (rule({"type": "PHRASE", "phrases": ["(a+)+$"]}), "only literal words and the * wildcard"),
        (rule({"type": "PHRASE", "phrases": ["***"]}), "rule.conditions[0].phrases"),
        (rule({"type": "PHRASE", "phrases": ["x"], "colour": "red"}), "conditions[0].colour"),
        (rule({"type": "REGEX", "pattern": ".*"}), "rule.conditions[0]: Input tag 'REGEX'"),
        (rule({"type": "SILENCE", "longerThanSeconds": -1}), "conditions[0].longerThanSeconds"),
        (
            rule({"type": "SENTIMENT", "sentiment": "ANGRY"}),
            "rule.conditions[0].sentiment: Input should be",
        ),
        (rule({"type": "SENTIMENT", "sentiment": "NEGATIVE", "quarter": 5}), "quarter"),
        (rule({"type": "TALK_RATIO", "role": "AGENT"}), "give above, below or both"),
        (rule({"type": "TALK_RATIO", "above": 0.8, "below": 0.5}), "above must be less"),
        (
            rule(
                {"type": "SENTIMENT", "sentiment": "NEGATIVE", "role": "CUSTOMER"},
                {"type": "SENTIMENT", "sentiment": "POSITIVE", "role": "CUSTOMER"},
            ),
            "no call can match",
        ),
        (
            rule(
                {"type": "INTENT", "intent": "x"}, {"type": "INTENT", "intent": "x", "negate": True}
            ),
            "negates another condition",
        ),
        ({"match": "SOME", "conditions": [{"type": "INTENT", "intent": "x"}]}, "rule.match"),
    ],
)
def test_malformed_empty_and_contradictory_rules_are_refused(data: Any, message: str) -> None:
    with pytest.raises(BadUserInput) as raised:
        parse_rule(data)
    assert message in raised.value.message


def test_the_same_conditions_are_fine_under_any() -> None:
    parsed = parse_rule(
        rule(
            {"type": "SENTIMENT", "sentiment": "NEGATIVE"},
            {"type": "SENTIMENT", "sentiment": "POSITIVE"},
            match="ANY",
        )
    )
    assert len(parsed.conditions) == 2


def test_scorecard_items_are_validated_with_their_path() -> None:
    with pytest.raises(BadUserInput) as raised:
        parse_scorecard_items([{"name": "greeting", "rule": rule({"type": "PHRASE"})}])
    assert raised.value.message.startswith("items[0].rule.conditions[0].phrases")
    with pytest.raises(BadUserInput, match="repeats"):
        parse_scorecard_items(
            [
                {"name": "a", "rule": rule({"type": "INTENT", "intent": "x"})},
                {"name": "A", "rule": rule({"type": "INTENT", "intent": "y"})},
            ]
        )
    with pytest.raises(BadUserInput, match=r"items: List should have at least 1"):
        parse_scorecard_items([])


# --- evaluation ----------------------------------------------------------------------------------


def test_phrase_by_role_gives_segment_and_words() -> None:
    outcome = evaluate(
        parse_rule(rule({"type": "PHRASE", "phrases": ["bekor qil*"], "role": "CUSTOMER"})), CALL
    )
    assert outcome.matched
    assert [(e.segment_index, e.text) for e in outcome.evidence] == [(1, "бекор қилмоқчиман")]
    agent_only = parse_rule(rule({"type": "PHRASE", "phrases": ["bekor qil*"], "role": "AGENT"}))
    assert not evaluate(agent_only, CALL).matched


def test_negated_condition_matches_by_absence() -> None:
    no_greeting = parse_rule(
        rule({"type": "PHRASE", "phrases": ["hello"], "role": "AGENT", "negate": True})
    )
    assert evaluate(no_greeting, CALL).matched
    greeted = parse_rule(
        rule({"type": "PHRASE", "phrases": ["assalomu alaykum"], "role": "AGENT", "negate": True})
    )
    assert not evaluate(greeted, CALL).matched


def test_silence_talk_ratio_interruptions_and_intent() -> None:
    silence = evaluate(parse_rule(rule({"type": "SILENCE", "longerThanSeconds": 30})), CALL)
    assert silence.matched
    assert silence.evidence[0].segment_index == 2
    assert "36.0 s" in silence.evidence[0].text
    assert not evaluate(
        parse_rule(rule({"type": "SILENCE", "longerThanSeconds": 40})), CALL
    ).matched

    assert evaluate(parse_rule(rule({"type": "TALK_RATIO", "below": 0.4})), CALL).matched
    assert not evaluate(parse_rule(rule({"type": "TALK_RATIO", "above": 0.4})), CALL).matched
    customer = rule({"type": "TALK_RATIO", "role": "CUSTOMER", "above": 0.6, "below": 0.7})
    assert evaluate(parse_rule(customer), CALL).matched

    assert evaluate(parse_rule(rule({"type": "INTERRUPTIONS", "above": 3})), CALL).matched
    assert not evaluate(parse_rule(rule({"type": "INTERRUPTIONS", "above": 4})), CALL).matched
    assert evaluate(parse_rule(rule({"type": "INTENT", "intent": "Cancellation"})), CALL).matched
    assert not evaluate(parse_rule(rule({"type": "INTENT", "intent": "upgrade"})), CALL).matched


def test_sentiment_overall_per_role_and_per_quarter() -> None:
    def holds(**condition: Any) -> bool:
        return evaluate(parse_rule(rule({"type": "SENTIMENT", **condition})), CALL).matched

    assert holds(sentiment="NEUTRAL")
    assert not holds(sentiment="NEGATIVE")
    assert holds(sentiment="NEGATIVE", role="CUSTOMER", quarter=1)
    assert holds(sentiment="POSITIVE", role="CUSTOMER", quarter=4)
    assert not holds(sentiment="NEGATIVE", role="CUSTOMER", quarter=4)
    assert not holds(sentiment="NEGATIVE", role="AGENT", quarter=2)  # the agent said nothing
    evidence = evaluate(
        parse_rule(rule({"type": "SENTIMENT", "sentiment": "NEGATIVE", "role": "CUSTOMER"})),
        facts([(CUSTOMER, 0, 5, "awful", -0.8), (CUSTOMER, 6, 7, "fine", 0.3)]),
    ).evidence
    assert [e.segment_index for e in evidence] == [None, 0]


def test_any_and_all() -> None:
    either = rule(
        {"type": "INTENT", "intent": "upgrade"},
        {"type": "INTERRUPTIONS", "above": 1},
        match="ANY",
    )
    outcome = evaluate(parse_rule(either), CALL)
    assert outcome.matched and [e.condition for e in outcome.evidence] == [1]
    both = rule({"type": "INTENT", "intent": "upgrade"}, {"type": "INTERRUPTIONS", "above": 1})
    assert evaluate(parse_rule(both), CALL).matched is False


def test_scorecard_is_the_weighted_share_of_items_passed() -> None:
    items = parse_scorecard_items(
        [
            {
                "name": "Greeting",
                "weight": 2,
                "rule": rule({"type": "PHRASE", "phrases": ["assalomu alaykum"], "role": "AGENT"}),
            },
            {
                "name": "Offer of further help",
                "weight": 1,
                "rule": rule({"type": "PHRASE", "phrases": ["yana savol*"]}),
            },
            {
                "name": "No interruptions",
                "weight": 1,
                "shouldMatch": False,
                "rule": rule({"type": "INTERRUPTIONS", "above": 2}),
            },
        ]
    )
    value, results = score(items, CALL)
    assert [(r.name, r.passed) for r in results] == [
        ("Greeting", True),
        ("Offer of further help", True),
        ("No interruptions", False),
    ]
    assert value == 0.75
    assert results[0].evidence[0].text == "Assalomu alaykum"


def test_sentiment_trend_per_role_per_quarter_weighted_by_duration() -> None:
    trend = sentiment_trend(
        [
            SegmentFact(0, CUSTOMER, 0.0, 8.0, "", -0.8),
            SegmentFact(1, CUSTOMER, 8.0, 9.0, "", 0.4),
            SegmentFact(2, AGENT, 9.0, 12.0, "", 0.0),
            SegmentFact(3, CUSTOMER, 32.0, 40.0, "", 0.5),
            SegmentFact(4, AGENT, 30.0, 31.0, "", None),
        ],
        40.0,
    )
    assert [(p.role, p.quarter, p.score, p.sentiment, p.turns) for p in trend] == [
        (AGENT, 2, 0.0, Sentiment.NEUTRAL, 1),
        (CUSTOMER, 1, round((-0.8 * 8 + 0.4) / 9, 4), Sentiment.NEGATIVE, 2),
        (CUSTOMER, 4, 0.5, Sentiment.POSITIVE, 1),
    ]
    assert sentiment_trend([], 0.0) == []
