"""Aggregates over finished calls, grouped by agent, day, week, language, sentiment or
category: one SQL statement per query (CTEs), never a call loaded into Python.

Only finished (SUCCESS) calls are counted: a running or failed call has no analysis to
aggregate. With CATEGORY, a call counts once in each category it matched, and calls that
matched none form the group whose category is null.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Date,
    Integer,
    and_,
    cast,
    func,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from app.core.enums import Sentiment, SpeakerRole
from app.core.errors import BadUserInput
from app.db.models import (
    AnalysisIntent,
    AnalysisIssue,
    Call,
    CallAnalysis,
    CallCategory,
    CallMetrics,
    CallScorecard,
    CallSpeaker,
    CallStatus,
    User,
)
from app.services.calls import CallFilters, filter_clauses

TOP_N = 5
MAX_GROUPS = 1000


class StatsGroup(StrEnum):
    AGENT = "AGENT"
    DAY = "DAY"
    WEEK = "WEEK"
    LANGUAGE = "LANGUAGE"
    SENTIMENT = "SENTIMENT"
    CATEGORY = "CATEGORY"


@dataclass(frozen=True, slots=True)
class NameCount:
    name: str
    count: int


@dataclass(frozen=True, slots=True)
class StatsRow:
    agent_id: uuid.UUID | None
    day: date | None
    week: date | None
    """The Monday starting the ISO week (UTC)."""
    language: str | None
    sentiment: Sentiment | None
    category_id: uuid.UUID | None
    calls: int
    total_duration_s: float
    mean_duration_s: float | None
    mean_sentiment_score: float | None
    negative_share: float | None
    mean_agent_talk_ratio: float | None
    mean_silence_share: float | None
    interruptions_per_call: float | None
    mean_scorecard_score: float | None
    top_intents: list[NameCount]
    top_issues: list[NameCount]


def _utc_day(unit: str) -> ColumnElement[Any]:
    return cast(func.date_trunc(unit, func.timezone("UTC", Call.created_at)), Date)


def _key_expression(group: StatsGroup) -> ColumnElement[Any] | InstrumentedAttribute[Any]:
    match group:
        case StatsGroup.AGENT:
            return Call.owner_id
        case StatsGroup.DAY:
            return _utc_day("day")
        case StatsGroup.WEEK:
            return _utc_day("week")
        case StatsGroup.LANGUAGE:
            return CallAnalysis.language
        case StatsGroup.SENTIMENT:
            return CallAnalysis.sentiment
        case StatsGroup.CATEGORY:
            return CallCategory.category_id


async def call_stats(
    session: AsyncSession, viewer: User, filters: CallFilters, group_by: list[StatsGroup]
) -> list[StatsRow]:
    groups = list(dict.fromkeys(group_by))  # repeated groups add nothing
    if len(groups) != len(group_by):
        raise BadUserInput("groupBy: each group at most once")
    names = [f"k_{group.value.lower()}" for group in groups]
    base = _per_call(viewer, filters, groups, names)
    keys = [base.c[name] for name in names]
    totals = _totals(base, keys)
    intents = _top_names(base, names, AnalysisIntent, AnalysisIntent.name, "intents")
    issues = _top_names(base, names, AnalysisIssue, AnalysisIssue.title, "issues")

    def same_keys(other: Any) -> ColumnElement[bool]:
        if not names:
            return true()
        return and_(*(totals.c[n].is_not_distinct_from(other.c[n]) for n in names))

    statement = (
        select(
            totals,
            intents.c["items"].label("top_intents"),
            issues.c["items"].label("top_issues"),
        )
        .select_from(totals)
        .outerjoin(intents, same_keys(intents))
        .outerjoin(issues, same_keys(issues))
        .order_by(*(totals.c[n].asc().nulls_last() for n in names))
        .limit(MAX_GROUPS)
    )
    rows = (await session.execute(statement)).mappings().all()
    return [_row(row, groups, names) for row in rows]


def _per_call(
    viewer: User, filters: CallFilters, groups: list[StatsGroup], names: list[str]
) -> Any:
    """One row per finished, visible call: its group keys and the values averaged over it."""
    agent_ratio = (
        select(func.sum(CallSpeaker.talk_ratio))
        .where(CallSpeaker.call_id == Call.id, CallSpeaker.role == SpeakerRole.AGENT)
        .scalar_subquery()
    )
    scorecard = (
        select(func.avg(CallScorecard.score))
        .where(CallScorecard.call_id == Call.id)
        .scalar_subquery()
    )
    query = (
        select(
            Call.id.label("call_id"),
            *(_key_expression(g).label(n) for g, n in zip(groups, names, strict=True)),
            func.coalesce(CallMetrics.duration_s, Call.duration_s, 0.0).label("duration"),
            CallAnalysis.sentiment_score.label("sentiment_score"),
            cast(CallAnalysis.sentiment == Sentiment.NEGATIVE, Integer).label("negative"),
            (CallMetrics.silence_s / func.nullif(CallMetrics.duration_s, 0.0)).label("silence"),
            CallMetrics.interruptions.label("interruptions"),
            agent_ratio.label("agent_ratio"),
            scorecard.label("scorecard"),
        )
        .select_from(Call)
        .outerjoin(CallAnalysis, CallAnalysis.call_id == Call.id)
        .outerjoin(CallMetrics, CallMetrics.call_id == Call.id)
        .where(*filter_clauses(viewer, filters), Call.status == CallStatus.SUCCESS)
    )
    if StatsGroup.CATEGORY in groups:
        query = query.outerjoin(CallCategory, CallCategory.call_id == Call.id)
    return query.cte("base")


def _totals(base: Any, keys: list[Any]) -> Any:
    return (
        select(
            *keys,
            func.count().label("calls"),
            func.coalesce(func.sum(base.c.duration), 0.0).label("total_duration"),
            func.avg(base.c.duration).label("mean_duration"),
            func.avg(base.c.sentiment_score).label("mean_sentiment"),
            func.avg(base.c.negative).label("negative_share"),
            func.avg(base.c.agent_ratio).label("agent_ratio"),
            func.avg(base.c.silence).label("silence_share"),
            func.avg(base.c.interruptions).label("interruptions"),
            func.avg(base.c.scorecard).label("scorecard"),
        )
        .group_by(*keys)
        .cte("totals")
    )


def _top_names(base: Any, names: list[str], model: Any, column: Any, name: str) -> Any:
    """Per group, the TOP_N most frequent values of `column` (calls counted once each)."""
    keys = [base.c[n] for n in names]
    counted = (
        select(*keys, column.label("name"), func.count(func.distinct(base.c.call_id)).label("n"))
        .join(model, model.call_id == base.c.call_id)
        .group_by(*keys, column)
        .cte(f"{name}_counts")
    )
    counted_keys = [counted.c[n] for n in names]
    ranked = select(
        counted,
        func.row_number()
        .over(partition_by=counted_keys or None, order_by=(counted.c.n.desc(), counted.c.name))
        .label("rank"),
    ).cte(f"{name}_ranked")
    ranked_keys = [ranked.c[n] for n in names]
    return (
        select(
            *ranked_keys,
            func.json_agg(
                aggregate_order_by(
                    func.json_build_object("name", ranked.c.name, "count", ranked.c.n),
                    ranked.c.rank,
                )
            ).label("items"),
        )
        .where(ranked.c.rank <= TOP_N)
        .group_by(*ranked_keys)
        .cte(f"{name}_top")
    )


def _row(row: Any, groups: list[StatsGroup], names: list[str]) -> StatsRow:
    key = {group: row[name] for group, name in zip(groups, names, strict=True)}

    def maybe(value: Any) -> float | None:
        return None if value is None else float(value)

    def items(value: Any) -> list[NameCount]:
        return [NameCount(str(item["name"]), int(item["count"])) for item in value or []]

    sentiment = key.get(StatsGroup.SENTIMENT)
    return StatsRow(
        agent_id=key.get(StatsGroup.AGENT),
        day=key.get(StatsGroup.DAY),
        week=key.get(StatsGroup.WEEK),
        language=key.get(StatsGroup.LANGUAGE),
        sentiment=Sentiment(sentiment) if sentiment is not None else None,
        category_id=key.get(StatsGroup.CATEGORY),
        calls=int(row["calls"]),
        total_duration_s=float(row["total_duration"]),
        mean_duration_s=maybe(row["mean_duration"]),
        mean_sentiment_score=maybe(row["mean_sentiment"]),
        negative_share=maybe(row["negative_share"]),
        mean_agent_talk_ratio=maybe(row["agent_ratio"]),
        mean_silence_share=maybe(row["silence_share"]),
        interruptions_per_call=maybe(row["interruptions"]),
        mean_scorecard_score=maybe(row["scorecard"]),
        top_intents=items(row["top_intents"]),
        top_issues=items(row["top_issues"]),
    )


__all__ = ["NameCount", "StatsGroup", "StatsRow", "call_stats"]
