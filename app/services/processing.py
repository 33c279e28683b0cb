"""Calls as the worker sees them: claiming a job, progress, results, failure, recovery.

Every write is guarded by the job token stored on the call (`calls.job_id`): a job that was
superseded by a reprocess or a recovery changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import (
    AnalysisAction,
    AnalysisEntity,
    AnalysisIntent,
    AnalysisIssue,
    AnalysisKeypoint,
    Call,
    CallAnalysis,
    CallMetrics,
    CallSpeaker,
    CallStatus,
    PipelineStage,
    Segment,
)
from app.ml.types import CallInsight, Transcript

RESULT_TABLES = (
    Segment,
    CallAnalysis,
    AnalysisIntent,
    AnalysisEntity,
    AnalysisIssue,
    AnalysisAction,
    AnalysisKeypoint,
    CallMetrics,
    CallSpeaker,
)


def _now() -> datetime:
    return datetime.now(UTC)


async def claim(session: AsyncSession, call_id: uuid.UUID, job_token: str) -> Call | None:
    """Locks the call for this job; None when it is gone, finished or superseded."""
    call = (
        await session.execute(select(Call).where(Call.id == call_id).with_for_update())
    ).scalar_one_or_none()
    if call is None or call.job_id != job_token or call.status is not CallStatus.RUNNING:
        return None
    call.attempts += 1
    call.started_at = _now()
    call.stage = PipelineStage.DECODING
    call.progress = 0.0
    await session.flush()
    await session.refresh(call)
    return call


async def record_progress(
    session: AsyncSession,
    call_id: uuid.UUID,
    job_token: str,
    stage: PipelineStage,
    progress: float,
) -> Call | None:
    result = await session.execute(
        update(Call)
        .where(Call.id == call_id, Call.job_id == job_token, Call.status == CallStatus.RUNNING)
        .values(stage=stage, progress=min(max(progress, 0.0), 1.0), updated_at=_now())
        .returning(Call)
    )
    return result.scalar_one_or_none()


async def save_results(
    session: AsyncSession,
    call_id: uuid.UUID,
    job_token: str,
    transcript: Transcript,
    insight: CallInsight,
    *,
    analysis_backend: str,
) -> Call | None:
    """Replaces any earlier results with these and marks the call SUCCESS, atomically."""
    call = (
        await session.execute(select(Call).where(Call.id == call_id).with_for_update())
    ).scalar_one_or_none()
    if call is None or call.job_id != job_token or call.status is not CallStatus.RUNNING:
        return None
    for table in RESULT_TABLES:
        await session.execute(delete(table).where(table.call_id == call_id))

    segment_rows = [
        {
            "call_id": call_id,
            "position": index,
            "speaker": segment.speaker,
            "role": segment.role,
            "channel": segment.channel,
            "start_s": segment.start_s,
            "end_s": segment.end_s,
            "text": segment.text,
            "words": [asdict(word) for word in segment.words],
            "sentiment": segment.sentiment,
            "sentiment_score": segment.sentiment_score,
            "language": segment.language,
        }
        for index, segment in enumerate(insight.segments)
    ]
    if segment_rows:
        await session.execute(insert(Segment), segment_rows)

    analysis = insight.analysis
    session.add(
        CallAnalysis(
            call_id=call_id,
            language=analysis.language,
            summary=analysis.summary,
            sentiment=analysis.sentiment,
            sentiment_score=analysis.sentiment_score,
            backend=analysis_backend,
        )
    )
    children: list[tuple[type[object], list[dict[str, object]]]] = [
        (
            AnalysisIntent,
            [
                {"name": i.name, "confidence": i.confidence, "evidence": list(i.evidence)}
                for i in analysis.intents
            ],
        ),
        (
            AnalysisEntity,
            [
                {
                    "type": e.type,
                    "value": e.value,
                    "speaker": e.speaker,
                    "start_s": e.start_s,
                    "segment_index": e.segment_index,
                }
                for e in analysis.entities
            ],
        ),
        (
            AnalysisIssue,
            [
                {"title": i.title, "description": i.description, "evidence": list(i.evidence)}
                for i in analysis.issues
            ],
        ),
        (AnalysisAction, [{"description": a.description} for a in analysis.actions]),
        (
            AnalysisKeypoint,
            [{"text": k.text, "segment_index": k.segment_index} for k in analysis.keypoints],
        ),
    ]
    for model, rows in children:
        if rows:
            await session.execute(
                insert(model),
                [{"call_id": call_id, "position": n, **row} for n, row in enumerate(rows)],
            )

    metrics = insight.metrics
    session.add(
        CallMetrics(
            call_id=call_id,
            duration_s=metrics.duration_s,
            talk_s=metrics.talk_s,
            silence_s=metrics.silence_s,
            overlap_s=metrics.overlap_s,
            interruptions=metrics.interruptions,
        )
    )
    speaker_rows = [
        {
            "call_id": call_id,
            "position": n,
            "label": stats.speaker,
            "role": stats.role,
            "channel": transcript.speaker_channels.get(stats.speaker),
            "talk_s": stats.talk_s,
            "talk_ratio": stats.talk_ratio,
            "words_per_minute": stats.words_per_minute,
            "turns": stats.turns,
            "longest_monologue_s": stats.longest_monologue_s,
        }
        for n, stats in enumerate(metrics.speakers)
    ]
    if speaker_rows:
        await session.execute(insert(CallSpeaker), speaker_rows)

    call.status = CallStatus.SUCCESS
    call.stage = PipelineStage.DONE
    call.progress = 1.0
    call.error = None
    call.finished_at = _now()
    if transcript.duration_s and not call.duration_s:
        call.duration_s = transcript.duration_s
    await session.flush()
    await session.refresh(call)
    return call


async def fail(
    session: AsyncSession, call_id: uuid.UUID, job_token: str | None, message: str
) -> Call | None:
    """Ends the call FAIL; `job_token=None` fails it whatever job holds it (recovery)."""
    conditions = [Call.id == call_id, Call.status == CallStatus.RUNNING]
    if job_token is not None:
        conditions.append(Call.job_id == job_token)
    result = await session.execute(
        update(Call)
        .where(*conditions)
        .values(status=CallStatus.FAIL, error=message, finished_at=_now(), updated_at=_now())
        .returning(Call)
    )
    return result.scalar_one_or_none()


async def running_calls_idle_since(session: AsyncSession, idle_for: timedelta) -> Sequence[Call]:
    """RUNNING calls not updated for `idle_for`: candidates for recovery."""
    cutoff = _now() - idle_for
    result = await session.execute(
        select(Call)
        .where(Call.status == CallStatus.RUNNING, Call.updated_at < cutoff)
        .order_by(Call.created_at)
        .limit(500)
    )
    return result.scalars().all()


async def requeue(session: AsyncSession, call: Call, job_token: str) -> Call:
    call.job_id = job_token
    call.stage = PipelineStage.QUEUED
    call.progress = 0.0
    await session.flush()
    await session.refresh(call)
    return call
