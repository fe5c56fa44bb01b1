"""Shared helpers of the benchmarks: free ports, server subprocesses (ASGI apps, redis-server),
CPU pinning and CPU time, medians, refused runs, and the rows of ``run.py``'s table."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
from starlette.types import ASGIApp, Receive


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
def server_process(
    argv: Sequence[str], port: int, *, cpu: int = 0, env: dict[str, str] | None = None
) -> Iterator[tuple[str, int]]:
    """Run ``python argv...`` pinned to ``cpu`` (in ``env``, default this process's) until it
    answers on ``port``; yield (URL, pid)."""
    preexec = (lambda: pin_to_cpu(cpu)) if hasattr(os, "sched_setaffinity") else None
    proc = subprocess.Popen([sys.executable, *argv], preexec_fn=preexec, env=env)  # noqa: S603
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


def serve_fast(app: ASGIApp, port: int) -> None:
    """Serve ``app`` on 127.0.0.1:``port`` until terminated, as every bench server runs:
    uvloop and httptools, no logs, a long keep-alive and a deep backlog."""
    import uvicorn  # here, not at the top: the load processes that import this module skip it

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="error",
        access_log=False,
        loop="uvloop",
        http="httptools",
        timeout_keep_alive=30,
        backlog=4096,
    )


def median(values: Sequence[float]) -> float:
    """The median of a non-empty sequence."""
    return statistics.median(values)


@contextlib.contextmanager
def redis_server(folder: str, *, aof: bool = False) -> Iterator[str]:
    """A fresh redis-server on a free 127.0.0.1 port, its files in ``folder``; yield its URL.

    Without ``aof`` nothing is persisted; with it, every write is fsynced (``appendfsync
    always``), the durable setting.
    """
    with redis_server_process(folder, aof=aof) as (url, _):
        yield url


@contextlib.contextmanager
def redis_server_process(
    folder: str, *, aof: bool = False, cpu: int | None = None
) -> Iterator[tuple[str, int]]:
    """:func:`redis_server`, yielding its URL and its pid (whose CPU time a benchmark counts);
    pinned to ``cpu`` when given (and the machine has more than one)."""
    port = free_port()
    persistence = (
        ["--appendonly", "yes", "--appendfsync", "always"] if aof else ["--appendonly", "no"]
    )
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", folder]
    argv += ["--save", "", "--logfile", "redis.log", *(persistence or ["--appendonly", "no"])]
    preexec = None if cpu is None else functools.partial(pin_to_cpu, cpu)
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, preexec_fn=preexec)  # noqa: S603
    try:
        _wait_for_port(port, proc)
        yield f"redis://127.0.0.1:{port}/0", proc.pid
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_wait_seconds(pid: int) -> float:
    """Seconds the threads of process ``pid`` have spent runnable but waiting for a CPU so far
    (Linux ``schedstat``): on a machine shared with other work, the time others held the CPU."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that just ended
            total += int((task / "schedstat").read_text().split()[1])
    return total / 1e9


def steal_seconds() -> tuple[float, float]:
    """Seconds the hypervisor has kept virtual CPUs 0 and 1 from running so far, from one read
    of Linux ``/proc/stat`` (its steal column; 0 on bare metal): invisible to ``schedstat``,
    whose clock stops with the virtual CPU."""
    steal = [0.0, 0.0]
    tick = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as file:
        for line in file:
            if line.startswith(("cpu0 ", "cpu1 ")):
                fields = line.split()
                steal[int(fields[0][3])] = int(fields[8]) / tick
    return steal[0], steal[1]


def steal_since(before: tuple[float, float]) -> list[float]:
    """Seconds stolen from CPUs 0 and 1 since ``before`` (a :func:`steal_seconds`)."""
    return [now - then for now, then in zip(steal_seconds(), before, strict=True)]


class RunRefused(RuntimeError):
    """A run met a non-2xx answer, a socket error or a lost event: its figure means nothing."""


def row(
    group: str,
    name: str,
    value: float | None,
    unit: str,
    *,
    target: str = "",
    passed: bool | None = None,
    note: str = "",
) -> dict[str, Any]:
    """One line of ``run.py``'s table: a figure, its target (``">= 0.85"``) and the verdict.

    ``value`` None means no figure (every run refused, say: ``note`` says why). ``passed`` None
    means the figure has no target (context, diagnosis).
    """
    return {
        "group": group,
        "name": name,
        "value": value,
        "unit": unit,
        "target": target,
        "passed": passed,
        "note": note,
    }


def write_rows(path: str | None, rows: Sequence[dict[str, Any]]) -> None:
    """Write a benchmark's rows as JSON to ``path`` (``--json-out``), for ``run.py``."""
    if path is not None:
        Path(path).write_text(json.dumps(list(rows), indent=1))


def format_rows(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as one plain-text table: figure, value, target, verdict, note."""
    lines = [f"{'figure':58} {'value':>12} {'target':>10}  {'':6} note"]
    group = None
    for r in rows:
        if r["group"] != group:
            group = r["group"]
            lines.append(f"-- {group}")
        value = r["value"]
        if value is None:
            cell = "—"
        elif r["unit"] in ("ratio", "ms"):
            cell = f"{value:.2f}" if r["unit"] == "ratio" else f"{value:.2f} ms"
        else:
            cell = f"{value:,.0f} {r['unit']}".strip()
        verdict = {True: "OK", False: "MISSED", None: ""}[r["passed"]]
        lines.append(f"{r['name']:58} {cell:>12} {r['target']:>10}  {verdict:6} {r['note']}")
    return "\n".join(lines)


def callgrind_dump(path: str) -> tuple[str, int]:
    """(what triggered it, instructions since the dump before) of one callgrind dump file."""
    trigger, cost = "", 0
    with open(path) as file:
        for line in file:
            if line.startswith("desc: Trigger: "):
                trigger = line.removeprefix("desc: Trigger: ").strip().removeprefix("dump ")
            elif line.startswith("summary: "):
                cost = int(line.split()[1])
    return trigger, cost


def callgrind_mark(label: str) -> None:
    """Dump this process's callgrind counts so far, labelled (it runs under callgrind)."""
    subprocess.run(  # noqa: S603
        ["callgrind_control", f"--dump={label}", str(os.getpid())],  # noqa: S607
        check=True,
        capture_output=True,
    )
