"""Receivers as separate OS processes (``opensms receive``) and a bounded callback load for them.

Shared by the crash tests (``test_crash.py``) and the replica tests (``test_replicas.py``): any
store URL, each process on its own free 127.0.0.1 port, its stdout (the events it prints, one
JSON line each) and stderr in files, killed in ``finally`` if still running.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
from redis_server import free_port

__all__ = [
    "CONCURRENCY",
    "LOAD_TIMEOUT",
    "PATH",
    "TOKEN",
    "Load",
    "ReceiverProcess",
    "post_load",
    "receiver_process",
]

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "crash-test-token-3"
PATH = "/sms/callback"
CONCURRENCY = 32
STARTUP_TIMEOUT = 60.0
LOAD_TIMEOUT = 60.0


@dataclasses.dataclass
class ReceiverProcess:
    """``opensms receive`` running as a child process; its output goes to files."""

    process: subprocess.Popen[bytes]
    url: str
    stdout_path: Path
    stderr_path: Path

    @property
    def callback_url(self) -> str:
        """Where callbacks are posted."""
        return self.url + PATH

    @property
    def port(self) -> int:
        """The port it listens on (127.0.0.1)."""
        return int(self.url.rsplit(":", 1)[1])

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind runs in the child."""
        self.process.send_signal(signal.SIGKILL)

    async def wait_exit(self, timeout: float) -> int:
        """The exit code, once the process has ended (TimeoutError after ``timeout``)."""
        async with asyncio.timeout(timeout):
            while (code := self.process.poll()) is None:  # noqa: ASYNC110 - no event for a child
                await asyncio.sleep(0.02)
        return code

    async def terminate(self, timeout: float = 10.0) -> int:
        """SIGTERM (a clean shutdown) and the exit code."""
        self.process.send_signal(signal.SIGTERM)
        return await self.wait_exit(timeout)

    def stderr(self) -> str:
        """What the child wrote on stderr so far."""
        return self.stderr_path.read_text(errors="replace")

    def printed(self) -> list[dict[str, Any]]:
        """The events the child printed so far (complete JSON lines only)."""
        text = self.stdout_path.read_text(errors="replace")
        return [json.loads(line) for line in text.split("\n")[:-1] if line.strip()]

    async def wait_printed(self, count: int, timeout: float) -> list[dict[str, Any]]:
        """The printed events once there are at least ``count`` (or what there is at timeout)."""
        deadline = time.monotonic() + timeout
        while len(events := self.printed()) < count and time.monotonic() < deadline:  # noqa: ASYNC110 - a file, no event
            await asyncio.sleep(0.05)
        return events


async def _wait_healthy(receiver: ReceiverProcess, http: httpx.AsyncClient) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if receiver.process.poll() is not None:
            raise AssertionError(f"the receiver exited at startup:\n{receiver.stderr()}")
        with contextlib.suppress(httpx.TransportError):
            if (await http.get(receiver.url + "/healthz")).status_code == 200:
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the receiver did not become healthy:\n{receiver.stderr()}")


@contextlib.asynccontextmanager
async def receiver_process(
    store_url: str,
    workdir: Path,
    *,
    name: str,
    token: str = TOKEN,
    options: Sequence[str] = (),
) -> AsyncIterator[ReceiverProcess]:
    """Run ``python -m opensms_async receive`` on a free port until the block exits.

    ``options`` are more command-line options (``["--record-deadline", "4"]``). Waits for
    ``/healthz``; stdout (the printed events) and stderr go to files in ``workdir``, so no pipe
    can fill up. The child is killed in ``finally`` if it is still running.
    """
    port = free_port()
    command = [sys.executable, "-m", "opensms_async", "receive", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--path", PATH, "--token", token, "--store", store_url]
    command += options
    process = _spawn(command, workdir, name)
    receiver = ReceiverProcess(
        process,
        f"http://127.0.0.1:{port}",
        workdir / f"{name}.stdout",
        workdir / f"{name}.stderr",
    )
    try:
        async with httpx.AsyncClient(timeout=2, trust_env=False) as http:
            await _wait_healthy(receiver, http)
        yield receiver
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def _spawn(command: list[str], workdir: Path, name: str) -> subprocess.Popen[bytes]:
    """Start ``command`` with stdout and stderr in files (the child keeps its own handles)."""
    with (
        open(workdir / f"{name}.stdout", "wb") as out,
        open(workdir / f"{name}.stderr", "wb") as err,
    ):
        return subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            command, stdout=out, stderr=err, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )


# --- the load -------------------------------------------------------------------------------


@dataclasses.dataclass
class Load:
    """What happened to each posted callback."""

    sent: set[int] = dataclasses.field(default_factory=set)
    acked: set[int] = dataclasses.field(default_factory=set)
    refused: int = 0
    failed: int = 0
    codes: collections.Counter[int] = dataclasses.field(default_factory=collections.Counter)
    """How many answers had each HTTP status."""
    by_url: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    """How many callbacks were posted to each URL."""


async def post_load(
    url: str | Sequence[str],
    bodies: Mapping[int, bytes],
    *,
    on_ack: Callable[[Load], bool] | None = None,
    concurrency: int = CONCURRENCY,
    timeout: float = LOAD_TIMEOUT,
) -> Load:
    """Post ``bodies`` (in key order) with ``concurrency`` in flight, recording which got a 2xx.

    With several URLs, worker ``n`` posts to ``url[n % len(url)]``: each callback goes to the
    replica of whichever worker takes it. ``on_ack`` runs after each 2xx; once it returns True
    no new callback is started.
    """
    urls = [url] if isinstance(url, str) else list(url)
    load = Load()
    pending = iter(sorted(bodies))  # shared by the workers: each callback is posted once
    stopped = False

    async def worker(http: httpx.AsyncClient, target: str) -> None:
        nonlocal stopped
        for index in pending:
            if stopped:
                return
            load.sent.add(index)
            load.by_url[target] += 1
            try:
                response = await http.post(target, content=bodies[index])
            except httpx.TransportError:
                load.failed += 1
                continue
            load.codes[response.status_code] += 1
            if not response.is_success:
                load.refused += 1
                continue
            load.acked.add(index)
            if on_ack is not None and on_ack(load):
                stopped = True

    # One single-connection client per worker: httpcore's pool does O(connections^2) work per
    # request (PERFORMANCE.md), which would make this load generator the bottleneck.
    limits = httpx.Limits(max_connections=1)
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(timeout=10, limits=limits, trust_env=False)
            )
            for _ in range(concurrency)
        ]
        async with asyncio.timeout(timeout):
            await asyncio.gather(
                *(worker(http, urls[n % len(urls)]) for n, http in enumerate(clients))
            )
    return load
