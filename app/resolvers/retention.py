"""Retention policy and legal hold resolvers: ADMIN only."""

from __future__ import annotations

import strawberry

from app.core.ids import parse_typed_id
from app.schema.call import Call
from app.schema.context import Info
from app.schema.retention import RetentionPolicy, RetentionPolicyInput
from app.services import retention as retention_service


def _policy(policy: retention_service.Policy) -> RetentionPolicy:
    return RetentionPolicy(audio_days=policy.audio_days, transcript_days=policy.transcript_days)


async def retention_policy(info: Info) -> RetentionPolicy:
    async with info.context.session() as session:
        return _policy(await retention_service.get_policy(session))


async def set_retention_policy(info: Info, input: RetentionPolicyInput) -> RetentionPolicy:
    policy = retention_service.Policy(input.audio_days, input.transcript_days)
    async with info.context.transaction() as session:
        saved = await retention_service.set_policy(session, await info.context.actor(), policy)
    return _policy(saved)


async def set_legal_hold(info: Info, call_id: strawberry.ID, hold: bool) -> Call:
    parsed = parse_typed_id(call_id, "Call")
    async with info.context.transaction() as session:
        call = await retention_service.set_legal_hold(
            session, await info.context.actor(), parsed, hold
        )
    return Call.from_row(call)
