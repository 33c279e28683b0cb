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
