"""The `autopack` command: serve (web + worker), web, worker, migrate, setup, receive."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from app import installed_version, receive, setup_command
from app.agents.sandbox import mark_non_dumpable
from app.config import ConfigError, Settings, load_settings
from app.engine.service import running_engine
from app.listen import PortUnavailable, bind
from app.logs import configure_logging
from app.setup_manifest import SetupError, find_manifest, load_manifest
from app.store import migrate
from app.store.db import create_engine
from app.web.app import create_app
from app.web.metrics import worker_metrics
from app.web.setup import SetupFlow

log = logging.getLogger("autopack")


class StartupError(Exception):
    """A reason not to start, said in one line."""


def build_parser() -> argparse.ArgumentParser:
    """The command line: subcommands and their options."""
    parser = argparse.ArgumentParser(prog="autopack", description=__doc__)
    parser.add_argument("--version", action="version", version=f"autopack {installed_version()}")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="web server and worker in one process (default)")
    commands.add_parser("web", help="web server only (webhooks, API, dashboard)")
    commands.add_parser("worker", help="worker only (processes the inbox and runs)")
    commands.add_parser("migrate", help="bring the database schema up to date")
    setup_command.add_arguments(
        commands.add_parser("setup", help="register the GitHub App from app.yml, write .env")
    )
    replay = commands.add_parser("receive", help="sign and post a saved webhook payload")
    replay.add_argument("event", help="the webhook event, e.g. issues")
    replay.add_argument("payload", type=Path, help="a JSON file holding the payload")
    replay.add_argument("--url", help="the webhook endpoint (default: this server's)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    command = args.command or "serve"
    try:
        settings = load_settings()
        configure_logging(settings.log_format)
        if command == "setup":
            return setup_command.run(args, settings, os.environ)
        if command == "receive":
            return asyncio.run(receive.receive(settings, args.event, args.payload, args.url))
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
            asyncio.run(_serve(settings, with_worker=command == "serve"))
    except (ConfigError, PortUnavailable) as exc:
        kind = "configuration error: " if isinstance(exc, ConfigError) else ""
        print(f"autopack: {kind}{exc}", file=sys.stderr)
        return 2
    except receive.ReceiveError as exc:
        print(f"autopack: {exc}", file=sys.stderr)
        return exc.status
    except (StartupError, SetupError) as exc:
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


async def _serve(settings: Settings, *, with_worker: bool) -> None:
    """Bind the port first (a busy one stops us before anything starts), then run until a signal."""
    sock = bind(settings.port, "PORT")
    setup = _registration(settings)
    runner = web.AppRunner(
        create_app(settings, with_worker=with_worker, setup=setup), access_log=None
    )
    await runner.setup()
    try:
        await web.SockSite(runner, sock).start()
        url = f"http://localhost:{settings.port}"
        print(f"autopack: listening on {url} (webhooks at {url}/api/github/webhooks)", flush=True)
        for step in next_steps(settings, url if setup is not None else None):
            print(f"autopack: next: {step}", flush=True)
        await _until_stopped()
    finally:
        await runner.cleanup()


def _registration(settings: Settings) -> SetupFlow | None:
    """While the App is unregistered, the start page registers it (when app.yml is at hand)."""
    if settings.app_id is not None:
        return None
    try:
        manifest = load_manifest(find_manifest())
    except SetupError as exc:
        log.warning("the start page cannot offer registration: %s", exc)
        return None
    return SetupFlow(manifest, settings.github_api_url, Path(".env"), os.environ)


def next_steps(settings: Settings, setup_url: str | None, *, web: bool = True) -> list[str]:
    """What is missing before Autopack can work, each as what to do about it."""
    steps = []
    if settings.app_id is None:
        where = f"open {setup_url}/ in a browser, or run" if setup_url else "run"
        steps.append(f"register the GitHub App: {where} `autopack setup` (or set APP_ID)")
    elif settings.private_key is None:
        steps.append("set PRIVATE_KEY or PRIVATE_KEY_PATH to the App's private key")
    if web and settings.app_id is not None and settings.webhook_secret is None:
        steps.append("set WEBHOOK_SECRET to the App's webhook secret: until then deliveries fail")
    if web and settings.api_token is None:
        steps.append("set AUTOPACK_API_TOKEN to sign in to the dashboard and the API")
    if not settings.operator.builders:
        steps.append("define a builder profile in the AUTOPACK_CONFIG file (docs/builders.md)")
    return steps


async def _until_stopped() -> None:
    """Wait for SIGINT or SIGTERM (a container's stop) and return, so shutdown is graceful."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _run_worker(settings: Settings) -> None:
    engine = create_engine(settings.database_url)
    try:
        # The metrics port first: a busy one stops the worker before it takes any work.
        async with (
            worker_metrics(settings, engine),
            running_engine(settings, engine, asyncio.Event()),
        ):
            where = f" (metrics and health on port {settings.metrics_port})"
            print(f"autopack: worker running{where if settings.metrics_port else ''}", flush=True)
            for step in next_steps(settings, None, web=False):
                print(f"autopack: next: {step}", flush=True)
            await _until_stopped()
    finally:
        await engine.dispose()
