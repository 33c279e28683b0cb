"""Turns a job's exception into the human-readable `error` a FAIL call carries.

Known failures keep their own message (they are written for operators) with file-system
paths removed; anything else names only the exception type. The full exception goes to
the worker log.
"""

from __future__ import annotations

import re

from app.ml.analysis.errors import AnalysisError
from app.ml.audio import AudioDecodeError
from app.ml.diarization.base import DiarizationError
from app.ml.runtime import ModelLoadError, OutOfMemory
from app.ml.stt.base import SttError
from app.storage import ObjectNotFound, StorageError

READABLE_ERRORS = (OutOfMemory, ModelLoadError, SttError, DiarizationError, AnalysisError)

# Two or more path components: enough to catch '/srv/data/x.wav' and not 'and/or'.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.\-~])(?:[A-Za-z]:)?(?:[/\\][\w.\-~]+){2,}[/\\]?")


def scrub_paths(message: str) -> str:
    """Keeps only the last component of any absolute path in `message`."""
    return _ABSOLUTE_PATH.sub(
        lambda m: "…/" + re.split(r"[/\\]", m.group(0).rstrip("/\\"))[-1], message
    )


def describe_failure(exc: BaseException) -> str:
    if isinstance(exc, ObjectNotFound):
        return "The recording is missing from storage; upload it again"
    if isinstance(exc, StorageError):
        return "The recording could not be read from storage; try reprocessing the call"
    if isinstance(exc, AudioDecodeError):
        return (
            "The recording could not be decoded: it is corrupt, truncated or in an "
            "unsupported format"
        )
    if isinstance(exc, READABLE_ERRORS):
        return scrub_paths(str(exc)) or type(exc).__name__
    if isinstance(exc, ConnectionError | TimeoutError):
        return "A service the worker needs was unreachable; try reprocessing the call"
    return f"Processing failed unexpectedly ({type(exc).__name__}); the error is in the worker log"
