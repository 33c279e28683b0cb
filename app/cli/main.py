"""`ovozly` command line: dev (what `make run` runs), api, worker, migrate, users, and the
offline pipeline commands `process` and `analyze`."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import secrets
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

from app.auth import passwords
from app.core.config import Environment, Settings, persistent_jwt_key
from app.core.logs import configure_logging
from app.db.models import Role
from app.dev.embedded import EmbeddedServices

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from app.core.errors import OvozlyError
    from app.dev.supervisor import DevSession

logger = logging.getLogger("ovozly")
T = TypeVar("T")

Handler = Callable[[argparse.Namespace], int]


@contextmanager
def resolved_services(settings: Settings) -> Iterator[Settings]:
    """Settings with DATABASE_URL and REDIS_URL filled, starting embedded servers for the
    ones not configured; they stop when the block exits."""
    services = EmbeddedServices(settings.data_dir.resolve())
    database_url, redis_url = services.start(settings.database_url, settings.redis_url)
    try:
        yield settings.model_copy(update={"database_url": database_url, "redis_url": redis_url})
    finally:
        services.stop()


def with_dev_secret(settings: Settings) -> Settings:
    if settings.jwt_key is not None or settings.environment is not Environment.DEVELOPMENT:
        return settings
    return settings.model_copy(update={"jwt_key": persistent_jwt_key(settings.data_dir)})


# --- dev -------------------------------------------------------------------------------


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    # One stop is enough: a second Ctrl-C must not interrupt the orderly shutdown.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    raise _Stop()


def _child_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": settings.database_url or "",
            "REDIS_URL": settings.redis_url or "",
            "JWT_KEY": settings.jwt_key or "",
            "OVOZLY_DATA_DIR": str(settings.data_dir.resolve()),
            "PORT": str(settings.port),
            "HOST": settings.host,
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def in_transaction(database_url: str, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Runs `work` in one committed transaction on a short-lived engine (CLI commands)."""
    from app.db.engine import create_engine, create_session_factory

    async def run() -> T:
        engine = create_engine(database_url, pool_size=1)
        try:
            async with create_session_factory(engine)() as session, session.begin():
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def bootstrap_admin(settings: Settings) -> tuple[str, str | None]:
    """Creates the first admin when missing; returns its username and the password to
    print (None when the admin already existed or the password came from settings)."""
    from app.services.users import ensure_admin

    passwords.configure_from(settings)
    generated = settings.admin_password is None
    password = settings.admin_password or secrets.token_urlsafe(12)

    async def create(session: AsyncSession) -> bool:
        admin = await ensure_admin(
            session,
            settings.admin_username,
            password,
            password_min_length=settings.password_min_length,
        )
        return admin is not None

    assert settings.database_url is not None
    created = in_transaction(settings.database_url, create)
    return settings.admin_username, password if created and generated else None


def cmd_dev(args: argparse.Namespace) -> int:
    from app.dev.supervisor import DevAlreadyRunning, DevSession

    settings = with_dev_secret(Settings())
    data_dir = settings.data_dir.resolve()
    previous_handlers = {
        sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        with DevSession(data_dir) as session:
            services = EmbeddedServices(data_dir)
            try:
                database_url, redis_url = services.start(settings.database_url, settings.redis_url)
                session.arm_guard()
                resolved = settings.model_copy(
                    update={"database_url": database_url, "redis_url": redis_url}
                )
                return _run_children(resolved, session, services)
            finally:
                # Children stop before the embedded servers they are connected to.
                session.stop_children()
                session.disarm_guard()
                services.stop()
    except DevAlreadyRunning as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except _Stop:
        return 0
    finally:
        for sig, handler in previous_handlers.items():
            signal.signal(sig, handler)


def _run_children(settings: Settings, session: DevSession, services: EmbeddedServices) -> int:
    """Migrates, creates the first admin, starts API and worker, and supervises them until
    Ctrl-C or SIGTERM (see app/dev/supervisor.py)."""
    from app.db.migrations import upgrade_head
    from app.dev.supervisor import liveness_url

    assert settings.database_url is not None
    try:
        upgrade_head(settings.database_url)
        username, password = bootstrap_admin(settings)
        session.start_children(
            {
                command: [sys.executable, "-m", "app.cli.main", command]
                for command in ("api", "worker")
            },
            _child_env(settings),
            liveness_urls={"api": liveness_url(settings.host, settings.port)},
        )
        _announce(settings, username, password)
        session.supervise(services)
    except _Stop:
        logger.info("stopping Ovozly")
    return 0


def _redacted(url: str | None) -> str:
    """The URL without its password, for printing."""
    from sqlalchemy.engine import make_url

    if url is None:
        return "-"
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


def _announce(settings: Settings, username: str, password: str | None) -> None:
    url = f"http://{settings.host}:{settings.port}/graphql"
    lines = [
        "",
        "Ovozly is running.",
        f"  GraphiQL:  {url}",
        f"  Database:  {_redacted(settings.database_url)}",
        f"  Redis:     {_redacted(settings.redis_url)}",
        f"  Data:      {settings.data_dir.resolve()}",
        f"  Admin:     {username}",
    ]
    if password is not None:
        lines.append(f"  Password:  {password}   (shown once; keep it)")
    else:
        lines.append(
            f"  Password:  the one set at first start (reset: ovozly set-password {username})"
        )
    lines += [
        "  Worker:    loading its models; uploads wait in the queue until it logs 'worker ready'",
        "  Stop:      Ctrl-C",
        "",
    ]
    print("\n".join(lines), flush=True)


# --- api / worker / migrate ------------------------------------------------------------


def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    from app.api.main import create_app, tune_garbage_collection

    settings = with_dev_secret(Settings())
    with resolved_services(settings) as resolved:
        app = create_app(resolved)
        tune_garbage_collection()
        uvicorn.run(
            app,
            host=resolved.host,
            port=resolved.port,
            # Our logging configuration (app.core.logs) applies to uvicorn's loggers too.
            log_config=None,
            log_level="debug" if resolved.debug else None,
            # Forwarded headers are read by the app itself, from FORWARDED_ALLOW_IPS only.
            proxy_headers=False,
            ws="websockets-sansio",
            timeout_graceful_shutdown=5,
        )
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from app.cli.worker import print_report, record_failed_check, run_check, run_healthcheck
    from app.workers.main import run_worker
    from app.workers.processor import CallProcessor, ModelCheckFailed

    if args.check:
        return run_check(args)
    if args.healthcheck:
        return run_healthcheck(Settings().redis_url)
    settings = with_dev_secret(Settings())
    # Models load and are checked before the worker connects anywhere: a bad LANGUAGES or
    # STT_MODELS, a missing model or one that does not load or run stops it here, saying why.
    logger.info("worker: loading and checking the models")
    try:
        processor = CallProcessor.load()
    except ValidationError as error:
        problems = "; ".join(
            str(item["msg"]).removeprefix("Value error, ") for item in error.errors()
        )
        print(f"ovozly worker: refusing to start: {problems}", file=sys.stderr)
        return 2
    except ModelCheckFailed as failed:
        print_report(failed.report, sys.stderr)
        record_failed_check(settings.redis_url, failed.report)
        print(
            "ovozly worker: refusing to start: " + "; ".join(failed.report.failures),
            file=sys.stderr,
        )
        return 2
    with resolved_services(settings) as resolved:
        run_worker(resolved, burst=args.burst, processor=processor)
    if processor.analysis.loading:
        # Stopped while the analysis models still load in their thread: the interpreter's
        # exit would wait for that thread's imports (tens of seconds); nothing is left to
        # save, so leave now.
        logger.info("worker stopped while its analysis models were loading")
        logging.shutdown()
        os._exit(0)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from app.db.migrations import downgrade_base, upgrade_head

    with resolved_services(Settings()) as resolved:
        assert resolved.database_url is not None
        if args.downgrade_base:
            downgrade_base(resolved.database_url)
        else:
            upgrade_head(resolved.database_url)
    print("database schema is up to date" if not args.downgrade_base else "schema dropped")
    return 0


def _read_password(args: argparse.Namespace) -> str:
    password: str | None = args.password or os.environ.get("OVOZLY_NEW_PASSWORD")
    if password is None:
        password = getpass.getpass("Password: ")
    return password


def _account_change(
    settings: Settings,
    work: Callable[[AsyncSession], Awaitable[T]],
    refused: type[OvozlyError],
) -> T | None:
    """`work` in one transaction on the configured (or embedded) database; None once a
    `refused` error's message is printed."""
    with resolved_services(settings) as resolved:
        assert resolved.database_url is not None
        try:
            return in_transaction(resolved.database_url, work)
        except refused as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return None


def cmd_create_user(args: argparse.Namespace) -> int:
    from app.core.errors import ClientError
    from app.services.users import NewUser, create_user

    settings = Settings()
    passwords.configure_from(settings)
    new_user = NewUser(args.username, _read_password(args), args.full_name, Role(args.role))

    async def create(session: AsyncSession) -> str:
        user = await create_user(
            session, new_user, password_min_length=settings.password_min_length
        )
        return user.username

    username = _account_change(settings, create, ClientError)
    if username is None:
        return 2
    print(f"created {args.role.lower()} '{username}'")
    return 0


def cmd_set_password(args: argparse.Namespace) -> int:
    from app.core.errors import OvozlyError
    from app.services.users import get_by_username, hash_new_password, replace_credentials

    settings = Settings()
    passwords.configure_from(settings)
    password = _read_password(args)

    async def update(session: AsyncSession) -> bool:
        user = await get_by_username(session, args.username)
        if user is None:
            return False
        new_hash = await hash_new_password(
            password, username=user.username, password_min_length=settings.password_min_length
        )
        # Earlier tokens stop working, as after a reset through the API.
        await replace_credentials(session, user.id, new_hash)
        return True

    updated = _account_change(settings, update, OvozlyError)
    if updated is None:
        return 2
    if not updated:
        print(f"error: no user '{args.username}'", file=sys.stderr)
        return 2
    print(f"password of '{args.username}' updated")
    return 0


# --- wiring ----------------------------------------------------------------------------


def _register_optional(subparsers: Any, module_name: str) -> None:
    """The ML commands live beside their code; each module exposes `register(subparsers)`."""
    import importlib

    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        return
    module.register(subparsers)


def build_parser() -> argparse.ArgumentParser:
    from app.cli.worker import add_worker_flags

    parser = argparse.ArgumentParser(prog="ovozly", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)

    subparsers.add_parser(
        "dev", help="embedded PostgreSQL + Redis, migrations, API and worker (make run)"
    ).set_defaults(handler=cmd_dev)
    subparsers.add_parser("api", help="serve the GraphQL API").set_defaults(handler=cmd_api)
    worker = subparsers.add_parser("worker", help="run an arq worker for the pipeline")
    worker.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    add_worker_flags(worker)
    worker.set_defaults(handler=cmd_worker)
    migrate = subparsers.add_parser("migrate", help="alembic upgrade head")
    migrate.add_argument("--downgrade-base", action="store_true", help="drop the whole schema")
    migrate.set_defaults(handler=cmd_migrate)

    create = subparsers.add_parser("create-user", help="create an agent or admin")
    create.add_argument("username")
    create.add_argument("--role", choices=[role.value for role in Role], default="AGENT")
    create.add_argument("--full-name")
    create.add_argument("--password", help="default: $OVOZLY_NEW_PASSWORD or a prompt")
    create.set_defaults(handler=cmd_create_user)

    set_password = subparsers.add_parser("set-password", help="reset a user's password")
    set_password.add_argument("username")
    set_password.add_argument("--password", help="default: $OVOZLY_NEW_PASSWORD or a prompt")
    set_password.set_defaults(handler=cmd_set_password)

    for module_name in (
        "app.cli.process",
        "app.ml.analysis.cli",
        "app.cli.models",
        "app.cli.audit",
    ):
        _register_optional(subparsers, module_name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(debug=os.environ.get("DEBUG", "").lower() in {"1", "true", "yes"})
    handler: Handler = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
