"""pytest fixtures for the OpenSMS simulator (registered through the ``pytest11`` entry point).

Both fixtures are synchronous and serve the simulator from a background thread with its own event
loop, so they work under pytest-asyncio, anyio or trio, whatever the loop scope. Fault injection
and the simulator's counters are safe to use from the test's thread.

The SDK is imported lazily, inside the fixtures: loading this plugin costs every pytest run in
the environment nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from opensms_async.testing import RunningSimulator

__all__ = ["opensms_simulator", "opensms_simulator_factory"]


@pytest.fixture
def opensms_simulator() -> Iterator[RunningSimulator]:
    """A simulator with default settings, served on a free 127.0.0.1 port for one test."""
    from opensms_async.testing import run_simulator_in_thread

    with run_simulator_in_thread() as running:
        yield running


@pytest.fixture
def opensms_simulator_factory() -> Iterator[Callable[..., RunningSimulator]]:
    """Start simulators with settings, ``factory(seed=1, callback_drop_rate=0.5)``; all stop
    at the end of the test."""
    from opensms_async.testing import run_simulator_in_thread

    with contextlib.ExitStack() as stack:

        def start(**config: Any) -> RunningSimulator:
            return stack.enter_context(run_simulator_in_thread(**config))

        yield start
