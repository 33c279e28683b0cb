"""callStats: figures over finished calls, grouped; an agent sees only their own calls."""

from __future__ import annotations

from app.resolvers.calls import filters_of
from app.schema.call import CallFilter
from app.schema.context import Info
from app.schema.desk import CallStats
from app.services import stats as stats_service


async def call_stats(
    info: Info,
    filter: CallFilter | None = None,
    group_by: list[stats_service.StatsGroup] | None = None,
) -> list[CallStats]:
    viewer = await info.context.require_viewer()
    filters = filters_of(filter)
    async with info.context.session() as session:
        rows = await stats_service.call_stats(session, viewer, filters, list(group_by or []))
    return [CallStats.from_row(row) for row in rows]
