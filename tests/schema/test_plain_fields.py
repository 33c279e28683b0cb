"""PlainFieldsExecutor gives exactly what graphql-core's own execution gives: the same data
in the same key order, the same errors at the same paths, the same null propagation, for
every shape the fast path takes or refuses (aliases, __typename, fragments, @include/@skip,
enums, custom scalars, resolvers beside plain fields, async resolvers, bad values)."""

from __future__ import annotations

import enum
import json
from typing import Any

import pytest
import strawberry
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from app.schema.plain_fields import PlainFieldsExecutor


@strawberry.enum
class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


Blob = strawberry.scalar(
    dict[str, Any], name="Blob", serialize=lambda value: value, parse_value=lambda value: value
)


@strawberry.type
class Word:
    text: str
    start: float
    end: float
    confidence: float | None
    colour: Colour | None = None
    count: int = 0
    flag: bool = False


@strawberry.type
class Turn:
    speaker: str
    colour: Colour
    _words: strawberry.Private[list[Word]]

    @strawberry.field
    def words(self) -> list[Word]:
        return self._words

    @strawberry.field
    def maybe_words(self) -> list[Word | None]:
        return [*self._words, None]

    @strawberry.field
    async def later_words(self) -> list[Word]:
        return self._words

    @strawberry.field
    def shout(self, suffix: str = "!") -> str:
        return self.speaker.upper() + suffix

    @strawberry.field
    def blob(self) -> Blob:  # type: ignore[valid-type]
        return {"n": [1, 2], "speaker": self.speaker}


def _words(n: int) -> list[Word]:
    return [
        Word(
            text=f"w{i}",
            start=i * 0.5,
            end=i * 0.5 + 0.25,
            confidence=None if i % 3 == 0 else 0.9,
            colour=Colour.BLUE if i % 2 else None,
            count=i,
            flag=i % 2 == 0,
        )
        for i in range(n)
    ]


TURNS = [Turn(speaker=f"s{n}", colour=Colour.RED, _words=_words(5 + n)) for n in range(4)]


def _bad_turns() -> list[Turn]:
    words = _words(4)
    words[2].text = None  # type: ignore[assignment]  # null in a non-null field
    words[3].start = float("nan")  # a value Float refuses
    return [Turn(speaker="bad", colour=Colour.RED, _words=words)]


def _wrong_type_turns() -> list[Turn]:
    words = _words(3)
    words[1].count = "many"  # type: ignore[assignment]  # Int refuses a string
    words[2].confidence = ValueError("stored as an error")  # type: ignore[assignment]
    return [Turn(speaker="odd", colour="purple", _words=words)]  # type: ignore[arg-type]


@strawberry.type
class Query:
    @strawberry.field
    def turns(self) -> list[Turn]:
        return TURNS

    @strawberry.field
    def bad_turns(self) -> list[Turn]:
        return _bad_turns()

    @strawberry.field
    def wrong_type_turns(self) -> list[Turn]:
        return _wrong_type_turns()


def _schema(executor: type[StrawberryGraphQLCoreExecutionContext]) -> strawberry.Schema:
    return strawberry.Schema(
        query=Query, execution_context_class=executor, config=StrawberryConfig()
    )


FAST = _schema(PlainFieldsExecutor)
STOCK = _schema(StrawberryGraphQLCoreExecutionContext)

DOCUMENTS = {
    "plain list": "{ turns { speaker colour words { text start end confidence } } }",
    "every scalar kind": "{ turns { words { text start end confidence colour count flag } } }",
    "aliases and typename": (
        "{ turns { who: speaker __typename words { t: text __typename s: start start } } }"
    ),
    "same field twice": "{ turns { words { text text start } speaker } }",
    "fragments": (
        "fragment W on Word { text confidence } "
        "{ turns { ...on Turn { speaker } words { ...W end } } }"
    ),
    "include and skip": (
        "query($yes: Boolean!) { turns { speaker @skip(if: $yes) "
        "words { text @include(if: $yes) start @skip(if: $yes) end } } }"
    ),
    "resolver beside plain fields": '{ turns { shout(suffix: "?") speaker blob colour } }',
    "nullable items": "{ turns { maybeWords { text count } } }",
    "async list": "{ turns { speaker laterWords { text start } } }",
    "null and NaN in non-null fields": ("{ badTurns { speaker words { text start confidence } } }"),
    "bad values in nullable and non-null fields": (
        "{ wrongTypeTurns { speaker words { text count confidence } } }"
    ),
    "bad enum beside good fields": "{ wrongTypeTurns { speaker colour } }",
}


FAILING = {
    "null and NaN in non-null fields",
    "bad values in nullable and non-null fields",
    "bad enum beside good fields",
}


def _canonical(result: Any) -> str:
    """The result as a client receives it, key order included."""
    errors = [error.formatted for error in result.errors or []]
    return json.dumps({"data": result.data, "errors": errors})


@pytest.mark.parametrize("name", list(DOCUMENTS))
async def test_plain_fields_match_graphql_core(name: str) -> None:
    document = DOCUMENTS[name]
    for yes in (True, False):
        variables = {"yes": yes} if "$yes" in document else None
        fast = await FAST.execute(document, variable_values=variables)
        stock = await STOCK.execute(document, variable_values=variables)
        assert _canonical(fast) == _canonical(stock)
        if name in FAILING:
            assert fast.errors, "the document is meant to produce errors"
        else:
            assert not fast.errors, fast.errors
            assert fast.data


async def test_the_fast_path_is_taken_for_plain_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    """The equivalence above is only worth something if the fast path ran: the words of a
    plain list never reach graphql-core's execute_field."""
    seen: list[str] = []
    original = StrawberryGraphQLCoreExecutionContext.execute_field

    def spy(self: Any, parent_type: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(parent_type.name)
        return original(self, parent_type, *args, **kwargs)

    monkeypatch.setattr(StrawberryGraphQLCoreExecutionContext, "execute_field", spy)
    result = await FAST.execute(DOCUMENTS["plain list"])
    assert not result.errors and result.data
    assert "Word" not in seen
    assert seen.count("Turn") == len(TURNS)  # only `words`, the resolver field, per turn
    seen.clear()
    await STOCK.execute(DOCUMENTS["plain list"])
    assert seen.count("Word") == 4 * sum(len(turn._words) for turn in TURNS)


async def test_middleware_sees_every_field() -> None:
    """A schema extension with a `resolve` hook runs for every field, plain or not."""

    resolved: list[str] = []

    class Recording(strawberry.extensions.SchemaExtension):
        def resolve(self, _next: Any, root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
            resolved.append(info.field_name)
            return _next(root, info, *args, **kwargs)

    schema = strawberry.Schema(
        query=Query, execution_context_class=PlainFieldsExecutor, extensions=[Recording]
    )
    result = await schema.execute("{ turns { words { text } } }")
    assert not result.errors
    assert resolved.count("text") == sum(len(turn._words) for turn in TURNS)
