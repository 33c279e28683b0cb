"""A worker's heartbeat in the real Redis: `/readyz` and `ovozly worker --healthcheck` see a
checked worker as ready, a stopped one disappear, and a worker whose models failed as
failing."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import httpx
import pytest

from app.api.resources import Resources
from app.core.config import Settings
from app.core.heartbeat import FAILED_TTL_S, HEARTBEAT_TTL_S, KEY_PREFIX, read_heartbeats
from app.workers.main import on_shutdown, on_startup
from app.workers.processor import CallProcessor, ModelCheckFailed
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow


def healthcheck(redis_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli.main", "worker", "--healthcheck"],
        cwd=REPO_ROOT,
        env={**os.environ, "REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_a_started_worker_is_ready_until_it_stops(
    settings: Settings, processor: CallProcessor, resources: Resources, http: httpx.AsyncClient
) -> None:
    assert settings.redis_url is not None
    before = await http.get("/readyz", params={"require_worker": "true"})
    assert before.status_code == 503 and before.json()["workers"]["ready"] == 0
    assert healthcheck(settings.redis_url).returncode == 1

    ctx: dict[str, Any] = {"settings": settings, "redis": resources.redis, "processor": processor}
    await on_startup(ctx)
    try:
        ready = await http.get("/readyz", params={"require_worker": "true"})
        assert ready.status_code == 200, ready.json()
        workers = ready.json()["workers"]
        assert workers["ready"] == 1 and workers["failing"] == 0
        assert workers["workers"][0]["device"] == "cpu"
        (heartbeat,) = await read_heartbeats(resources.redis)
        assert heartbeat.ready and heartbeat.pid == os.getpid()
        assert {model["role"] for model in heartbeat.check["models"]} >= {"vad", "speech-to-text"}
        assert 0 < await resources.redis.ttl(heartbeat.key) <= HEARTBEAT_TTL_S
        # The analysis models load after the worker said ready; then the heartbeat lists
        # them too.
        await ctx["analysis_watch"]
        (heartbeat,) = await read_heartbeats(resources.redis)
        assert heartbeat.ready
        assert {model["role"] for model in heartbeat.check["models"]} >= {
            "vad",
            "speech-to-text",
            "language-id",
        }
        alive = healthcheck(settings.redis_url)
        assert alive.returncode == 0, alive.stderr
    finally:
        await on_shutdown(ctx)
    assert [key async for key in resources.redis.scan_iter(match=KEY_PREFIX + "*")] == []
    after = await http.get("/readyz", params={"require_worker": "true"})
    assert after.status_code == 503
    assert (await http.get("/readyz")).status_code == 200, "the API itself is still ready"


async def test_a_worker_whose_models_fail_reports_failing(
    settings: Settings,
    resources: Resources,
    http: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    monkeypatch.setenv("STT_MODEL", "large-v3")
    monkeypatch.setenv("MODELS_DIR", str(tmp_path))
    monkeypatch.setenv("INTENT_EMBEDDINGS", "false")
    monkeypatch.setenv("PERSON_NAMES", "false")
    ctx: dict[str, Any] = {"settings": settings, "redis": resources.redis}
    with pytest.raises(ModelCheckFailed) as failed:
        await on_startup(ctx)
    assert "ovozly models fetch" in str(failed.value)
    try:
        readiness = await http.get("/readyz", params={"require_worker": "true"})
        assert readiness.status_code == 503
        workers = readiness.json()["workers"]
        assert workers["ready"] == 0 and workers["failing"] == 1
        assert "speech-to-text" in workers["workers"][0]["error"]
        (record,) = await read_heartbeats(resources.redis)
        assert HEARTBEAT_TTL_S < await resources.redis.ttl(record.key) <= FAILED_TTL_S
        assert settings.redis_url is not None
        unhealthy = healthcheck(settings.redis_url)
        assert unhealthy.returncode == 1 and "model check failed" in unhealthy.stderr
    finally:
        # The failed record outlives this test by design (FAILED_TTL_S); other tests'
        # readiness must not see it.
        leftover = [key async for key in resources.redis.scan_iter(KEY_PREFIX + "*")]
        if leftover:
            await resources.redis.delete(*leftover)


async def test_a_worker_whose_analysis_models_fail_after_ready_reports_failing_and_stops(
    settings: Settings,
    processor: CallProcessor,
    resources: Resources,
    http: httpx.AsyncClient,
    tmp_path: Any,
) -> None:
    """The analysis models load once the worker is ready; if their check fails, the
    heartbeat turns to failing and the worker asks to stop."""
    from app.ml.analysis.settings import AnalysisSettings
    from app.ml.models.selfcheck import run_self_check
    from app.ml.settings import PipelineSettings
    from app.workers.main import REQUEST_STOP
    from app.workers.processor import AnalysisModels

    # A real failing check report (a model that is not on this machine) stands for the
    # analysis check's.
    report = run_self_check(
        PipelineSettings(_env_file=None, stt_model="large-v3", models_dir=tmp_path)
    )
    assert not report.ok
    analysis = AnalysisModels(processor.pipeline.settings, AnalysisSettings(_env_file=None))
    analysis._started = True  # nothing loads: the outcome is given below
    analysis.future.set_running_or_notify_cancel()
    analysis.future.set_exception(ModelCheckFailed(report))
    failing = CallProcessor(
        pipeline=processor.pipeline,
        analysis=analysis,
        analysis_backend=processor.analysis_backend,
        check=processor.check,
    )
    stops: list[bool] = []
    ctx: dict[str, Any] = {
        "settings": settings,
        "redis": resources.redis,
        "processor": failing,
        REQUEST_STOP: lambda: stops.append(True),
    }
    await on_startup(ctx)
    try:
        await ctx["analysis_watch"]
        assert stops == [True]
        readiness = await http.get("/readyz", params={"require_worker": "true"})
        assert readiness.status_code == 503
        workers = readiness.json()["workers"]
        assert workers["ready"] == 0 and workers["failing"] == 1
        assert "speech-to-text" in workers["workers"][0]["error"]
        with pytest.raises(ModelCheckFailed):
            _ = failing.analyzer
    finally:
        await on_shutdown(ctx)
        leftover = [key async for key in resources.redis.scan_iter(KEY_PREFIX + "*")]
        if leftover:
            await resources.redis.delete(*leftover)
