"""The job's redaction step: after transcription, the recording's redacted copy is written
and stored beside the original; `save_results` then points the call at it.

Runs in a thread (decoding and tone detection are CPU work). A job that is reprocessed or
deleted meanwhile leaves a stored copy no call points at: `discard` removes it.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from pathlib import Path

from app.core.config import Settings
from app.ml.types import Transcript
from app.services.redacted_audio import (
    REDACTED_CONTENT_TYPE,
    REDACTED_PREFIX,
    MaskedSpan,
    StoredRedaction,
    redaction_off_warning,
)
from app.storage import ObjectStorage, new_object_key

logger = logging.getLogger(__name__)


async def store_redacted_copy(
    settings: Settings, storage: ObjectStorage, audio_path: Path, transcript: Transcript
) -> StoredRedaction:
    """The masked spans and the stored copy of the recording at `audio_path`."""
    if not settings.redact_audio:
        return StoredRedaction(None, (), (redaction_off_warning(),))
    # Imported here: the decoders (PyAV, libsndfile) are the worker's, not the API's.
    from app.ml.redaction.audio import Fill
    from app.ml.redaction.recording import redact_recording

    tmp_root = settings.data_dir / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ovozly-redact-", dir=tmp_root) as directory:
        copy_path = Path(directory) / "redacted.flac"
        result = await asyncio.to_thread(
            redact_recording,
            audio_path,
            copy_path,
            transcript,
            fill=Fill(settings.redaction_fill),
        )
        key = new_object_key(REDACTED_PREFIX)
        await storage.put_file(key, copy_path, content_type=REDACTED_CONTENT_TYPE)
    logger.info(
        "redacted %d spans (finding %.2f s, writing %.2f s)",
        len(result.redactions),
        result.detect_s,
        result.write_s,
    )
    spans = tuple(MaskedSpan(r.type, r.start_s, r.end_s) for r in result.redactions)
    return StoredRedaction(key, spans, tuple(result.warnings))


async def discard(storage: ObjectStorage, redaction: StoredRedaction) -> None:
    """Removes a copy no call will point at (its job was superseded)."""
    if redaction.storage_key is not None:
        await storage.delete(redaction.storage_key)
