"""With OpenTelemetry's API installed but no SDK configured, a client call makes no span."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

_SCRIPT = textwrap.dedent(
    """
    import json
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opensms_async import _telemetry

    idle = type(_telemetry.client_calls("https://api.test/v1")("send_message")).__name__
    trace.set_tracer_provider(TracerProvider())
    traced = type(_telemetry.client_calls("https://api.test/v1")("send_message")).__name__
    print(json.dumps([idle, traced]))
    """
)


def test_no_span_is_made_while_no_sdk_is_configured() -> None:
    """A call of a client made while no provider is set is a plain Call (its DEBUG record
    only, no no-op span to start and end); once an SDK provider is set, a traced one."""
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == ["Call", "TracedCall"]
