from __future__ import annotations

from app.core.errors import scrub_paths
from app.ml.speech.audio import AudioDecodeError
from app.ml.stt.base import SttError
from app.storage import ObjectNotFound
from app.workers.errors import describe_failure, is_retryable


def test_failure_messages_are_readable_and_hide_server_paths() -> None:
    decode = AudioDecodeError("cannot open '/srv/ovozly/objects/calls/2026/11/23/abc': bad data")
    assert "/srv" not in describe_failure(decode)
    assert "could not be decoded" in describe_failure(decode)
    stt = SttError("model not found in /root/.cache/models/large-v3; download it first")
    assert describe_failure(stt) == "model not found in …/large-v3; download it first"
    assert "missing from storage" in describe_failure(ObjectNotFound("calls/x"))
    unexpected = describe_failure(KeyError("SELECT * FROM secrets"))
    assert "SELECT" not in unexpected
    assert "KeyError" in unexpected
    assert scrub_paths("lower and/or smaller") == "lower and/or smaller"


def test_only_retryable_faults_are_retried() -> None:
    assert is_retryable(ConnectionResetError())
    assert is_retryable(SttError("rate limited", retryable=True))
    assert not is_retryable(SttError("bad key"))
    assert not is_retryable(ValueError("bad audio"))
