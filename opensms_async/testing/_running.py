"""Running a :class:`Simulator` on a free 127.0.0.1 port, in the current loop or in a thread."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import attrs

from .._server import RunningServer, serve, serve_in_thread
from ._simulator import Simulator

__all__ = ["RunningSimulator", "run_simulator", "run_simulator_in_thread"]


@attrs.frozen
class RunningSimulator:
    """A simulator being served: where to reach it and with which credentials."""

    simulator: Simulator
    server: RunningServer

    @property
    def url(self) -> str:
        """The server's root URL, e.g. ``http://127.0.0.1:8765``."""
        return self.server.url

    @property
    def base_url(self) -> str:
        """The API's base URL (server URL plus ``base_path``): the client's ``base_url``."""
        return f"{self.server.url}{self.simulator.base_path}"

    @property
    def token_url(self) -> str:
        """The OAuth2 client-credentials token endpoint."""
        return f"{self.server.url}/oauth/token"

    @property
    def api_key(self) -> str:
        """The API key the simulator accepts."""
        return self.simulator.api_key

    @property
    def client_id(self) -> str:
        """The OAuth client id the token endpoint accepts."""
        return self.simulator.client_id

    @property
    def client_secret(self) -> str:
        """The OAuth client secret the token endpoint accepts."""
        return self.simulator.client_secret


def _simulator(simulator: Simulator | None, config: dict[str, Any]) -> Simulator:
    if simulator is None:
        return Simulator(**config)
    if config:
        raise TypeError("pass either a Simulator or its settings, not both")
    return simulator


@contextlib.asynccontextmanager
async def run_simulator(
    simulator: Simulator | None = None,
    /,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    **config: Any,
) -> AsyncIterator[RunningSimulator]:
    """Serve a simulator (``simulator``, or a new one built from ``config``) in this event loop.

    ``port=0`` picks a free port; ``config`` takes any :class:`Simulator` setting.
    """
    sim = _simulator(simulator, config)
    async with serve(sim.app, host=host, port=port) as server:
        yield RunningSimulator(sim, server)


@contextlib.contextmanager
def run_simulator_in_thread(
    simulator: Simulator | None = None,
    /,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    **config: Any,
) -> Iterator[RunningSimulator]:
    """Serve a simulator in a background thread with its own event loop (for sync code)."""
    sim = _simulator(simulator, config)
    with serve_in_thread(sim.app, host=host, port=port) as server:
        yield RunningSimulator(sim, server)
