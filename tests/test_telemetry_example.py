"""``examples/otel_console.py`` runs against the simulator and prints what the README shows."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).parent.parent / "examples" / "otel_console.py"

pytestmark = pytest.mark.integration


def test_the_console_example_prints_every_span_and_metric_of_the_story() -> None:
    """Run as a user runs it (its own process, its own global providers): a retried send, the
    callbacks that arrived and the polls for the lost ones as spans, linked to the send; every
    metric of the contract at exit."""
    done = subprocess.run(  # noqa: S603 - our own interpreter and example
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    [send] = [line for line in lines if line.startswith("span opensms.send_message CLIENT")]
    assert "'http.request.resend_count': 1" in send
    send_id = re.search(r" id=([0-9a-f]{16})", send)
    assert send_id is not None
    linked = [line for line in lines if f"links=['{send_id.group(1)}']" in line]
    kinds = {line.split()[1] for line in linked}
    # The poll always links; a callback does when it comes after track() (nearly always here).
    assert "opensms.reconcile" in kinds, done.stdout
    assert kinds <= {"opensms.callback", "opensms.reconcile"}, done.stdout
    assert any(line.startswith("span opensms.callback SERVER") for line in lines), done.stdout
    for name in (
        "opensms.client.request.duration",
        "opensms.receiver.callbacks",
        "opensms.delivery.events",
        "opensms.delivery.duration",
        "opensms.reconcile.polls",
        "opensms.delivery.pending",
        "opensms.delivery.poll_recovered",
    ):
        assert any(line.startswith(f"metric {name} ") for line in lines), name
