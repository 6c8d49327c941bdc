"""The `autopack` command: serve (web + worker), web, worker, migrate."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from app.agents.sandbox import mark_non_dumpable
from app.config import ConfigError, Settings, load_settings
from app.engine.service import running_engine
from app.logs import configure_logging
from app.store import migrate
from app.store.db import create_engine
from app.web.app import create_app
from app.web.metrics import worker_metrics

log = logging.getLogger("autopack")


class StartupError(Exception):
    """A reason not to start, said in one line."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    parser = argparse.ArgumentParser(prog="autopack", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="web server and worker in one process (default)")
    commands.add_parser("web", help="web server only (webhooks, API, dashboard)")
    commands.add_parser("worker", help="worker only (processes the inbox and runs)")
    commands.add_parser("migrate", help="bring the database schema up to date")
    args = parser.parse_args(argv)
    command = args.command or "serve"
    try:
        settings = load_settings()
        configure_logging(settings.log_format)
        if command == "migrate":
            revision = asyncio.run(_migrate(settings))
            print(f"autopack: database schema is up to date (revision {revision})")
            return 0
        asyncio.run(_check_schema(settings))
        # A second layer under the sandbox: builders of the same user cannot read this
        # process's memory or /proc/<pid>/environ, and it never dumps core.
        if command != "web" and not mark_non_dumpable():
            log.warning("could not mark the worker non-dumpable (prctl failed)")
        if command == "worker":
            asyncio.run(_run_worker(settings))
        else:
            web.run_app(
                create_app(settings, with_worker=command == "serve"),
                port=settings.port,
                print=None,
                access_log=None,
            )
    except ConfigError as exc:
        print(f"autopack: configuration error: {exc}", file=sys.stderr)
        return 2
    except StartupError as exc:
        print(f"autopack: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def _describe(settings: Settings, exc: BaseException) -> str:
    original = getattr(exc, "orig", None) or exc
    first_line = (str(original).strip().splitlines() or [""])[0]
    kind = "SQLite" if settings.is_sqlite else "PostgreSQL"
    return (
        f"cannot use the {kind} database at DATABASE_URL: {type(original).__name__}: {first_line}"
    )


async def _migrate(settings: Settings) -> str:
    engine = create_engine(settings.database_url)
    try:
        return (await migrate.upgrade(engine)).head
    except (SQLAlchemyError, OSError) as exc:
        raise StartupError(_describe(settings, exc)) from None
    finally:
        await engine.dispose()


async def _check_schema(settings: Settings) -> None:
    """Refuse to start on an out-of-date schema; the embedded SQLite default migrates itself."""
    engine = create_engine(settings.database_url)
    try:
        status = await migrate.schema_status(engine)
        if status.up_to_date:
            return
        if settings.is_sqlite:
            log.info("migrating the SQLite database from %s to %s", status.current, status.head)
            await migrate.upgrade(engine)
            return
        raise StartupError(
            f"the database schema is at revision {status.current or 'none'}, this version needs "
            f"{status.head}: run `autopack migrate` first"
        )
    except (SQLAlchemyError, OSError) as exc:
        raise StartupError(_describe(settings, exc)) from None
    finally:
        await engine.dispose()


async def _run_worker(settings: Settings) -> None:
    engine = create_engine(settings.database_url)
    log.info("worker started")
    try:
        async with (
            running_engine(settings, engine, asyncio.Event()),
            worker_metrics(settings, engine),
        ):
            await asyncio.Event().wait()
    finally:
        await engine.dispose()
