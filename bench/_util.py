"""Shared helpers of the benchmarks: free ports, server subprocesses (ASGI apps, redis-server),
CPU pinning, medians."""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence

import httpx
from starlette.types import Receive


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pin_to_cpu(cpu: int) -> None:
    """Pin this process to one CPU when the machine has more than one (server and load apart)."""
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {cpu})


@contextlib.contextmanager
def server_process(argv: Sequence[str], port: int, *, cpu: int = 0) -> Iterator[tuple[str, int]]:
    """Run ``python argv...`` pinned to ``cpu`` until it answers on ``port``; yield (URL, pid)."""
    preexec = (lambda: pin_to_cpu(cpu)) if hasattr(os, "sched_setaffinity") else None
    proc = subprocess.Popen([sys.executable, *argv], preexec_fn=preexec)  # noqa: S603
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, proc)
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_until_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    """Wait until ``GET url/healthz`` answers (20 s at most); fail at once if ``proc`` exits."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            httpx.get(url + "/healthz", timeout=0.5)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError("server did not start in 20 s")


def median(values: Sequence[float]) -> float:
    """The median of a non-empty sequence."""
    return statistics.median(values)


@contextlib.contextmanager
def redis_server(folder: str, *, aof: bool = False) -> Iterator[str]:
    """A fresh redis-server on a free 127.0.0.1 port, its files in ``folder``; yield its URL.

    Without ``aof`` nothing is persisted; with it, every write is fsynced (``appendfsync
    always``), the durable setting.
    """
    port = free_port()
    persistence = (
        ["--appendonly", "yes", "--appendfsync", "always"] if aof else ["--appendonly", "no"]
    )
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", folder]
    argv += ["--save", "", "--logfile", "redis.log", *(persistence or ["--appendonly", "no"])]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)  # noqa: S603
    try:
        _wait_for_port(port, proc)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.kill()
        proc.wait(timeout=10)


def _wait_for_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise RuntimeError("redis-server did not start in 10 s")


async def drain_body(receive: Receive) -> None:
    """Read an ASGI request's body to its end, discarding it."""
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
