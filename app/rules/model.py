"""The rule language, validated on input. A rule is JSON data:

    {"match": "ALL", "conditions": [
        {"type": "PHRASE", "phrases": ["bekor qil*", "cancel"], "role": "CUSTOMER"},
        {"type": "SENTIMENT", "sentiment": "NEGATIVE", "role": "CUSTOMER", "quarter": 4},
        {"type": "SILENCE", "longerThanSeconds": 30},
        {"type": "TALK_RATIO", "role": "AGENT", "above": 0.7},
        {"type": "INTERRUPTIONS", "above": 3},
        {"type": "INTENT", "intent": "cancellation", "negate": true}]}

Any condition may be negated. Errors name the offending field
(`rule.conditions[0].phrases[1]`); empty and self-contradicting rules are refused.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from app.core.enums import Sentiment, SpeakerRole
from app.core.errors import BadUserInput

MAX_CONDITIONS = 20
MAX_PHRASES = 50
MAX_PHRASE_CHARS = 100
MAX_WILDCARDS_PER_PHRASE = 4
MAX_SCORECARD_ITEMS = 50
# Letters, digits, spaces, apostrophes, hyphens and the `*` wildcard; nothing regex-like.
_PHRASE_CHARS = re.compile(r"[\w\s'ʻʼ‘’`\-*]+", re.UNICODE)


def _storable(text: str) -> str:
    # Rules are stored as JSONB, which cannot hold U+0000; refuse it here, naming the field.
    if "\x00" in text:
        raise ValueError("must not contain NUL characters")
    return text


_Intent = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=128),
    AfterValidator(_storable),
]
_ItemName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=120),
    AfterValidator(_storable),
]


class _Strict(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )


class _Condition(_Strict):
    negate: bool = False
    """True: the condition holds when the call does NOT show it."""


class PhraseCondition(_Condition):
    type: Literal["PHRASE"]
    phrases: list[str] = Field(min_length=1, max_length=MAX_PHRASES)
    role: SpeakerRole | None = None
    """Only turns of this role; any speaker when null."""

    @field_validator("phrases")
    @classmethod
    def _literal_phrases(cls, phrases: list[str]) -> list[str]:
        cleaned = []
        for phrase in phrases:
            text = " ".join(phrase.split())
            if not text:
                raise ValueError("a phrase must not be empty")
            if len(text) > MAX_PHRASE_CHARS:
                raise ValueError(f"a phrase is at most {MAX_PHRASE_CHARS} characters")
            if not _PHRASE_CHARS.fullmatch(text):
                raise ValueError(
                    f"{text!r}: only literal words and the * wildcard are allowed "
                    "(no regular expressions)"
                )
            if text.count("*") > MAX_WILDCARDS_PER_PHRASE:
                raise ValueError(f"{text!r}: at most {MAX_WILDCARDS_PER_PHRASE} wildcards")
            if "**" in text or not any(ch.isalnum() for ch in text):
                raise ValueError(f"{text!r}: needs letters besides wildcards, and no '**'")
            cleaned.append(text)
        return cleaned


class SentimentCondition(_Condition):
    type: Literal["SENTIMENT"]
    sentiment: Sentiment
    role: SpeakerRole | None = None
    """Null: every speaker together (with no quarter, the call's overall sentiment)."""
    quarter: int | None = Field(default=None, ge=1, le=4)
    """1-4: that quarter of the call's duration; null: the whole call."""


class SilenceCondition(_Condition):
    type: Literal["SILENCE"]
    longer_than_seconds: float = Field(gt=0, le=24 * 3600)
    """A gap between turns longer than this."""


class TalkRatioCondition(_Condition):
    type: Literal["TALK_RATIO"]
    role: SpeakerRole = SpeakerRole.AGENT
    above: float | None = Field(default=None, ge=0, le=1)
    below: float | None = Field(default=None, ge=0, le=1)

    @model_validator(mode="after")
    def _bounds(self) -> TalkRatioCondition:
        if self.above is None and self.below is None:
            raise ValueError("give above, below or both")
        if self.above is not None and self.below is not None and self.above >= self.below:
            raise ValueError("above must be less than below, or nothing can match")
        return self


class InterruptionsCondition(_Condition):
    type: Literal["INTERRUPTIONS"]
    above: int = Field(ge=0, le=10_000)


class IntentCondition(_Condition):
    type: Literal["INTENT"]
    intent: _Intent


Condition = Annotated[
    PhraseCondition
    | SentimentCondition
    | SilenceCondition
    | TalkRatioCondition
    | InterruptionsCondition
    | IntentCondition,
    Field(discriminator="type"),
]


class Rule(_Strict):
    match: Literal["ALL", "ANY"] = "ALL"
    conditions: list[Condition] = Field(min_length=1, max_length=MAX_CONDITIONS)

    @model_validator(mode="after")
    def _not_contradictory(self) -> Rule:
        if self.match != "ALL":
            return self
        seen: dict[str, bool] = {}
        sentiments: dict[tuple[SpeakerRole | None, int | None], Sentiment] = {}
        for index, condition in enumerate(self.conditions):
            key = condition.model_dump_json(exclude={"negate"})
            if seen.get(key, condition.negate) is not condition.negate:
                raise ValueError(
                    f"conditions[{index}] negates another condition of this ALL rule, "
                    "so no call can match"
                )
            seen[key] = condition.negate
            if isinstance(condition, SentimentCondition) and not condition.negate:
                where = (condition.role, condition.quarter)
                earlier = sentiments.setdefault(where, condition.sentiment)
                if earlier is not condition.sentiment:
                    raise ValueError(
                        f"conditions[{index}] asks for {condition.sentiment.value} where "
                        f"another condition asks for {earlier.value}; no call can match"
                    )
        return self


class ScorecardItem(_Strict):
    name: _ItemName
    weight: float = Field(default=1.0, gt=0, le=1000)
    rule: Rule
    should_match: bool = True
    """True: the item passes when the rule matches (a greeting); False: when it does not
    (interruptions)."""


class ScorecardItems(_Strict):
    items: list[ScorecardItem] = Field(min_length=1, max_length=MAX_SCORECARD_ITEMS)

    @field_validator("items")
    @classmethod
    def _unique_names(cls, items: list[ScorecardItem]) -> list[ScorecardItem]:
        names = [item.name.casefold() for item in items]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise ValueError(f"item names must be unique: {items[index].name!r} repeats")
        return items


def _field_path(prefix: str, location: tuple[int | str, ...]) -> str:
    path = prefix
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in {"PHRASE", "SENTIMENT", "SILENCE", "TALK_RATIO", "INTERRUPTIONS", "INTENT"}:
            continue  # pydantic names the union member it tried; the client wrote no such key
        else:
            path += f".{part}"
    return path


def _bad_input(prefix: str, error: ValidationError) -> BadUserInput:
    first = error.errors(include_url=False)[0]
    message = str(first["msg"]).removeprefix("Value error, ")
    return BadUserInput(f"{_field_path(prefix, tuple(first['loc']))}: {message}")


def parse_rule(data: Any, field: str = "rule") -> Rule:
    """A `Rule` from client JSON, or BAD_USER_INPUT naming the field that is wrong."""
    if not isinstance(data, dict):
        raise BadUserInput(f"{field}: must be an object with 'match' and 'conditions'")
    try:
        return Rule.model_validate(data)
    except ValidationError as exc:
        raise _bad_input(field, exc) from None


def parse_scorecard_items(data: Any, field: str = "items") -> list[ScorecardItem]:
    if not isinstance(data, list):
        raise BadUserInput(f"{field}: must be a list of items")
    try:
        return ScorecardItems.model_validate({"items": data}).items
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        location = tuple(error["loc"])[1:]  # drop the wrapper's own "items"
        message = str(error["msg"]).removeprefix("Value error, ")
        raise BadUserInput(f"{_field_path(field, location)}: {message}") from None


def rule_json(rule: Rule) -> dict[str, Any]:
    return rule.model_dump(mode="json", by_alias=True)
