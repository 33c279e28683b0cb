"""Categories (ADMIN): a name and a validated rule. Every change starts a re-evaluation run
(the caller enqueues its job after commit)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import NotFound
from app.db.models import Category, RuleEvaluation
from app.rules.model import parse_rule, rule_json
from app.services.rule_sets import delete_rule_set, save_rule_set


@dataclass(frozen=True, slots=True)
class CategoryInput:
    name: str
    description: str | None
    rule: Any


async def list_categories(session: AsyncSession) -> Sequence[Category]:
    return (await session.execute(select(Category).order_by(Category.name))).scalars().all()


async def get_category(session: AsyncSession, category_id: uuid.UUID) -> Category:
    category = await session.get(Category, category_id)
    if category is None:
        raise NotFound("Category")
    return category


async def create_category(
    session: AsyncSession, data: CategoryInput
) -> tuple[Category, RuleEvaluation]:
    return await save_category(session, None, data)


async def save_category(
    session: AsyncSession, category_id: uuid.UUID | None, data: CategoryInput
) -> tuple[Category, RuleEvaluation]:
    """Creates (`category_id` None) or updates a category, and starts its run."""
    return await save_rule_set(
        session, Category, category_id, data, lambda: {"rule": rule_json(parse_rule(data.rule))}
    )


async def delete_category(session: AsyncSession, category_id: uuid.UUID) -> None:
    """Its call tags go with it (cascade); nothing else needs re-evaluating."""
    await delete_rule_set(session, Category, category_id)
