"""One place that makes users, logins, calls, results, audio and waits for every test and
benchmark: `users`, `auth`, `calls`, `results`, `audio` and `waits`, each importable here."""

from tests.factories.audio import (
    FORMATS,
    encode_audio,
    header_only_wav,
    music_on_hold,
    noise,
    sine,
    tone_bytes,
    tone_file,
    write_pcm16,
    write_tone,
)
from tests.factories.auth import LOGIN, login, login_at, login_attempt
from tests.factories.calls import finished_call, make_call, make_call_row, uploaded_call
from tests.factories.results import (
    CallSpec,
    Results,
    Turn,
    conversation_results,
    rich_results,
    simple_results,
    spec_results,
)
from tests.factories.users import PASSWORD, Person, make_person, make_user
from tests.factories.waits import (
    serving,
    wait_until,
    wait_until_a_query_waits_for_a_lock,
    wait_until_blocking,
)

__all__ = [
    "FORMATS",
    "LOGIN",
    "PASSWORD",
    "CallSpec",
    "Person",
    "Results",
    "Turn",
    "conversation_results",
    "encode_audio",
    "finished_call",
    "header_only_wav",
    "login",
    "login_at",
    "login_attempt",
    "make_call",
    "make_call_row",
    "make_person",
    "make_user",
    "music_on_hold",
    "noise",
    "rich_results",
    "serving",
    "simple_results",
    "sine",
    "spec_results",
    "tone_bytes",
    "tone_file",
    "uploaded_call",
    "wait_until",
    "wait_until_a_query_waits_for_a_lock",
    "wait_until_blocking",
    "write_pcm16",
    "write_tone",
]
