"""The inbound example runs to completion against the simulator."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).parent.parent / "examples" / "inbox_stream.py"

pytestmark = pytest.mark.integration


async def test_the_inbox_example_prints_each_message_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A reply in shuffled, duplicated parts and a polled message: two lines, whole texts."""
    spec = importlib.util.spec_from_file_location("example_inbox_stream", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    await asyncio.wait_for(module.main(), 60)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert any(line.startswith("poll") and "Polled: STOP" in line for line in lines)
    assert any(line.startswith("callback") and "(2 parts)" in line for line in lines)
