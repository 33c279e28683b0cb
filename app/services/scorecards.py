"""Scorecards (ADMIN): weighted items, each a rule that should or should not match. Every
change starts a re-evaluation run (the caller enqueues its job after commit)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import BadUserInput, NotFound
from app.db.models import RuleEvaluation, Scorecard
from app.rules.model import parse_scorecard_items
from app.services.categories import clean_description, clean_name
from app.services.rules import start_evaluation


@dataclass(frozen=True, slots=True)
class ScorecardInput:
    name: str
    description: str | None
    items: Any


async def _name_taken(session: AsyncSession, name: str, except_id: uuid.UUID | None = None) -> bool:
    query = select(Scorecard.id).where(func.lower(Scorecard.name) == name.lower())
    if except_id is not None:
        query = query.where(Scorecard.id != except_id)
    return (await session.execute(query)).first() is not None


def _items_json(data: Any) -> list[dict[str, Any]]:
    return [item.model_dump(mode="json", by_alias=True) for item in parse_scorecard_items(data)]


async def list_scorecards(session: AsyncSession) -> Sequence[Scorecard]:
    query = select(Scorecard).order_by(Scorecard.created_at, Scorecard.id)
    return (await session.execute(query)).scalars().all()


async def create_scorecard(
    session: AsyncSession, data: ScorecardInput
) -> tuple[Scorecard, RuleEvaluation]:
    name = clean_name(data.name)
    items = _items_json(data.items)
    if await _name_taken(session, name):
        raise BadUserInput(f"name: a scorecard named {name!r} already exists")
    scorecard = Scorecard(name=name, description=clean_description(data.description))
    scorecard.items = items
    session.add(scorecard)
    await session.flush()
    run = await start_evaluation(session, f"scorecard {name!r} created")
    await session.refresh(scorecard)
    return scorecard, run


async def update_scorecard(
    session: AsyncSession, scorecard_id: uuid.UUID, data: ScorecardInput
) -> tuple[Scorecard, RuleEvaluation]:
    name = clean_name(data.name)
    items = _items_json(data.items)
    scorecard = (
        await session.execute(
            select(Scorecard).where(Scorecard.id == scorecard_id).with_for_update()
        )
    ).scalar_one_or_none()
    if scorecard is None:
        raise NotFound("Scorecard")
    if await _name_taken(session, name, scorecard_id):
        raise BadUserInput(f"name: a scorecard named {name!r} already exists")
    scorecard.name = name
    scorecard.description = clean_description(data.description)
    scorecard.items = items
    await session.flush()
    run = await start_evaluation(session, f"scorecard {name!r} updated")
    await session.refresh(scorecard)
    return scorecard, run


async def delete_scorecard(session: AsyncSession, scorecard_id: uuid.UUID) -> None:
    result = await session.execute(
        delete(Scorecard).where(Scorecard.id == scorecard_id).returning(Scorecard.id)
    )
    if result.first() is None:
        raise NotFound("Scorecard")
