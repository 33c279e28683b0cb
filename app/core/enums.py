"""Domain enums shared by the database, the speech pipeline, the services and the API."""

from __future__ import annotations

from enum import StrEnum


class SpeakerRole(StrEnum):
    AGENT = "AGENT"
    CUSTOMER = "CUSTOMER"
    UNKNOWN = "UNKNOWN"


class Sentiment(StrEnum):
    POSITIVE = "POSITIVE"
    NEUTRAL = "NEUTRAL"
    NEGATIVE = "NEGATIVE"


class RoleSource(StrEnum):
    """What decided a speaker's role."""

    CHANNEL = "CHANNEL"
    """Stereo recording: the agent's channel."""
    VOICE = "VOICE"
    """Mono recording: the speaker's voice matched (or did not match) the agent's voiceprint."""
    WORDS = "WORDS"
    """What the speaker said (greetings, offers of help)."""
    NONE = "NONE"
    """Nothing decided it: the role is UNKNOWN."""
