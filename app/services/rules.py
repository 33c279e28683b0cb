"""Applying categories and scorecards to finished calls: once when a call finishes (inside
the transaction that saves its results) and again for every finished call, in the background,
after a rule changes.

Facts are loaded for a batch of calls in one query per table; results replace the calls'
earlier ones, so evaluating twice is harmless.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.enums import SpeakerRole
from app.db.models import (
    AnalysisIntent,
    Call,
    CallAnalysis,
    CallCategory,
    CallMetrics,
    CallScorecard,
    CallSpeaker,
    CallStatus,
    Category,
    EvaluationStatus,
    RuleEvaluation,
    Scorecard,
    Segment,
)
from app.rules.evaluate import evaluate, score
from app.rules.facts import CallFacts, SegmentFact
from app.rules.model import Rule, ScorecardItem, ScorecardItems
from app.services.effects import after_commit

BATCH_SIZE = 200


@dataclass(frozen=True)
class RuleSet:
    categories: list[tuple[uuid.UUID, Rule]]
    scorecards: list[tuple[uuid.UUID, list[ScorecardItem]]]

    @property
    def empty(self) -> bool:
        return not self.categories and not self.scorecards


async def current_rules(session: AsyncSession) -> RuleSet:
    """The rules, held (FOR KEY SHARE) until the caller's transaction ends: a category or
    scorecard deleted meanwhile waits for the results that name it, then takes them away by
    cascade, instead of failing the finishing call on a foreign key. Edits do not wait."""
    categories = (
        await session.execute(
            select(Category.id, Category.rule).with_for_update(read=True, key_share=True)
        )
    ).all()
    scorecards = (
        await session.execute(
            select(Scorecard.id, Scorecard.items).with_for_update(read=True, key_share=True)
        )
    ).all()
    return RuleSet(
        categories=[(row.id, Rule.model_validate(row.rule)) for row in categories],
        scorecards=[
            (row.id, ScorecardItems.model_validate({"items": row.items}).items)
            for row in scorecards
        ],
    )


async def load_facts(session: AsyncSession, call_ids: Sequence[uuid.UUID]) -> list[CallFacts]:
    """Facts of the finished calls among `call_ids`, one query per table."""
    if not call_ids:
        return []
    calls = (
        await session.execute(
            select(Call.id, Call.duration_s, CallAnalysis.sentiment, CallMetrics)
            .outerjoin(CallAnalysis, CallAnalysis.call_id == Call.id)
            .outerjoin(CallMetrics, CallMetrics.call_id == Call.id)
            .where(Call.id.in_(call_ids), Call.status == CallStatus.SUCCESS)
        )
    ).all()
    found = [row.id for row in calls]
    segments: dict[uuid.UUID, list[SegmentFact]] = defaultdict(list)
    for seg in (
        await session.execute(
            select(
                Segment.call_id,
                Segment.position,
                Segment.role,
                Segment.start_s,
                Segment.end_s,
                Segment.text,
                Segment.sentiment_score,
            )
            .where(Segment.call_id.in_(found))
            .order_by(Segment.call_id, Segment.position)
        )
    ).all():
        segments[seg.call_id].append(
            SegmentFact(
                seg.position, seg.role, seg.start_s, seg.end_s, seg.text, seg.sentiment_score
            )
        )
    ratios: dict[uuid.UUID, dict[SpeakerRole, float]] = defaultdict(dict)
    for speaker in (
        await session.execute(
            select(CallSpeaker.call_id, CallSpeaker.role, func.sum(CallSpeaker.talk_ratio))
            .where(CallSpeaker.call_id.in_(found))
            .group_by(CallSpeaker.call_id, CallSpeaker.role)
        )
    ).all():
        ratios[speaker[0]][speaker[1]] = float(speaker[2])
    intents: dict[uuid.UUID, set[str]] = defaultdict(set)
    for intent in (
        await session.execute(
            select(AnalysisIntent.call_id, AnalysisIntent.name).where(
                AnalysisIntent.call_id.in_(found)
            )
        )
    ).all():
        intents[intent.call_id].add(intent.name.lower())
    facts = []
    for row in calls:
        metrics: CallMetrics | None = row.CallMetrics
        duration = metrics.duration_s if metrics is not None else (row.duration_s or 0.0)
        facts.append(
            CallFacts(
                call_id=row.id,
                duration_s=duration,
                segments=segments.get(row.id, []),
                sentiment=row.sentiment,
                interruptions=metrics.interruptions if metrics is not None else 0,
                talk_ratio_by_role=ratios.get(row.id, {}),
                intents=frozenset(intents.get(row.id, set())),
            )
        )
    return facts


async def evaluate_calls(
    session: AsyncSession, call_ids: Sequence[uuid.UUID], rules: RuleSet | None = None
) -> int:
    """Replaces the categories and scorecards of these calls; returns how many were finished
    calls. Unfinished calls lose their old results (a reprocessed call is re-tagged when its
    new run finishes)."""
    if not call_ids:
        return 0
    # A call whose transcript retention removed keeps the categories and scores it had:
    # there is nothing left to evaluate them on, and the statistics must not change.
    expired = set(
        (
            await session.execute(
                select(Call.id).where(
                    Call.id.in_(call_ids), Call.transcript_deleted_at.is_not(None)
                )
            )
        ).scalars()
    )
    if expired:
        call_ids = [call_id for call_id in call_ids if call_id not in expired]
        if not call_ids:
            return len(expired)
    rules = rules if rules is not None else await current_rules(session)
    await session.execute(delete(CallCategory).where(CallCategory.call_id.in_(call_ids)))
    await session.execute(delete(CallScorecard).where(CallScorecard.call_id.in_(call_ids)))
    facts = await load_facts(session, call_ids)
    category_rows: list[dict[str, object]] = []
    scorecard_rows: list[dict[str, object]] = []
    for call in facts:
        for category_id, rule in rules.categories:
            outcome = evaluate(rule, call)
            if outcome.matched:
                category_rows.append(
                    {
                        "call_id": call.call_id,
                        "category_id": category_id,
                        "evidence": [e.to_json() for e in outcome.evidence],
                    }
                )
        for scorecard_id, items in rules.scorecards:
            value, results = score(items, call)
            scorecard_rows.append(
                {
                    "call_id": call.call_id,
                    "scorecard_id": scorecard_id,
                    "score": value,
                    "items": [r.to_json() for r in results],
                }
            )
    # Upserts: a concurrent evaluation of the same call (a finishing call meeting a
    # background run) must not fail on the primary key; the last writer wins.
    if category_rows:
        statement = pg_insert(CallCategory)
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=[CallCategory.call_id, CallCategory.category_id],
                set_={"evidence": statement.excluded.evidence},
            ),
            category_rows,
        )
    if scorecard_rows:
        statement = pg_insert(CallScorecard)
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=[CallScorecard.call_id, CallScorecard.scorecard_id],
                set_={"score": statement.excluded.score, "items": statement.excluded["items"]},
            ),
            scorecard_rows,
        )
    return len(facts) + len(expired)


# --- background re-evaluation ----------------------------------------------------------------


async def start_evaluation(session: AsyncSession, reason: str) -> RuleEvaluation:
    """A run over every finished call, its job enqueued after the commit. Older runs still
    going are marked superseded: this one covers everything they would have done."""
    now = datetime.now(UTC)
    await session.execute(
        update(RuleEvaluation)
        .where(RuleEvaluation.status == EvaluationStatus.RUNNING)
        .values(status=EvaluationStatus.SUPERSEDED, finished_at=now, updated_at=now)
    )
    total = (
        await session.execute(
            select(func.count()).select_from(Call).where(Call.status == CallStatus.SUCCESS)
        )
    ).scalar_one()
    run = RuleEvaluation(
        status=EvaluationStatus.RUNNING, reason=reason[:200], total=total, processed=0
    )
    session.add(run)
    await session.flush()
    await session.refresh(run)
    after_commit(session).enqueue_rule_evaluation(run.id)
    return run


@dataclass(frozen=True, slots=True)
class BatchResult:
    run: RuleEvaluation | None
    """None when the run is gone or no longer RUNNING (superseded): stop."""
    last_call_id: uuid.UUID | None
    """Where the next batch starts; None when this was the last batch."""


async def evaluate_batch(
    session: AsyncSession, run_id: uuid.UUID, after: uuid.UUID | None
) -> BatchResult:
    """One batch of a run, in id order after `after`, with the run's progress, in the
    caller's transaction (one per batch, so progress is visible and work is never lost).

    The rules are taken before the run: an edit holds its category, then supersedes the
    run, so taking them in the other order deadlocks with it."""
    rules = await current_rules(session)
    run = (
        await session.execute(
            select(RuleEvaluation).where(RuleEvaluation.id == run_id).with_for_update()
        )
    ).scalar_one_or_none()
    if run is None or run.status is not EvaluationStatus.RUNNING:
        return BatchResult(None, None)
    query = select(Call.id).where(Call.status == CallStatus.SUCCESS).order_by(Call.id)
    if after is not None:
        query = query.where(Call.id > after)
    ids = list((await session.execute(query.limit(BATCH_SIZE))).scalars())
    done = await evaluate_calls(session, ids, rules)
    run.processed = min(run.total, run.processed + done) if run.total else run.processed + done
    if len(ids) < BATCH_SIZE:
        run.status = EvaluationStatus.SUCCESS
        run.processed = max(run.processed, run.total)
        run.finished_at = datetime.now(UTC)
        await session.flush()
        return BatchResult(run, None)
    await session.flush()
    return BatchResult(run, ids[-1])


async def fail_evaluation(session: AsyncSession, run_id: uuid.UUID, message: str) -> None:
    await session.execute(
        update(RuleEvaluation)
        .where(RuleEvaluation.id == run_id, RuleEvaluation.status == EvaluationStatus.RUNNING)
        .values(status=EvaluationStatus.FAIL, error=message, finished_at=datetime.now(UTC))
    )


async def stalled_evaluations(session: AsyncSession, idle_s: float) -> list[uuid.UUID]:
    """RUNNING runs that made no progress for `idle_s`: their job was lost."""
    cutoff = datetime.now(UTC) - timedelta(seconds=idle_s)
    rows = await session.execute(
        select(RuleEvaluation.id).where(
            RuleEvaluation.status == EvaluationStatus.RUNNING, RuleEvaluation.updated_at < cutoff
        )
    )
    return list(rows.scalars())
