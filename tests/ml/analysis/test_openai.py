"""The OpenAI-compatible backend against a scripted chat-completions server on loopback:
success, chunking, 429/500 with backoff, timeouts, malformed JSON, refusal, hard errors."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from app.core.enums import Sentiment
from app.ml.analysis import AnalysisError, AnalysisSettings, build_analyzer
from app.ml.analysis.openai_backend import LLMChunkAnalysis, OpenAIAnalyzer, strict_schema
from app.ml.analysis.settings import AnalysisBackend
from app.ml.types import Transcript, TranscriptSegment

GOOD = {
    "language": "ru",
    "summary": "Клиенту дважды списали деньги; номер +998 90 123 45 67.",
    "sentiment": "NEGATIVE",
    "sentiment_score": -0.7,
    "intents": [
        {"name": "payment_problem", "confidence": 0.9, "evidence": [1, 99]},
        {"name": "not_in_catalogue", "confidence": 0.9, "evidence": [1]},
    ],
    "issues": [{"title": "Двойное списание", "description": "Списали дважды", "evidence": [1]}],
    "actions": ["Проверить платёж"],
    "keypoints": [{"text": "Списали дважды", "line": 1}],
    "names": [{"type": "PERSON", "value": "Ольга", "line": 0}],
}


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


def completion(
    content: str | None, *, refusal: str | None = None, finish: str = "stop"
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": refusal}
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "test-model",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
    }


class Server:
    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                server.requests.append(json.loads(self.rfile.read(length)))
                reply = server.replies.pop(0) if server.replies else Reply(500, {"error": "empty"})
                time.sleep(reply.delay_s)  # a slow server, for the client's timeouts
                payload = json.dumps(reply.body).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up on a reply we delayed on purpose

            def log_message(self, format: str, *args: Any) -> None:
                """Keep the test output clean."""

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> Server:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    with Server() as running:
        yield running


def transcript() -> Transcript:
    turns = [
        ("S0", "Здравствуйте, чем могу помочь?"),
        ("S1", "Мне дважды списали деньги, мой номер +998 90 123 45 67"),
        ("S0", "Сейчас проверю, одну минуту."),
    ]
    segments = [TranscriptSegment(s, i * 3.0, i * 3.0 + 2.5, t) for i, (s, t) in enumerate(turns)]
    return Transcript(segments=segments, duration_s=9.0)


def analyzer(server: Server, **overrides: Any) -> tuple[OpenAIAnalyzer, list[float]]:
    sleeps: list[float] = []
    values: dict[str, Any] = {
        "analysis_backend": AnalysisBackend.OPENAI,
        "openai_base_url": server.url,
        "openai_api_key": "test-key",
        "openai_model": "test-model",
        "openai_timeout_s": 2.0,
        "openai_max_retries": 2,
        "openai_backoff_s": 0.05,
        "intent_embeddings": False,
    }
    settings = AnalysisSettings(_env_file=None, **(values | overrides))
    return OpenAIAnalyzer(settings, sleep=sleeps.append), sleeps


def test_structured_analysis(server: Server) -> None:
    server.replies = [Reply(body=completion(json.dumps(GOOD)))]
    llm, _ = analyzer(server)
    insight = llm.analyze(transcript())
    analysis = insight.analysis
    assert analysis.sentiment is Sentiment.NEGATIVE and analysis.sentiment_score == -0.7
    assert [(i.name, i.evidence) for i in analysis.intents] == [("payment_problem", (1,))]
    assert analysis.issues[0].evidence == (1,)
    assert analysis.language == "ru"
    assert "+998 90" not in analysis.summary and "[PHONE]" in analysis.summary
    assert ("PERSON", "Ольга") in {(e.type, e.value) for e in analysis.entities}
    assert ("PHONE", "+998*******67") in {(e.type, e.value) for e in analysis.entities}
    request = server.requests[0]
    assert request["model"] == "test-model"
    schema = request["response_format"]["json_schema"]
    assert schema["strict"] is True and schema["schema"] == strict_schema(LLMChunkAnalysis)
    sent = json.dumps(request["messages"], ensure_ascii=False)
    assert "+998 90 123 45 67" not in sent and "[PHONE]" in sent  # the model sees redacted text
    assert "payment_problem" in sent


def test_strict_schema_shape() -> None:
    schema = strict_schema(LLMChunkAnalysis)
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == set(LLMChunkAnalysis.model_fields)
    assert "minimum" not in json.dumps(schema)
    assert schema["$defs"]["LLMIntent"]["additionalProperties"] is False


def test_retries_429_and_500_with_backoff(server: Server) -> None:
    server.replies = [
        Reply(429, {"error": {"message": "slow down"}}, headers={"retry-after": "0.01"}),
        Reply(500, {"error": {"message": "boom"}}),
        Reply(body=completion(json.dumps(GOOD))),
    ]
    llm, sleeps = analyzer(server)
    assert llm.analyze(transcript()).analysis.intents
    assert sleeps == [0.01, 0.1]  # Retry-After honoured, then the doubled backoff
    assert len(server.requests) == 3


def test_gives_up_after_retries(server: Server) -> None:
    server.replies = [Reply(503, {"error": {"message": "down"}}) for _ in range(3)]
    llm, sleeps = analyzer(server)
    with pytest.raises(AnalysisError, match=r"HTTP 503 \(3 attempts\)"):
        llm.analyze(transcript())
    assert len(sleeps) == 2


def test_timeout_is_retried(server: Server) -> None:
    server.replies = [
        Reply(body=completion(json.dumps(GOOD)), delay_s=1.5),
        Reply(body=completion(json.dumps(GOOD))),
    ]
    llm, sleeps = analyzer(server, openai_timeout_s=0.5)
    assert llm.analyze(transcript()).analysis.summary
    assert len(sleeps) == 1


def test_malformed_json_retried_once_then_fails(server: Server) -> None:
    server.replies = [Reply(body=completion("{not json")), Reply(body=completion(json.dumps(GOOD)))]
    llm, _ = analyzer(server)
    assert llm.analyze(transcript()).analysis.intents
    second = server.requests[1]["messages"]
    assert second[-1]["role"] == "user" and "invalid" in second[-1]["content"]

    wrong = dict(GOOD, sentiment="FURIOUS")
    server.replies = [
        Reply(body=completion("{not json")),
        Reply(body=completion(json.dumps(wrong))),
    ]
    with pytest.raises(AnalysisError, match="invalid output twice"):
        llm.analyze(transcript())


def test_refusal_fails_the_call(server: Server) -> None:
    server.replies = [Reply(body=completion(None, refusal="I can't help with that."))]
    llm, _ = analyzer(server)
    with pytest.raises(AnalysisError, match="refused"):
        llm.analyze(transcript())


def test_client_errors_are_not_retried(server: Server) -> None:
    server.replies = [Reply(401, {"error": {"message": "bad key"}})]
    llm, sleeps = analyzer(server)
    with pytest.raises(AnalysisError, match="HTTP 401"):
        llm.analyze(transcript())
    assert sleeps == [] and len(server.requests) == 1


def test_long_calls_are_chunked_and_merged(server: Server) -> None:
    long_text = "Мне дважды списали деньги за интернет, проверьте пожалуйста. " * 20
    segments = [
        TranscriptSegment(f"S{i % 2}", i * 10.0, i * 10.0 + 9.0, long_text) for i in range(8)
    ]
    part_two = dict(GOOD, intents=[{"name": "refund_request", "confidence": 0.8, "evidence": [7]}])
    summary = {
        "summary": "Двойное списание и возврат.",
        "sentiment": "NEGATIVE",
        "sentiment_score": -0.6,
    }
    llm, _ = analyzer(server, openai_chunk_chars=5_000)
    chunks = llm._chunks(segments)
    assert len(chunks) == 2
    server.replies = [
        Reply(body=completion(json.dumps(body))) for body in (GOOD, part_two, summary)
    ]
    analysis = llm.analyze(Transcript(segments=segments, duration_s=80.0)).analysis
    assert {i.name for i in analysis.intents} == {"payment_problem", "refund_request"}
    assert analysis.summary == "Двойное списание и возврат." and analysis.sentiment_score == -0.6
    assert len(server.requests) == 3
    assert "[7]" in json.dumps(server.requests[1]["messages"], ensure_ascii=False)


def test_build_analyzer_needs_a_key_or_a_server() -> None:
    with pytest.raises(AnalysisError, match="OPENAI_API_KEY"):
        build_analyzer(AnalysisSettings(_env_file=None, analysis_backend=AnalysisBackend.OPENAI))


def test_empty_transcript_never_calls_the_model(server: Server) -> None:
    llm, _ = analyzer(server)
    insight = llm.analyze(Transcript(segments=[], duration_s=5.0))
    assert insight.analysis.language == "und" and server.requests == []
