"""Helpers of the voiceprint tests: assembled two-party calls diarized by the local
diarizer, and learning through the service as the worker does."""

from __future__ import annotations

import uuid
from pathlib import Path

from app.db.engine import SessionFactory
from app.db.models import User
from app.ml.diarization.base import Diarization, Diarizer
from app.ml.speech.audio import DecodedAudio
from app.ml.types import SpeakerHints, Transcript
from app.ml.voiceprints.matching import match_agent
from app.services import voiceprints as voiceprint_service
from tests.factories import make_call_row
from tests.ml.voiceprints.assembled import LIBRI_SPEAKERS, AssembledCall, assemble

LIBRI = list(LIBRI_SPEAKERS)
CUSTOMER_CLIPS = [clip for speaker in LIBRI[1:] for clip in LIBRI_SPEAKERS[speaker]]


def two_party(audio_dir: Path, agent_clips: list[str], first_customer: int) -> AssembledCall:
    """Agent, customer, agent, customer: each agent clip once, two different customers'
    clips (a new customer for every call)."""
    parts: list[tuple[str, str]] = []
    for i, clip in enumerate(agent_clips):
        parts.append(("agent", clip))
        parts.append(("customer", CUSTOMER_CLIPS[(first_customer + 7 * i) % len(CUSTOMER_CLIPS)]))
    return assemble(audio_dir, parts)


def diarize(diarizer: Diarizer, call: AssembledCall) -> Diarization:
    return diarizer(DecodedAudio(call.samples[None, :], 1, 16_000, False), hints=SpeakerHints())


def as_transcript(call: AssembledCall, diarization: Diarization) -> Transcript:
    return Transcript(
        segments=[],
        duration_s=call.duration_s,
        speaker_turns=list(diarization.turns),
        speaker_embeddings=diarization.speaker_embeddings,
    )


async def learn(
    sessions: SessionFactory,
    owner: User,
    transcript: Transcript,
    call_id: uuid.UUID | None = None,
    min_calls: int = 3,
) -> uuid.UUID:
    call_id = call_id or await make_call_row(sessions, owner.id)
    async with sessions() as session, session.begin():
        voice = await voiceprint_service.agent_voice(
            session, owner.id, min_calls=min_calls, exclude_call=call_id
        )
        assert transcript.speaker_embeddings is not None
        roles = match_agent(transcript.speaker_embeddings, voice) if voice else {}
        await voiceprint_service.learn_from_call(
            session, owner.id, call_id, transcript, roles, agent_channel=0, min_calls=min_calls
        )
    return call_id
