"""Start and stop a real ``redis-server`` for tests: on a free 127.0.0.1 port, in its own folder.

``start_redis_server(folder)`` gives a throwaway server (no snapshots, no AOF);
``start_durable_redis_server(folder)`` one that appends every write to its AOF and fsyncs it
before answering (``appendonly yes``, ``appendfsync always``), for crash tests: ``kill()`` it,
``start()`` it again on the same port and folder, and what it acknowledged is back.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import redis

__all__ = [
    "RedisServer",
    "find_redis_server",
    "serving",
    "start_durable_redis_server",
    "start_redis_server",
]

START_TIMEOUT = 30.0
"""Seconds a server may take to answer PING after it was started."""


def find_redis_server() -> str:
    """The path of ``redis-server``; AssertionError with the fix when it is not installed."""
    path = shutil.which("redis-server")
    if path is None:
        raise AssertionError(
            "redis-server is not installed: `make test` installs it, or run"
            " `apt-get install -y redis-server` (the Redis tests need a real server)"
        )
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One ``redis-server`` process; ``start()`` (again) after ``stop()`` or ``kill()``."""

    def __init__(self, folder: Path, options: list[str], port: int | None = None) -> None:
        self.folder = folder
        self.port = port or free_port()
        self.options = options
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start the server and wait until it answers PING."""
        self.folder.mkdir(parents=True, exist_ok=True)
        command = [find_redis_server(), "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--dir", str(self.folder), "--logfile", "redis.log", *self.options]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)  # noqa: S603
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not self._answers():
            if self.process is not None and self.process.poll() is not None:
                log = (self.folder / "redis.log").read_text(errors="replace")
                raise AssertionError(f"redis-server exited:\n{log[-2000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"redis-server on port {self.port} did not answer")
            time.sleep(0.02)

    def _answers(self) -> bool:
        """True once the server replies to PING (``+PONG``, or ``-NOAUTH`` with a password)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64)[:1] in (b"+", b"-")
        except OSError:
            return False

    def flush(self) -> None:
        """Delete every key of every database."""
        with redis.Redis(port=self.port) as client:
            client.flushall()

    def pause(self) -> None:
        """SIGSTOP: the server keeps its sockets (connects still succeed) but answers nothing."""
        assert self.process is not None, "the server is not running"
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT: a paused server answers again; harmless when it is not paused or running."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Stop the server (SIGTERM) and wait for it; harmless when it is not running."""
        self._end(kill=False)

    def kill(self) -> None:
        """Kill the server (SIGKILL): a crash, nothing flushed on the way out."""
        self._end(kill=True)

    def _end(self, *, kill: bool) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        if kill:
            process.kill()
        else:
            process.terminate()
        process.wait(timeout=START_TIMEOUT)


def start_redis_server(folder: Path, *extra: str) -> RedisServer:
    """A throwaway server: nothing saved (``--save '' --appendonly no``)."""
    return RedisServer(folder, ["--save", "", "--appendonly", "no", *extra]).start()


def start_durable_redis_server(folder: Path, *extra: str) -> RedisServer:
    """A server that fsyncs every write to its AOF before answering (survives ``kill()``)."""
    options = ["--save", "", "--appendonly", "yes", "--appendfsync", "always", *extra]
    return RedisServer(folder, options).start()


@contextlib.contextmanager
def serving(server: RedisServer) -> Iterator[RedisServer]:
    """``server`` for the length of a block (a test's own): resumed if the test left it paused,
    then stopped."""
    try:
        yield server
    finally:
        server.resume()
        server.stop()
