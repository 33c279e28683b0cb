"""GraphQL types of redaction and retention."""

from __future__ import annotations

import strawberry


@strawberry.type(description="A span masked in the transcript and in the audio served by audioUrl.")
class Redaction:
    type: str = strawberry.field(
        description="CARD, CVV, PHONE, EMAIL, ACCOUNT, PASSPORT, NUMBER (a long digit string) "
        "or DTMF (keypad tones)."
    )
    start: float = strawberry.field(description="Seconds from the start of the recording.")
    end: float


@strawberry.type
class RetentionPolicy:
    audio_days: int | None = strawberry.field(
        description="Recordings are deleted this many days after the call finished; null = kept."
    )
    transcript_days: int | None = strawberry.field(
        description="Transcripts and analysis likewise (the call row and its metrics stay)."
    )


@strawberry.input(
    description="Replaces the whole policy: a field left out or null keeps that data for ever; "
    "0 removes it at the next sweep after the call finished."
)
class RetentionPolicyInput:
    audio_days: int | None = None
    transcript_days: int | None = None
