"""Helpers of the worker tests: a burst-mode arq worker against the real Redis."""

from __future__ import annotations

from app.core.config import Settings
from app.workers.main import create_worker
from app.workers.processor import CallProcessor


async def run_worker_burst(settings: Settings, processor: CallProcessor) -> None:
    worker = create_worker(settings, burst=True, processor=processor)
    try:
        await worker.main()
    finally:
        await worker.close()
