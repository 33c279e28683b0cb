"""Voiceprints: learning each agent's voice from their finished calls, the voice matching
needs for a new call, and deletion. Services flush; the boundary commits.

What is stored is embeddings only, never audio: one centroid per call the agent's voice was
learned from (`VoiceprintSample`, AGENT), and, on mono calls before the agent's voice is
known, the centroid of each voice of the call (CANDIDATE). Once the voice that recurs
across at least `min_calls` calls is found, those samples become AGENT and every other
voice's sample is deleted.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.enums import RoleSource, SpeakerRole
from app.core.errors import NotFound
from app.db.models import SampleKind, User, Voiceprint, VoiceprintSample
from app.ml.types import RoleDecision, SpeakerEmbeddings, Transcript
from app.ml.voiceprints.matching import (
    MIN_SAMPLE_SPEECH_S,
    THRESHOLDS,
    AgentVoice,
    FloatArray,
    joined_voice,
    mean_voice,
    one_voice_per_person,
    recurring_voice,
    unit,
)
from app.services import audit

MAX_SAMPLES = 50
"""The voiceprint is the mean of the agent's latest this-many calls: voices change slowly,
and the mean does not move after that many."""


def _vector(sample: VoiceprintSample) -> FloatArray:
    return unit(np.asarray(sample.embedding, dtype=np.float32))


async def _samples(
    session: AsyncSession, user_id: uuid.UUID, model: str | None = None
) -> Sequence[VoiceprintSample]:
    query = select(VoiceprintSample).where(VoiceprintSample.user_id == user_id)
    if model is not None:
        query = query.where(VoiceprintSample.model == model)
    result = await session.execute(query.order_by(VoiceprintSample.created_at.desc()))
    return result.scalars().all()


async def agent_voice(
    session: AsyncSession, user_id: uuid.UUID, *, min_calls: int, exclude_call: uuid.UUID
) -> AgentVoice | None:
    """The voice to tell `user_id` by on a new call: the mean of their AGENT samples of
    calls other than `exclude_call` (so reprocessing a call matches as the first run
    did), once there are at least `min_calls` of them; None otherwise, and always for a
    deactivated or deleted user."""
    user = await session.get(User, user_id)
    if user is None or not user.is_active:
        return None
    agents = [
        s
        for s in await _samples(session, user_id)
        if s.kind is SampleKind.AGENT and s.call_id != exclude_call
    ]
    if not agents:
        return None
    model = agents[0].model
    agents = [s for s in agents if s.model == model][:MAX_SAMPLES]
    calls = {s.call_id for s in agents}
    if len(calls) < min_calls:
        return None
    vector = mean_voice([_vector(s) for s in agents], [s.speech_s for s in agents])
    return AgentVoice(model=model, vector=vector, calls=len(calls))


async def learn_from_call(
    session: AsyncSession,
    user_id: uuid.UUID,
    call_id: uuid.UUID,
    transcript: Transcript,
    voice_roles: Mapping[str, RoleDecision],
    *,
    agent_channel: int,
    min_calls: int,
) -> Voiceprint | None:
    """Replaces what `call_id` taught of `user_id`'s voice, then recomputes the voiceprint.

    The agent's voice in this call is the agent's channel (stereo), or the speaker the
    voiceprint matched (mono). On a mono call with no match and no voiceprint yet, every
    voice of the call is kept as a candidate until the recurring one is found. A
    deactivated or deleted user learns nothing."""
    user = await session.get(User, user_id)
    if user is None or not user.is_active:
        return None
    await session.execute(
        delete(VoiceprintSample).where(
            VoiceprintSample.user_id == user_id, VoiceprintSample.call_id == call_id
        )
    )
    embeddings = transcript.speaker_embeddings
    if embeddings is None or not embeddings.vectors:
        return await _refresh(session, user_id, None, min_calls)
    stereo = transcript.channels > 1 and len(set(transcript.speaker_channels.values())) > 1
    rows: list[dict[str, object]] = []

    def sample(speaker: str, kind: SampleKind, voices: SpeakerEmbeddings) -> None:
        if voices.speech_s.get(speaker, 0.0) < MIN_SAMPLE_SPEECH_S:
            return
        rows.append(
            {
                "user_id": user_id,
                "call_id": call_id,
                "speaker": speaker,
                "kind": kind,
                "model": voices.model,
                "embedding": [float(x) for x in voices.vectors[speaker]],
                "speech_s": voices.speech_s[speaker],
            }
        )

    if stereo:
        for speaker, channel in transcript.speaker_channels.items():
            if channel == agent_channel and speaker in embeddings.vectors:
                sample(speaker, SampleKind.AGENT, embeddings)
    else:
        matched = [
            speaker
            for speaker, decision in voice_roles.items()
            if decision.source is RoleSource.VOICE
            and decision.role is SpeakerRole.AGENT
            and speaker in embeddings.vectors
        ]
        if matched:
            # Every speaker the voiceprint matched is the agent (a diarizer may split one
            # voice in two): one sample of all their speech.
            vector, speech_s = joined_voice(embeddings, matched)
            agent = SpeakerEmbeddings(
                model=embeddings.model,
                vectors={matched[0]: vector},
                speech_s={matched[0]: speech_s},
            )
            sample(matched[0], SampleKind.AGENT, agent)
        elif not await _enrolled(session, user_id, embeddings.model, min_calls):
            voices = one_voice_per_person(embeddings)
            for speaker in voices.vectors:
                sample(speaker, SampleKind.CANDIDATE, voices)
    if rows:
        await session.execute(insert(VoiceprintSample), rows)
    return await _refresh(session, user_id, embeddings.model, min_calls)


async def _enrolled(session: AsyncSession, user_id: uuid.UUID, model: str, min_calls: int) -> bool:
    samples = await _samples(session, user_id, model)
    return len({s.call_id for s in samples if s.kind is SampleKind.AGENT}) >= min_calls


async def _refresh(
    session: AsyncSession, user_id: uuid.UUID, model: str | None, min_calls: int
) -> Voiceprint | None:
    """Finds the recurring voice among candidate calls when that can enrol the agent, then
    rewrites the user's Voiceprint row from the samples (or deletes it: none left)."""
    samples = list(await _samples(session, user_id, model))
    if not samples:
        await session.execute(delete(Voiceprint).where(Voiceprint.user_id == user_id))
        return None
    model = model or samples[0].model
    samples = [s for s in samples if s.model == model]
    per_call: dict[uuid.UUID, list[VoiceprintSample]] = defaultdict(list)
    for s in samples:
        per_call[s.call_id].append(s)
    candidate_calls = [c for c, rows in per_call.items() if rows[0].kind is SampleKind.CANDIDATE]
    agent_calls = [c for c, rows in per_call.items() if rows[0].kind is SampleKind.AGENT]
    # Before enrolment every AGENT call anchors the search; the candidates must agree.
    if candidate_calls and len(per_call) >= min_calls:
        # Samples are newest first: all the calls, else the latest `min_calls` of them (a
        # call whose voices the diarizer mixed must not block learning for ever).
        ordered = agent_calls + candidate_calls
        latest = list(dict.fromkeys(s.call_id for s in samples))[:min_calls]
        for chosen in (ordered, latest):
            voices = [{s.speaker: _vector(s) for s in per_call[c]} for c in chosen]
            picks = recurring_voice(voices, model)
            if picks is not None:
                await _keep_agent_voice(session, per_call, dict(zip(chosen, picks, strict=True)))
                samples = [s for s in samples if s.kind is SampleKind.AGENT]
                break
    agents = [s for s in samples if s.kind is SampleKind.AGENT][:MAX_SAMPLES]
    enrolled = len({s.call_id for s in agents}) >= min_calls
    embedding = (
        [float(x) for x in mean_voice([_vector(s) for s in agents], [s.speech_s for s in agents])]
        if enrolled
        else None
    )
    values = {
        "model": model,
        "embedding": embedding,
        "enrolled": enrolled,
        "calls": len(per_call),
        "updated_at": datetime.now(UTC),
    }
    await session.execute(
        insert(Voiceprint)
        .values(user_id=user_id, **values)
        .on_conflict_do_update(index_elements=[Voiceprint.user_id], set_=values)
    )
    return await session.get(Voiceprint, user_id, populate_existing=True)


async def _keep_agent_voice(
    session: AsyncSession,
    per_call: Mapping[uuid.UUID, list[VoiceprintSample]],
    picks: Mapping[uuid.UUID, str],
) -> None:
    """The picked voice of each call becomes the agent's; in the calls left out of the
    search, the candidate matching the picks' mean does too. Every other voice's sample is
    deleted: customers' embeddings are kept no longer than needed to find the agent."""
    centre = mean_voice(
        [_vector(s) for call, pick in picks.items() for s in per_call[call] if s.speaker == pick]
    )
    for call, rows in per_call.items():
        if rows[0].kind is SampleKind.AGENT:
            continue
        pick = picks.get(call)
        if pick is None:
            scored = [(float(np.dot(_vector(s), centre)), s.speaker) for s in rows]
            best_score, best = max(scored)
            limits = THRESHOLDS.get(rows[0].model)
            pick = best if limits is not None and best_score >= limits.match else None
        for s in rows:
            if s.speaker == pick:
                s.kind = SampleKind.AGENT
            else:
                await session.delete(s)
    await session.flush()


async def voiceprint_of(session: AsyncSession, user_id: uuid.UUID) -> Voiceprint | None:
    return await session.get(Voiceprint, user_id)


async def delete_voiceprint(session: AsyncSession, actor: audit.Actor, user_id: uuid.UUID) -> User:
    """Deletes everything learned of the user's voice (audited); learning starts again with
    their next call."""
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("User")
    await session.execute(delete(VoiceprintSample).where(VoiceprintSample.user_id == user_id))
    await session.execute(delete(Voiceprint).where(Voiceprint.user_id == user_id))
    await session.flush()
    audit.record_by(session, audit.AuditAction.VOICEPRINT_DELETED, actor, target_user_id=user_id)
    return user
