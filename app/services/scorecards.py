"""Scorecards (ADMIN): weighted items, each a rule that should or should not match. Every
change starts a re-evaluation run (the caller enqueues its job after commit)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import RuleEvaluation, Scorecard
from app.rules.model import parse_scorecard_items
from app.services.rule_sets import delete_rule_set, save_rule_set


@dataclass(frozen=True, slots=True)
class ScorecardInput:
    name: str
    description: str | None
    items: Any


def _items_json(data: Any) -> list[dict[str, Any]]:
    return [item.model_dump(mode="json", by_alias=True) for item in parse_scorecard_items(data)]


async def list_scorecards(session: AsyncSession) -> Sequence[Scorecard]:
    query = select(Scorecard).order_by(Scorecard.created_at, Scorecard.id)
    return (await session.execute(query)).scalars().all()


async def save_scorecard(
    session: AsyncSession, scorecard_id: uuid.UUID | None, data: ScorecardInput
) -> tuple[Scorecard, RuleEvaluation]:
    """Creates (`scorecard_id` None) or updates a scorecard, and starts its run."""
    return await save_rule_set(
        session, Scorecard, scorecard_id, data, lambda: {"items": _items_json(data.items)}
    )


async def delete_scorecard(session: AsyncSession, scorecard_id: uuid.UUID) -> None:
    await delete_rule_set(session, Scorecard, scorecard_id)
