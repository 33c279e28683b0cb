"""Category, scorecard and rule-evaluation resolvers. Writes are ADMIN only; every change
starts a re-evaluation of existing calls, enqueued after the commit (so the job sees the
new rules)."""

from __future__ import annotations

import uuid

import strawberry
from sqlalchemy import select

from app.core.errors import NotFound
from app.core.ids import parse_typed_id
from app.db.models import RuleEvaluation as RuleEvaluationModel
from app.schema.context import Info
from app.schema.desk import (
    Category,
    CategoryInput,
    CategoryPayload,
    RuleEvaluation,
    Scorecard,
    ScorecardInput,
    ScorecardPayload,
)
from app.services import categories as category_service
from app.services import scorecards as scorecard_service


async def categories(info: Info) -> list[Category]:
    async with info.context.session() as session:
        return [Category.from_row(c) for c in await category_service.list_categories(session)]


async def create_category(info: Info, input: CategoryInput) -> CategoryPayload:
    return await _save_category(info, None, input)


async def update_category(info: Info, id: strawberry.ID, input: CategoryInput) -> CategoryPayload:
    return await _save_category(info, parse_typed_id(id, "Category"), input)


async def _save_category(
    info: Info, category_id: uuid.UUID | None, input: CategoryInput
) -> CategoryPayload:
    data = category_service.CategoryInput(input.name, input.description, input.rule)
    async with info.context.transaction() as session:
        saved = await category_service.save_category(session, category_id, data)
    return CategoryPayload.of(saved)


async def delete_category(info: Info, id: strawberry.ID) -> strawberry.ID:
    category_id = parse_typed_id(id, "Category")
    async with info.context.transaction() as session:
        await category_service.delete_category(session, category_id)
    return id


async def scorecards(info: Info) -> list[Scorecard]:
    async with info.context.session() as session:
        return [Scorecard.from_row(s) for s in await scorecard_service.list_scorecards(session)]


async def create_scorecard(info: Info, input: ScorecardInput) -> ScorecardPayload:
    return await _save_scorecard(info, None, input)


async def update_scorecard(
    info: Info, id: strawberry.ID, input: ScorecardInput
) -> ScorecardPayload:
    return await _save_scorecard(info, parse_typed_id(id, "Scorecard"), input)


async def _save_scorecard(
    info: Info, scorecard_id: uuid.UUID | None, input: ScorecardInput
) -> ScorecardPayload:
    data = scorecard_service.ScorecardInput(input.name, input.description, input.items)
    async with info.context.transaction() as session:
        saved = await scorecard_service.save_scorecard(session, scorecard_id, data)
    return ScorecardPayload.of(saved)


async def delete_scorecard(info: Info, id: strawberry.ID) -> strawberry.ID:
    scorecard_id = parse_typed_id(id, "Scorecard")
    async with info.context.transaction() as session:
        await scorecard_service.delete_scorecard(session, scorecard_id)
    return id


async def rule_evaluation(info: Info, id: strawberry.ID) -> RuleEvaluation:
    run_id = parse_typed_id(id, "RuleEvaluation")
    async with info.context.session() as session:
        run = (
            await session.execute(
                select(RuleEvaluationModel).where(RuleEvaluationModel.id == run_id)
            )
        ).scalar_one_or_none()
    if run is None:
        raise NotFound("Rule evaluation")
    return RuleEvaluation.from_row(run)
