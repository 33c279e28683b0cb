"""Categories (ADMIN): a name and a validated rule. Every change starts a re-evaluation run
(the caller enqueues its job after commit)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import BadUserInput, NotFound
from app.db.models import Category, RuleEvaluation
from app.rules.model import parse_rule, rule_json
from app.services.rules import start_evaluation

MAX_NAME_CHARS = 120
MAX_DESCRIPTION_CHARS = 2000


@dataclass(frozen=True, slots=True)
class CategoryInput:
    name: str
    description: str | None
    rule: Any


def clean_name(name: str, field: str = "name") -> str:
    cleaned = " ".join(name.split())
    if not cleaned or len(cleaned) > MAX_NAME_CHARS or "\x00" in cleaned:
        raise BadUserInput(f"{field}: 1 to {MAX_NAME_CHARS} characters")
    return cleaned


def clean_description(description: str | None) -> str | None:
    if description is None:
        return None
    if len(description) > MAX_DESCRIPTION_CHARS or "\x00" in description:
        raise BadUserInput(f"description: at most {MAX_DESCRIPTION_CHARS} characters")
    return description.strip() or None


async def _name_taken(session: AsyncSession, name: str, except_id: uuid.UUID | None = None) -> bool:
    query = select(Category.id).where(func.lower(Category.name) == name.lower())
    if except_id is not None:
        query = query.where(Category.id != except_id)
    return (await session.execute(query)).first() is not None


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
    name = clean_name(data.name)
    rule = parse_rule(data.rule)
    if await _name_taken(session, name):
        raise BadUserInput(f"name: a category named {name!r} already exists")
    category = Category(name=name, description=clean_description(data.description))
    category.rule = rule_json(rule)
    session.add(category)
    await session.flush()
    run = await start_evaluation(session, f"category {name!r} created")
    await session.refresh(category)
    return category, run


async def update_category(
    session: AsyncSession, category_id: uuid.UUID, data: CategoryInput
) -> tuple[Category, RuleEvaluation]:
    name = clean_name(data.name)
    rule = parse_rule(data.rule)
    category = (
        await session.execute(select(Category).where(Category.id == category_id).with_for_update())
    ).scalar_one_or_none()
    if category is None:
        raise NotFound("Category")
    if await _name_taken(session, name, category_id):
        raise BadUserInput(f"name: a category named {name!r} already exists")
    category.name = name
    category.description = clean_description(data.description)
    category.rule = rule_json(rule)
    await session.flush()
    run = await start_evaluation(session, f"category {name!r} updated")
    await session.refresh(category)
    return category, run


async def delete_category(session: AsyncSession, category_id: uuid.UUID) -> None:
    """Its call tags go with it (cascade); nothing else needs re-evaluating."""
    result = await session.execute(
        delete(Category).where(Category.id == category_id).returning(Category.id)
    )
    if result.first() is None:
        raise NotFound("Category")
