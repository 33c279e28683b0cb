"""A worker's start-up: the speech models it proves before saying ready, and the analysis
models that load after, rehearsed on a made-up call so the first real call finds them warm."""

from __future__ import annotations

import pytest

from app.core.enums import SpeakerRole
from app.ml.analysis import build_analyzer
from app.ml.analysis.local import LocalAnalyzer
from app.ml.analysis.settings import AnalysisSettings
from app.workers.processor import (
    REHEARSAL_TURNS,
    AnalysisModels,
    CallProcessor,
    rehearsal_transcript,
    rehearse,
)

pytestmark = pytest.mark.slow


def test_the_rehearsal_gives_every_analysis_step_work() -> None:
    insight = rehearse(build_analyzer(AnalysisSettings(_env_file=None)), 0.5)
    # The untranscribed turn is merged back after the analysis, as in a real job.
    assert len(insight.segments) == len(REHEARSAL_TURNS) + 1
    assert {segment.language for segment in insight.segments[:-1]} == {"en", "ru", "uz"}
    assert {segment.role for segment in insight.segments} == {
        SpeakerRole.AGENT,
        SpeakerRole.CUSTOMER,
    }
    analysis = insight.analysis
    # An intent found by embeddings too (the customer's English turn has enough words).
    assert "cancel_service" in {intent.name for intent in analysis.intents}
    assert {"PERSON", "PHONE"} <= {entity.type for entity in analysis.entities}


def test_the_analysis_models_are_rehearsed_before_they_are_handed_out(
    processor: CallProcessor,
) -> None:
    """A job's analysis stage gets the analyzer only from the future, which is set once the
    rehearsal ran: what the analyzer builds on first use is built by then."""
    analysis = AnalysisModels(processor.pipeline.settings, AnalysisSettings(_env_file=None))
    analysis.start()
    analyzer, report = analysis.future.result(timeout=600)
    assert report.ok, report.table()
    assert isinstance(analyzer, LocalAnalyzer)
    # The intent examples' embeddings: encoded on the matcher's first use.
    assert analyzer.matcher._examples is not None


def test_a_hosted_analyzer_is_not_sent_the_made_up_call(processor: CallProcessor) -> None:
    """Sent, it would fail the load (no network here, and no real key): the load ends."""
    settings = AnalysisSettings(_env_file=None, analysis_backend="openai", openai_api_key="sk-x")
    analysis = AnalysisModels(processor.pipeline.settings, settings)
    analysis.start()
    analyzer, report = analysis.future.result(timeout=600)
    assert report.ok and type(analyzer).__name__ == "OpenAIAnalyzer"


def test_the_made_up_call_is_a_call_the_pipeline_could_have_produced() -> None:
    transcript = rehearsal_transcript()
    times = [(segment.start_s, segment.end_s) for segment in transcript.segments]
    assert times == sorted(times) and all(start < end for start, end in times)
    assert times[-1][1] <= transcript.duration_s


async def test_a_worker_process_says_ready_once_for_both_of_its_loops(
    processor: CallProcessor,
    settings: object,
    resources: object,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The short-call and the long-call loops of one process share its heartbeat and its
    "ready" line (the operator reads one line per worker process)."""
    import asyncio
    import logging

    from app.core.config import Settings
    from app.workers.main import create_workers

    assert isinstance(settings, Settings)
    workers = create_workers(settings, burst=True, processor=processor)
    caplog.set_level(logging.INFO, logger="app.workers.main")
    try:
        await asyncio.gather(*(worker.main() for worker in workers))
    finally:
        for worker in workers:
            await worker.close()
    ready = [r for r in caplog.records if r.getMessage().startswith("worker ready")]
    assert len(ready) == 1, [r.getMessage() for r in ready]
    assert workers[0].ctx["heartbeat"] is workers[1].ctx["heartbeat"]
