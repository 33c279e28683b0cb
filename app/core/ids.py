"""Relay-style global IDs: base64url of '<Type>:<uuid>'. Opaque to clients; the same IDs name
objects in the GraphQL API and in webhook bodies, so they live outside both layers."""

from __future__ import annotations

import base64
import binascii
import uuid

from app.core.errors import BadUserInput, NotFound


def to_global_id(type_name: str, object_id: uuid.UUID) -> str:
    raw = f"{type_name}:{object_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_global_id(global_id: str) -> tuple[str, uuid.UUID]:
    try:
        padded = global_id + "=" * (-len(global_id) % 4)
        type_name, _, raw_id = base64.urlsafe_b64decode(padded.encode()).decode().partition(":")
        return type_name, uuid.UUID(raw_id)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise BadUserInput(f"'{global_id[:64]}' is not a valid ID") from exc


def parse_typed_id(global_id: str, expected_type: str) -> uuid.UUID:
    """An ID of another type is reported as not found, like a missing object."""
    type_name, object_id = parse_global_id(global_id)
    if type_name != expected_type:
        raise NotFound(expected_type)
    return object_id
