"""Shared helpers of the benchmarks: free ports, server subprocesses, CPU pinning, medians."""

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
def server_process(argv: Sequence[str], port: int, *, cpu: int = 0) -> Iterator[str]:
    """Run ``python argv...`` pinned to ``cpu`` until it answers on ``port``; yield its URL."""
    preexec = (lambda: pin_to_cpu(cpu)) if hasattr(os, "sched_setaffinity") else None
    proc = subprocess.Popen([sys.executable, *argv], preexec_fn=preexec)  # noqa: S603
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_until_up(url: str, proc: subprocess.Popen[bytes]) -> None:
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
