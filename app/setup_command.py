"""`autopack setup`: serve the registration pages until the App is registered, then say what next.

Before anything is registered it asks (on a terminal) whether keys `.env` already has may be
replaced; without a terminal, or under CI=true, it refuses instead, since a new App registered
with nowhere to put its key would be lost.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from aiohttp import web

from app.config import Settings
from app.listen import bind
from app.setup_env import existing_keys
from app.setup_manifest import SetupError, find_manifest, load_manifest, web_url
from app.web.setup import Registered, SetupFlow, standalone

Ask = Callable[[str], str]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `setup` subcommand's options."""
    parser.add_argument(
        "--url", help="this server's address as GitHub sees it (default: localhost)"
    )
    parser.add_argument("--webhook-url", help="where GitHub delivers webhooks, if elsewhere")
    parser.add_argument("--org", help="register the App for this organisation")
    parser.add_argument("--name", help="the App's name (default: app.yml's)")
    parser.add_argument("--port", type=int, help="port for the registration page (default: PORT)")
    parser.add_argument("--env-file", type=Path, default=Path(".env"), help="default: .env")
    parser.add_argument("--key-file", type=Path, help="write the key here, not into .env")
    parser.add_argument("--manifest", type=Path, help="the App manifest (default: app.yml)")


def interactive(environ: Mapping[str, str]) -> bool:
    """Whether there is a person to ask: a terminal on stdin and not CI."""
    return sys.stdin is not None and sys.stdin.isatty() and environ.get("CI") != "true"


async def run_setup(
    args: argparse.Namespace,
    settings: Settings,
    environ: Mapping[str, str],
    ask: Ask | None,
) -> int:
    """Register the App; `ask` is None when nobody can be asked. Returns the exit status."""
    manifest = load_manifest(find_manifest(args.manifest))
    port = args.port or settings.port
    flow = SetupFlow(
        manifest=manifest,
        api_url=settings.github_api_url,
        env_file=args.env_file,
        environ=environ,
        key_file=args.key_file,
        public_url=args.url or f"http://localhost:{port}",
        webhook_url=args.webhook_url,
        name=args.name,
    )
    blocking = existing_keys(flow.env_file, flow.key_file)
    if blocking:
        listed = ", ".join(blocking)
        if ask is None:
            raise SetupError(
                f"{flow.env_file} already sets {listed}, and there is no terminal to ask whether "
                "to replace them (CI or no stdin): remove them, or pass another --env-file"
            )
        answer = ask(
            f"{flow.env_file} already sets {listed}. Replace them with the new App's? [y/N] "
        )
        if answer.strip().lower() not in ("y", "yes"):
            print("autopack: nothing registered; the existing settings are untouched")
            return 1
        flow.replace = True
    runner = web.AppRunner(standalone(flow), access_log=None)
    sock = bind(port, "--port/PORT")
    await runner.setup()
    try:
        await web.SockSite(runner, sock).start()
        start = f"{flow.public_url}/setup" + (f"?org={args.org}" if args.org else "")
        print(
            f'autopack: open {start} in a browser and choose "Register on GitHub" '
            f"(GitHub at {web_url(settings.github_api_url)}); waiting, Ctrl-C gives up",
            flush=True,
        )
        await flow.done.wait()
    finally:
        await runner.cleanup()
    assert flow.result is not None
    _report(flow.result)
    return 0


def _report(result: Registered) -> None:
    app = result.app
    print(f"autopack: registered the GitHub App {app.name!r} (id {app.id}) for {app.owner}")
    print(f"autopack: wrote {', '.join(result.written)} to {result.env_file} (mode 0600)")
    for key in result.overridden:
        print(f"autopack: warning: {key} is also set in the environment, which wins over .env")
    print(f"autopack: next: install the App on your repositories: {result.install_url}")
    print("autopack: next: start Autopack: `autopack serve` (or `make run`)")


def ask_on_terminal(question: str) -> str:
    """Ask on the terminal; end of input counts as no."""
    try:
        return input(question)
    except EOFError:
        return ""


def run(args: argparse.Namespace, settings: Settings, environ: Mapping[str, str]) -> int:
    """`autopack setup` from the command line."""
    ask = ask_on_terminal if interactive(environ) else None
    return asyncio.run(run_setup(args, settings, environ, ask))
