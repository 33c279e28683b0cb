"""The redacted copy of a call's recording: how a job's copy replaces the call's earlier one,
and which recording a viewer is served.

Who hears what: agents and supervisors (every role but ADMIN) only ever get the redacted
copy, and no audio at all for a call that has none yet (still processing, or processed
before audio redaction existed; a reprocess makes one). Admins get the original while it
is kept (KEEP_ORIGINAL_AUDIO), else the copy. Once retention has taken the audio nobody
gets a link.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Call, Role, User
from app.ml.types import CallWarning
from app.services.effects import after_commit

REDACTED_PREFIX = "redacted"
"""Storage key prefix of redacted copies (originals are under `calls/`)."""
REDACTED_CONTENT_TYPE = "audio/flac"
NOT_REDACTED = "NOT_REDACTED"


@dataclass(frozen=True, slots=True)
class MaskedSpan:
    """One span masked in the copy (and in the transcript): `Call.redactions`."""

    type: str
    start_s: float
    end_s: float


@dataclass(frozen=True, slots=True)
class StoredRedaction:
    """What a job's redaction left: the copy's storage key (None when audio redaction is
    off), the spans masked, and what could not be checked."""

    storage_key: str | None
    spans: Sequence[MaskedSpan] = ()
    warnings: Sequence[CallWarning] = field(default_factory=tuple)


def redaction_off_warning() -> CallWarning:
    return CallWarning(
        NOT_REDACTED,
        "Audio redaction is off (REDACT_AUDIO=false): the recording is served as uploaded, "
        "with any card numbers or keypad tones in it",
    )


def apply_redaction(
    session: AsyncSession,
    call: Call,
    redaction: StoredRedaction | None,
    *,
    keep_original: bool,
) -> None:
    """Inside the transaction that saves a job's results: the call now points at this
    job's copy; the objects it replaces are deleted after the commit. None (a call saved
    without a redaction step, as tests' factories do) leaves the call without a copy."""
    effects = after_commit(session)
    previous_copy = call.redacted_storage_key
    original_dropped = previous_copy is not None and call.storage_key == previous_copy
    new_copy = redaction.storage_key if redaction is not None else None
    call.redacted_storage_key = new_copy
    call.redactions = [dataclasses.asdict(span) for span in redaction.spans] if redaction else []
    if redaction is not None:
        call.warnings = [*call.warnings, *(dataclasses.asdict(w) for w in redaction.warnings)]
    if new_copy is not None and (original_dropped or not keep_original):
        # The copy becomes the call's only recording (what a reprocess reads).
        if call.storage_key != new_copy:
            effects.delete_audio(call.storage_key)
        call.storage_key = new_copy
    if previous_copy is not None and previous_copy not in (new_copy, call.storage_key):
        effects.delete_audio(previous_copy)


@dataclass(frozen=True, slots=True)
class ServedRecording:
    storage_key: str
    original: bool
    """True when this is the recording as uploaded (only ever served to admins)."""


def served_recording(viewer: User, call: Call) -> ServedRecording | None:
    """The recording `viewer` may hear of a call they may see, or None."""
    if call.audio_deleted_at is not None:
        return None
    copy = call.redacted_storage_key
    if viewer.role is Role.ADMIN:
        if copy is None or call.storage_key != copy:
            return ServedRecording(call.storage_key, original=True)
        return ServedRecording(copy, original=False)
    if copy is None:
        return None
    return ServedRecording(copy, original=False)
