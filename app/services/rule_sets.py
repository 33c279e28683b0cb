"""What categories and scorecards share: a unique name, a description, a rule payload, and a
re-evaluation of stored calls started by every change (the caller enqueues it after commit)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import BadUserInput, NotFound
from app.db.models import Category, RuleEvaluation, Scorecard
from app.services.names import clean_name
from app.services.rules import start_evaluation

MAX_NAME_CHARS = 120
MAX_DESCRIPTION_CHARS = 2000

RuleSet = TypeVar("RuleSet", Category, Scorecard)


def clean_rule_set_name(name: str) -> str:
    return clean_name(name, max_chars=MAX_NAME_CHARS, field="name")


def clean_description(description: str | None) -> str | None:
    if description is None:
        return None
    if len(description) > MAX_DESCRIPTION_CHARS or "\x00" in description:
        raise BadUserInput(f"description: at most {MAX_DESCRIPTION_CHARS} characters")
    return description.strip() or None


def _noun(model: type[Category] | type[Scorecard]) -> str:
    return model.__name__.lower()


async def _name_taken(
    session: AsyncSession,
    model: type[Category] | type[Scorecard],
    name: str,
    except_id: uuid.UUID | None,
) -> bool:
    query = select(model.id).where(func.lower(model.name) == name.lower())
    if except_id is not None:
        query = query.where(model.id != except_id)
    return (await session.execute(query)).first() is not None


class RuleSetInput(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str | None: ...


async def save_rule_set(
    session: AsyncSession,
    model: type[RuleSet],
    existing_id: uuid.UUID | None,
    data: RuleSetInput,
    read_payload: Callable[[], dict[str, Any]],
) -> tuple[RuleSet, RuleEvaluation]:
    """Creates (`existing_id` None) or updates, row-locked, one category or scorecard, and
    starts its run. `read_payload` validates the input's payload into the row's columns;
    it runs after the name is judged, as the user reads the form."""
    cleaned = clean_rule_set_name(data.name)
    payload = read_payload()
    row: RuleSet | None
    if existing_id is None:
        row = model()
    else:
        query = select(model).where(model.id == existing_id).with_for_update()
        row = (await session.execute(query)).scalar_one_or_none()
        if row is None:
            raise NotFound(model.__name__)
    if await _name_taken(session, model, cleaned, existing_id):
        raise BadUserInput(f"name: a {_noun(model)} named {cleaned!r} already exists")
    row.name = cleaned
    row.description = clean_description(data.description)
    for column, value in payload.items():
        setattr(row, column, value)
    if existing_id is None:
        session.add(row)
    await session.flush()
    change = "created" if existing_id is None else "updated"
    run = await start_evaluation(session, f"{_noun(model)} {cleaned!r} {change}")
    await session.refresh(row)
    return row, run


async def delete_rule_set(
    session: AsyncSession, model: type[Category] | type[Scorecard], row_id: uuid.UUID
) -> None:
    result = await session.execute(delete(model).where(model.id == row_id).returning(model.id))
    if result.first() is None:
        raise NotFound(model.__name__)
