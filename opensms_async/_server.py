"""Serve an ASGI app on a real socket for the length of an ``async with`` (or ``with``) block.

Used by the simulator, the demo and the tests: uvicorn runs as a task of the caller's event loop
(:func:`serve`) or in a thread with its own loop (:func:`serve_in_thread`). The listening socket is
bound before uvicorn starts, so port 0 picks a free port with no race between choosing and binding.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Iterator

import attrs
import uvicorn
from starlette.types import ASGIApp

__all__ = ["RunningServer", "serve", "serve_in_thread"]

_STARTUP_TIMEOUT = 10.0
_SHUTDOWN_TIMEOUT = 5.0
"""Seconds the lifespan shutdown may take, after the graceful shutdown."""
_GRACEFUL_SHUTDOWN = 2
"""Seconds uvicorn waits for open requests (a slow fault, say) before cancelling them."""


@attrs.frozen
class RunningServer:
    """Where a server started by :func:`serve` listens."""

    host: str
    port: int

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:8765`` (no trailing slash)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


@attrs.frozen
class _Handle:
    running: RunningServer
    loop: asyncio.AbstractEventLoop
    stopped: asyncio.Event


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the application that embeds it."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._exit_requested = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn 0.54 swaps SIGINT/SIGTERM handlers for its whole lifetime and re-raises the
        # signals afterwards; embedded, Ctrl+C must keep reaching the host program.
        yield

    def request_exit(self) -> None:
        """Stop serving: close the listener, finish open requests, run the lifespan shutdown."""
        self.should_exit = True
        self._exit_requested.set()

    async def main_loop(self) -> None:
        # uvicorn's loop notices should_exit within 0.1 s; tests start and stop servers by the
        # hundred, so wake up at once instead (on_tick still runs every 0.1 s meanwhile).
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exit_requested.wait(), 0.1)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


async def _run(server: uvicorn.Server, sock: socket.socket) -> None:
    try:
        await server.serve(sockets=[sock])
    except SystemExit:
        # uvicorn calls sys.exit() when the app's lifespan startup fails; inside a task that
        # would tear down the caller's whole event loop.
        raise RuntimeError("the ASGI app failed to start (lifespan startup failed)") from None


async def _wait_started(server: _EmbeddedServer, task: asyncio.Task[None]) -> None:
    async with asyncio.timeout(_STARTUP_TIMEOUT):
        while not server.started:
            if task.done():
                task.result()  # raises the startup error
                raise RuntimeError("the server stopped before it started")
            await asyncio.sleep(0.005)


async def _stop(server: _EmbeddedServer, task: asyncio.Task[None], graceful: float) -> None:
    server.request_exit()
    done, _ = await asyncio.wait({task}, timeout=graceful + _SHUTDOWN_TIMEOUT)
    if not done:
        server.force_exit = True
        await asyncio.wait({task}, timeout=_SHUTDOWN_TIMEOUT)
    if not task.done():
        task.cancel()
        await asyncio.wait({task})
    error = None if task.cancelled() else task.exception()
    # A startup failure was raised by _wait_started already; raise only what shutdown did.
    if error is not None and server.started:
        raise error


@contextlib.asynccontextmanager
async def serve(
    app: ASGIApp,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    log_level: str | None = "warning",
    graceful_shutdown: int = _GRACEFUL_SHUTDOWN,
) -> AsyncIterator[RunningServer]:
    """Run ``app`` under uvicorn in the current event loop until the block exits.

    The app's lifespan runs. uvicorn's logging configuration is left alone (``log_config=None``);
    ``log_level`` only sets the level of the ``uvicorn.*`` loggers (None leaves them as they are).
    Access logs are off. On the way out, requests still open get ``graceful_shutdown`` seconds
    to finish before uvicorn cancels them.
    """
    sock = _bind(host, port)
    config = uvicorn.Config(
        app,
        log_config=None,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=graceful_shutdown,
    )
    server = _EmbeddedServer(config)
    task = asyncio.create_task(_run(server, sock), name=f"uvicorn {host}:{port}")
    try:
        await _wait_started(server, task)
        yield RunningServer(host=host, port=sock.getsockname()[1])
    finally:
        try:
            await _stop(server, task, graceful_shutdown)
        finally:
            sock.close()  # uvicorn closes it only when it got as far as serving


@contextlib.contextmanager
def serve_in_thread(
    app: ASGIApp,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    log_level: str | None = "warning",
) -> Iterator[RunningServer]:
    """Like :func:`serve`, but in a daemon thread with its own event loop.

    For synchronous code and for tests under any async framework or loop scope: the server does
    not depend on the caller's loop.
    """
    handoff: concurrent.futures.Future[_Handle] = concurrent.futures.Future()

    async def main() -> None:
        stopped = asyncio.Event()
        async with serve(app, host=host, port=port, log_level=log_level) as running:
            handoff.set_result(_Handle(running, asyncio.get_running_loop(), stopped))
            await stopped.wait()

    def target() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:
            if handoff.done():
                raise
            handoff.set_exception(exc)

    thread = threading.Thread(target=target, name=f"serve {host}:{port}", daemon=True)
    thread.start()
    handle = handoff.result(timeout=_STARTUP_TIMEOUT + 1)
    try:
        yield handle.running
    finally:
        handle.loop.call_soon_threadsafe(handle.stopped.set)
        thread.join(timeout=2 * _SHUTDOWN_TIMEOUT + 1)
