"""The runnable examples run to completion against the simulator."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLES = Path(__file__).parent.parent / "examples"

pytestmark = pytest.mark.integration


def load(name: str) -> ModuleType:
    """Import an example file as a module."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["quickstart", "event_stream"])
async def test_example_runs(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The example's main() finishes and prints final states."""
    await asyncio.wait_for(load(name).main(), 60)
    out = capsys.readouterr().out
    assert "DeliveredToTerminal" in out
    assert "DeliveryImpossible" in out


@pytest.mark.parametrize("name", ["receiver_standalone", "receiver_mounted"])
def test_receiver_examples_build_an_app(name: str) -> None:
    """The receiver examples build an ASGI app at import."""
    assert callable(load(name).app)
