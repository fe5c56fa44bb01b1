"""Diagnosis: the machine's floor under the latency benchmark's load, with no uvicorn at all.

A plain-Python server (``select.epoll``, no asyncio) pinned to CPU 0 answers every complete
request with a canned ``HTTP/1.1 204`` at once. Against it, pinned to CPU 1:

- ``pingpong``: one blocking socket, each request sent at its due time (``time.sleep``, which is
  ``clock_nanosleep``), the answer awaited with a blocking ``recv``: the round trip of two pinned
  processes over loopback, the least a callback can take on this machine;
- ``generator``: ``bench_latency.py``'s open-loop generator (``--pacing``, ``--generator-gc``,
  ``--connections`` as there): the round trip it measures, i.e. its own tail above the floor.

    .venv/bin/python bench/diag_floor.py [--rates 1000,3000] [--seconds 5] [--rounds 2]
        [--clients pingpong,spin/on,select/frozen] [--connections 256]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import select
import socket
import sys
import time
from collections.abc import Iterator

from _util import cpu_wait_seconds, free_port, pin_to_cpu
from bench_latency import Generator, callback, loop_factory, percentile

ANSWER = b"HTTP/1.1 204 No Content\r\nserver: floor\r\n\r\n"


def serve(port: int) -> None:
    """Answer every complete request with a 204 at once, until killed."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(4096)
    listener.setblocking(False)
    poll = select.epoll()
    poll.register(listener.fileno(), select.EPOLLIN)
    conns: dict[int, tuple[socket.socket, bytearray]] = {}
    while True:
        for fd, _ in poll.poll():
            if fd == listener.fileno():
                conn, _ = listener.accept()
                conn.setblocking(False)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conns[conn.fileno()] = (conn, bytearray())
                poll.register(conn.fileno(), select.EPOLLIN)
                continue
            conn, buffer = conns[fd]
            data = conn.recv(65536)
            if not data:
                poll.unregister(fd)
                conn.close()
                del conns[fd]
                continue
            buffer += data
            answers = 0
            while (end := buffer.find(b"\r\n\r\n")) >= 0:
                head = bytes(buffer[:end]).lower()
                length = int(head.partition(b"content-length: ")[2].split(b"\r\n")[0] or 0)
                if len(buffer) < end + 4 + length:
                    break
                del buffer[: end + 4 + length]
                answers += 1
            if answers:
                conn.sendall(ANSWER * answers)


@contextlib.contextmanager
def floor_server(port: int) -> Iterator[int]:
    """The floor server in a child process pinned to CPU 0; yield its pid."""
    pid = os.fork()
    if pid == 0:
        try:
            pin_to_cpu(0)
            serve(port)
        finally:
            os._exit(0)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.02)
    try:
        yield pid
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)


def pingpong(port: int, rate: int, total: int) -> tuple[list[float], list[float]]:
    """Round trips and lags from due of ``total`` requests on one blocking connection."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    requests = [callback(n)[0] for n in range(total)]
    trips, from_due = [], []
    start = time.monotonic() + 0.05
    for n, request in enumerate(requests):
        due = start + n / rate
        ahead = due - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
        sent = time.monotonic()
        sock.sendall(request)
        got = b""
        while not got.endswith(b"\r\n\r\n"):
            got += sock.recv(4096)
        now = time.monotonic()
        trips.append(now - sent)
        from_due.append(now - due)
    sock.close()
    return trips, from_due


def generated(
    port: int, rate: int, total: int, pacing: str, collector: str, connections: int
) -> tuple[list[float], list[float]]:
    """Round trips and lags from due as ``bench_latency.py``'s generator measures them."""
    generator = Generator(rate, total, pacing=pacing, collector=collector)

    async def drive() -> None:
        await generator.connect(port, connections)
        await generator.run()

    with asyncio.Runner(loop_factory=loop_factory(pacing)) as runner:
        runner.run(drive())
    if generator.failures:
        raise RuntimeError(generator.failures[0])
    trips = [a - s for a, s in zip(generator.answered_at, generator.sent_at, strict=True)]
    from_due = [a - d for a, d in zip(generator.answered_at, generator.due, strict=True)]
    return trips, from_due


def main() -> None:
    """Run each client against a fresh floor server per run; print p50/p99/max per run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="1000,3000")
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--warmup", type=float, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--clients", default="pingpong,spin/on,select/frozen")
    parser.add_argument("--connections", type=int, default=256)
    args = parser.parse_args()
    pin_to_cpu(1)
    print(f"load {os.getloadavg()[0]:.2f}")
    for round_no in range(args.rounds):
        for rate in (int(r) for r in args.rates.split(",")):
            for client in args.clients.split(","):
                port = free_port()
                total = int(rate * (args.seconds + args.warmup))
                with floor_server(port) as pid:
                    waited = cpu_wait_seconds(pid)
                    began = time.monotonic()
                    if client == "pingpong":
                        trips, due = pingpong(port, rate, total)
                    else:
                        pacing, collector = client.split("/")
                        trips, due = generated(
                            port, rate, total, pacing, collector, args.connections
                        )
                    waited = (cpu_wait_seconds(pid) - waited) / (time.monotonic() - began)
                skip = int(rate * args.warmup)
                trips, due = sorted(trips[skip:]), sorted(due[skip:])
                print(
                    f"round {round_no} {rate:5}/s {client:12} round trip ms p50 "
                    f"{percentile(trips, 0.5) * 1e3:6.3f} p99 {percentile(trips, 0.99) * 1e3:6.3f}"
                    f" max {trips[-1] * 1e3:6.2f}; from due p99 {percentile(due, 0.99) * 1e3:6.3f}"
                    f"; server waited {waited:.1%}; load {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
    sys.exit(0)


if __name__ == "__main__":
    main()
