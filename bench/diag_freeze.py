"""Diagnosis: what a full garbage collection walks in ``opensms receive``, with and without the
``gc.freeze()`` the command makes at start-up (``_cli/_receive.py:_freeze_startup``).

Each variant runs in a fresh process: ``opensms receive --store memory://`` started in process
(the CLI's own code, as typed but for the process boundary), one callback posted once it
answers, then the objects the collector tracks, and 20 timed ``gc.collect()`` (min and max).

    .venv/bin/python bench/diag_freeze.py
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import io
import json
import socket
import subprocess
import sys
import time
from unittest import mock

TOKEN = "diag-freeze-token"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _measure(freeze: bool) -> dict[str, float]:
    import httpx

    from opensms_async._cli import build_parser
    from opensms_async._cli._output import Output
    from opensms_async.testing import delivery_callback_body

    port = _free_port()
    args = build_parser().parse_args(
        ["receive", "--port", str(port), "--token", TOKEN, "--store", "memory://"]
    )
    out = Output(json=True, out=io.StringIO(), err=io.StringIO())
    patch = (
        contextlib.nullcontext()
        if freeze
        else mock.patch("opensms_async._cli._receive._freeze_startup", return_value=None)
    )
    body = delivery_callback_body(
        "req-1", "tel:+33612345678", "DeliveredToTerminal", security_token=TOKEN
    )
    with patch:
        receive = asyncio.create_task(args.run(args, out))
        async with httpx.AsyncClient(timeout=10, trust_env=False) as http, asyncio.timeout(30):
            while True:
                try:
                    answer = await http.post(f"http://127.0.0.1:{port}/sms/callback", json=body)
                    break
                except httpx.ConnectError:
                    await asyncio.sleep(0.01)
        assert answer.status_code == 204, answer.status_code
        times = []
        for _ in range(20):
            started = time.perf_counter()
            gc.collect()
            times.append(time.perf_counter() - started)
        tracked, frozen = len(gc.get_objects()), gc.get_freeze_count()
        receive.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await receive
    return {
        "tracked": tracked,
        "frozen": frozen,
        "min_ms": min(times) * 1e3,
        "max_ms": max(times) * 1e3,
    }


def main() -> None:
    if len(sys.argv) == 2 and sys.argv[1] in ("freeze", "no-freeze"):
        print(json.dumps(asyncio.run(_measure(sys.argv[1] == "freeze"))))
        return
    for variant in ("no-freeze", "freeze"):
        run = subprocess.run(  # noqa: S603 - this script itself, fixed arguments
            [sys.executable, __file__, variant], capture_output=True, text=True, check=True
        )
        got = json.loads(run.stdout.strip().splitlines()[-1])
        print(
            f"{variant:9}  tracked {got['tracked']:>7,.0f}  frozen {got['frozen']:>7,.0f}"
            f"  full collection {got['min_ms']:.2f}-{got['max_ms']:.2f} ms"
        )


if __name__ == "__main__":
    main()
