"""Webhook intake benchmark: Autopack's endpoint against a bare HMAC-only aiohttp handler.

Each server runs in its own process on loopback; this process signs and sends deliveries.
Two measurements per server: saturation (N deliveries, C in flight: deliveries/s, p50/p99) and a
paced run at a fixed rate (p50/p99 at that rate). Ratios against the bare handler in the same run
make the figures comparable on a noisy machine.

    .venv/bin/python bench/webhook_intake.py [--count 2000] [--concurrency 16] [--rate 200]
        [--command web|serve] [--postgres postgresql+asyncpg://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-webhook-secret-0123456789"


def _run_label_payload() -> bytes:
    """GitHub's example `issues.labeled`, labelled `autopack:run`: a delivery that is stored
    (the endpoint answers other labels without storing them, which would flatter the figures)."""
    data = json.loads((ROOT / "tests" / "payloads" / "issues.labeled.json").read_text())
    data["label"]["name"] = "autopack:run"
    return json.dumps(data, indent=2).encode()


PAYLOAD = _run_label_payload()


def bare_app() -> web.Application:
    """The ceiling: verify the signature, answer 202, store nothing."""
    key = SECRET.encode()

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        expected = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
        given = request.headers.get("X-Hub-Signature-256", "")
        if not hmac.compare_digest(expected.encode(), given.encode()):
            return web.Response(status=401)
        return web.json_response({"outcome": "queued"}, status=202)

    app = web.Application()
    app.router.add_post("/api/github/webhooks", receive)
    return app


@dataclass(frozen=True)
class Result:
    deliveries_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _signed(body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": "issues",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": "sha256="
        + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest(),
    }


async def _one(session: aiohttp.ClientSession, url: str, latencies: list[float]) -> bool:
    started = time.perf_counter()
    async with session.post(url, data=PAYLOAD, headers=_signed(PAYLOAD)) as response:
        await response.read()
        latencies.append((time.perf_counter() - started) * 1000)
        return response.status == 202


def _summary(latencies: list[float], elapsed: float, errors: int) -> Result:
    cuts = statistics.quantiles(latencies, n=100)
    return Result(len(latencies) / elapsed, cuts[49], cuts[98], errors)


async def saturate(url: str, count: int, concurrency: int) -> Result:
    """Send `count` deliveries with `concurrency` in flight."""
    latencies: list[float] = []
    errors = 0
    queue = iter(range(count))
    async with aiohttp.ClientSession() as session:

        async def worker() -> None:
            nonlocal errors
            for _ in queue:
                errors += not await _one(session, url, latencies)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return _summary(latencies, time.perf_counter() - started, errors)


async def paced(url: str, rate: float, seconds: float) -> Result:
    """Send deliveries at a fixed rate (open loop) for `seconds`."""
    latencies: list[float] = []
    outcomes: list[asyncio.Task[bool]] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        started = time.perf_counter()
        for index in range(int(rate * seconds)):
            delay = started + index / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            outcomes.append(asyncio.create_task(_one(session, url, latencies)))
        results = await asyncio.gather(*outcomes)
        return _summary(latencies, time.perf_counter() - started, results.count(False))


async def _wait_up(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            try:
                async with session.get(url.replace("/api/github/webhooks", "/health")) as response:
                    if response.status in (200, 404, 405):
                        return
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
    raise RuntimeError(f"server at {url} did not start")


def _start(
    kind: str, database_url: str | None, workdir: Path, command: str
) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    if kind == "bare":
        argv = [sys.executable, __file__, "--serve-bare", str(port)]
        env = dict(os.environ)
    else:
        autopack = str(Path(sys.executable).with_name("autopack"))
        env = dict(
            os.environ, WEBHOOK_SECRET=SECRET, PORT=str(port), DATABASE_URL=database_url or ""
        )
        env["AUTOPACK_LOG_FORMAT"] = "json"
        subprocess.run([autopack, "migrate"], env=env, cwd=workdir, check=True, capture_output=True)
        argv = [autopack, command]
    process = subprocess.Popen(argv, env=env, cwd=workdir, stderr=subprocess.DEVNULL)
    return process, f"http://127.0.0.1:{port}/api/github/webhooks"


async def measure(
    kind: str, database_url: str | None, args: argparse.Namespace
) -> tuple[Result, Result]:
    with tempfile.TemporaryDirectory() as workdir:
        process, url = _start(kind, database_url, Path(workdir), args.command)
        try:
            await _wait_up(url)
            await saturate(url, 100, args.concurrency)  # warm-up
            burst = await saturate(url, args.count, args.concurrency)
            steady = await paced(url, args.rate, args.seconds)
            return burst, steady
        finally:
            process.terminate()
            process.wait(timeout=30)


async def _reset_postgres(url: str) -> None:
    sys.path.insert(0, str(ROOT))
    from tests.conftest import reset_postgres

    await reset_postgres(url)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--command",
        choices=["web", "serve"],
        default="web",
        help="`web`: intake alone; `serve`: with the worker draining the inbox in-process",
    )
    parser.add_argument("--postgres", default=os.environ.get("AUTOPACK_TEST_DATABASE_URL"))
    args = parser.parse_args()
    sqlite_dir = tempfile.mkdtemp()
    targets: list[tuple[str, str, str | None]] = [
        ("bare aiohttp + HMAC (ceiling)", "bare", None),
        ("Autopack, SQLite", "autopack", f"sqlite+aiosqlite:///{sqlite_dir}/bench.db"),
    ]
    if args.postgres:
        await _reset_postgres(args.postgres)
        targets.append(("Autopack, PostgreSQL", "autopack", args.postgres))
    rows = []
    ceiling = None
    for label, kind, database_url in targets:
        burst, steady = await measure(kind, database_url, args)
        ceiling = ceiling or burst.deliveries_per_s
        rows.append((label, burst, steady, burst.deliveries_per_s / ceiling))
    print(
        f"{args.count} deliveries, {args.concurrency} in flight; "
        f"then {args.rate:.0f}/s for {args.seconds:.0f} s; `autopack {args.command}`\n"
    )
    print(
        "| server | deliveries/s | vs ceiling | p50 ms | p99 ms "
        "| p50 ms @ rate | p99 ms @ rate | errors |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, burst, steady, ratio in rows:
        print(
            f"| {label} | {burst.deliveries_per_s:.0f} | {ratio:.0%} | {burst.p50_ms:.1f} | "
            f"{burst.p99_ms:.1f} | {steady.p50_ms:.1f} | {steady.p99_ms:.1f} | "
            f"{burst.errors + steady.errors} |"
        )
    print(json.dumps({"machine_cpus": os.cpu_count()}))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve-bare":
        web.run_app(
            bare_app(), host="127.0.0.1", port=int(sys.argv[2]), print=None, access_log=None
        )
    else:
        asyncio.run(main())
