"""A call's results as rows: built from the pipeline's dataclasses by one function.

Columns are named as the dataclass fields they store (`start_s`, `evidence`, ...), so a
row takes every field of its source that has a column of the same name; a new field
reaches the database by adding the column, with no mapping to write. The few differences
(a speaker's `label`, its source `channel`, the analysis `backend`) are spelled out below.
GraphQL types are built from these rows by one function too (`app.schema.rows`).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Delete, delete, insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.base import Base
from app.db.models import (
    AnalysisAction,
    AnalysisEntity,
    AnalysisIntent,
    AnalysisIssue,
    AnalysisKeypoint,
    CallAnalysis,
    CallMetrics,
    CallSpeaker,
    Segment,
)
from app.ml.types import CallInsight, Transcript

TRANSCRIPT_TABLES: tuple[type[Base], ...] = (
    Segment,
    CallAnalysis,
    AnalysisIntent,
    AnalysisEntity,
    AnalysisIssue,
    AnalysisAction,
    AnalysisKeypoint,
)
"""What expires with a transcript (retention); the call's figures stay."""
RESULT_TABLES: tuple[type[Base], ...] = (*TRANSCRIPT_TABLES, CallMetrics, CallSpeaker)

# Filled by the database or by the row's place, never from a result's fields.
_NOT_FROM_RESULTS = frozenset({"id", "call_id", "position", "text_search", "created_at"})


def _stored(value: Any) -> Any:
    """A dataclass value as a column stores it: tuples as arrays, words as JSON objects."""
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, list):
        return [dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for v in value]  # type: ignore[arg-type]
    return value


def row_values(model: type[Base], source: object, **values: Any) -> dict[str, Any]:
    """The values of a `model` row taken from `source`'s fields of the same names."""
    for column in model.__table__.columns:
        name = column.key
        if name in values or name in _NOT_FROM_RESULTS or not hasattr(source, name):
            continue
        values[name] = _stored(getattr(source, name))
    return values


def _positioned(
    model: type[Base], call_id: uuid.UUID, sources: Iterable[object]
) -> tuple[type[Base], list[dict[str, Any]]]:
    rows = [
        row_values(model, source, call_id=call_id, position=position)
        for position, source in enumerate(sources)
    ]
    return model, rows


def result_rows(
    call_id: uuid.UUID, transcript: Transcript, insight: CallInsight, *, analysis_backend: str
) -> list[tuple[type[Base], list[dict[str, Any]]]]:
    """Every row of a call's results, per table, in insertion order."""
    analysis, metrics = insight.analysis, insight.metrics
    speakers = [
        row_values(
            CallSpeaker,
            stats,
            call_id=call_id,
            position=position,
            label=stats.speaker,
            channel=transcript.speaker_channels.get(stats.speaker),
        )
        for position, stats in enumerate(metrics.speakers)
    ]
    return [
        _positioned(Segment, call_id, insight.segments),
        (
            CallAnalysis,
            [row_values(CallAnalysis, analysis, call_id=call_id, backend=analysis_backend)],
        ),
        _positioned(AnalysisIntent, call_id, analysis.intents),
        _positioned(AnalysisEntity, call_id, analysis.entities),
        _positioned(AnalysisIssue, call_id, analysis.issues),
        _positioned(AnalysisAction, call_id, analysis.actions),
        _positioned(AnalysisKeypoint, call_id, analysis.keypoints),
        (CallMetrics, [row_values(CallMetrics, metrics, call_id=call_id)]),
        (CallSpeaker, speakers),
    ]


async def replace_results(
    session: AsyncSession, call_id: uuid.UUID, rows: Sequence[tuple[type[Base], list[Any]]]
) -> None:
    """Deletes the call's earlier results and inserts `rows` (from `result_rows`): one
    statement for all the deletes, one (pipelined) statement per table with rows."""
    await session.execute(_delete_results(call_id))
    for model, values in rows:
        if values:
            await session.execute(insert(model), values)


def _delete_results(call_id: uuid.UUID) -> Delete:
    """Every result table's rows of the call deleted in one round trip: PostgreSQL runs each
    data-modifying CTE to completion whether or not the main statement reads it."""
    first, *others = RESULT_TABLES
    statement = delete(first).where(first.__table__.c.call_id == call_id)
    for table in others:
        column = table.__table__.c.call_id
        statement = statement.add_cte(
            delete(table)
            .where(column == call_id)
            .returning(column)
            .cte(f"deleted_{table.__tablename__}")
        )
    return statement
