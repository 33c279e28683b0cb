"""Personal data masked in the audio: spoken (from the transcript's word times) and keyed
(keypad tones, from the audio itself), written to a redacted copy of the recording.

    result = redact_recording(original, copy_path, transcript, fill=Fill.TONE)
    result.redactions  # [Redaction(type="CARD", start_s=..., end_s=...), ...]
"""

from app.ml.redaction.audio import REDACTED_CONTENT_TYPE, Fill
from app.ml.redaction.recording import (
    DTMF,
    NOT_REDACTED,
    RedactedRecording,
    Redaction,
    plan_redactions,
    redact_recording,
)

__all__ = [
    "DTMF",
    "NOT_REDACTED",
    "REDACTED_CONTENT_TYPE",
    "Fill",
    "RedactedRecording",
    "Redaction",
    "plan_redactions",
    "redact_recording",
]
