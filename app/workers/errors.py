"""Turns a job's exception into the human-readable `error` a FAIL call carries.

Known failures keep their own message (they are written for operators); anything else
names only the exception type, since its text may hold paths or SQL.
"""

from __future__ import annotations

import importlib

from app.storage import ObjectNotFound, StorageError

# Error classes from the ML packages whose messages are written for people.
_READABLE_ERRORS = (
    ("app.ml.audio", "AudioDecodeError"),
    ("app.ml.runtime", "OutOfMemory"),
    ("app.ml.runtime", "ModelLoadError"),
    ("app.ml.stt.base", "SttError"),
    ("app.ml.diarization.base", "DiarizationError"),
    ("app.ml.analysis.errors", "AnalysisError"),
)


def _readable_error_types() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = []
    for module_name, class_name in _READABLE_ERRORS:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        error_type = getattr(module, class_name, None)
        if isinstance(error_type, type) and issubclass(error_type, BaseException):
            types.append(error_type)
    return tuple(types)


def describe_failure(exc: BaseException) -> str:
    if isinstance(exc, ObjectNotFound):
        return "The recording is missing from storage; upload it again"
    if isinstance(exc, StorageError):
        return "The recording could not be read from storage; try reprocessing the call"
    if isinstance(exc, _readable_error_types()):
        return str(exc) or type(exc).__name__
    if isinstance(exc, ConnectionError | TimeoutError):
        return "A service the worker needs was unreachable; try reprocessing the call"
    return f"Processing failed unexpectedly ({type(exc).__name__}); the error is in the worker log"
