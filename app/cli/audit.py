"""`ovozly audit export | sweep`: the audit trail for auditors, and its retention.

    ovozly audit export --since 2026-12-01 > audit.jsonl   # one JSON object per line, oldest first
    ovozly audit sweep                                     # delete events past AUDIT_RETENTION_DAYS

Settings come from the environment (and `.env`), as the API reads them.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from typing import Any

import orjson


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("audit", help="export the audit trail, or apply its retention")
    actions = parser.add_subparsers(dest="audit_command", required=True)
    export = actions.add_parser("export", help="write events as JSON lines to standard output")
    export.add_argument(
        "--since",
        type=_moment,
        help="ISO 8601 date or time (UTC unless it says otherwise); default: every event",
    )
    export.set_defaults(handler=cmd_audit_export)
    sweep = actions.add_parser("sweep", help="delete the events older than AUDIT_RETENTION_DAYS")
    sweep.set_defaults(handler=cmd_audit_sweep)


def _moment(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date or time: {value!r}") from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def _export(database_url: str, since: datetime | None) -> int:
    from app.db.engine import create_engine, create_session_factory
    from app.services.audit import event_record, export_events

    engine = create_engine(database_url, pool_size=1)
    count = 0
    out = sys.stdout.buffer
    try:
        async with create_session_factory(engine)() as session:
            async for event in export_events(session, since):
                out.write(orjson.dumps(event_record(event)) + b"\n")
                count += 1
    finally:
        await engine.dispose()
    out.flush()
    return count


def cmd_audit_export(args: argparse.Namespace) -> int:
    from app.cli.main import resolved_services
    from app.core.config import Settings

    with resolved_services(Settings()) as resolved:
        assert resolved.database_url is not None
        count = asyncio.run(_export(resolved.database_url, args.since))
    print(f"exported {count} audit event(s)", file=sys.stderr)
    return 0


def cmd_audit_sweep(args: argparse.Namespace) -> int:
    from app.cli.main import in_transaction, resolved_services
    from app.core.config import Settings
    from app.services.audit import sweep

    settings = Settings()
    with resolved_services(settings) as resolved:
        assert resolved.database_url is not None
        retention = settings.audit_retention_days
        deleted = in_transaction(resolved.database_url, lambda session: sweep(session, retention))
    kept = "kept for ever" if retention is None else f"kept {retention} day(s)"
    print(f"deleted {deleted} audit event(s); events are {kept}", file=sys.stderr)
    return 0
