"""Diagnosis: what mounting in a parent app costs the receiver and the bare route, in-process.

    .venv/bin/python bench/diag_mount_cost.py [--requests N] [--callgrind]

A driver calls each app of ``_receiver_apps.py`` directly (no sockets, no uvicorn): 64
concurrent "connections" each posting ``bench_receiver.py``-like callbacks one after another
(every callback a new recipient), the memory store with one live ``events()`` consumer, after a
warm-up of 640 callbacks. Four apps: the bare Starlette route and the receiver, each alone and
mounted at ``/sms`` in the parent app of ``bench_receiver.py``'s ``*-mounted`` variants.

By default it prints the CPU µs per callback of each (``time.process_time``; twice, in turn),
which on a shared 2-core machine moves by ±15 µs between runs: too noisy to tell what mounting
costs one app more than the other. ``--callgrind`` runs it under valgrind's callgrind instead
and prints the instructions per callback of each measured phase (``callgrind_control --dump``
around it): the same on every run, whatever the load, so the difference of two deltas means
something. Not a headline figure (no sockets, no HTTP parsing); it locates a cost.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import _receiver_apps as apps
import uvloop
from _util import callgrind_dump, callgrind_mark
from starlette.types import ASGIApp, Message

CONNECTIONS = 64
WARMUP = 640
SENDER = "http://h/outbound/tel%3A%2B32123"
APPS = (("starlette", False), ("starlette", True), ("memory", False), ("memory", True))


def body(i: int) -> bytes:
    """Callback ``i``: the first sighting of a new recipient, with the benchmark's token."""
    callback = {
        "deliveryInfoList": {
            "securityToken": apps.TOKEN,
            "resourceURL": f"{SENDER}/requests/r-{i // 10:07d}/deliveryInfos",
            "smsParts": 1,
            "deliveryInfo": [
                {
                    "address": f"tel:+336{i:08d}",
                    "deliveryStatus": "DeliveredToNetwork",
                    "deliveryStatusCode": 0,
                }
            ],
        }
    }
    return json.dumps(callback, separators=(",", ":")).encode()


def http_scope(path: str, length: int) -> dict[str, Any]:
    """The scope uvicorn gives a POST of ``length`` bytes of JSON to ``path``."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % length)],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "state": {},
    }


async def post(app: ASGIApp, i: int) -> None:
    """One callback, answered 204 (else AssertionError: the figure would be of another path)."""
    payload = body(i)
    messages: list[Message] = [{"type": "http.request", "body": payload, "more_body": False}]
    statuses: list[int] = []

    async def receive() -> Message:
        return messages.pop() if messages else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(http_scope(apps.CALLBACK_PATH, len(payload)), receive, send)
    if statuses != [204]:
        raise AssertionError(f"answered {statuses}, not 204")


async def load(app: ASGIApp, start: int, count: int) -> None:
    """``count`` callbacks from ``start`` on, over 64 concurrent connections."""

    async def connection(k: int) -> None:
        for i in range(start + k, start + count, CONNECTIONS):
            await post(app, i)

    await asyncio.gather(*(connection(k) for k in range(CONNECTIONS)))


async def measure(variant: str, mounted: bool, requests: int, mark: Callable[[str], None]) -> float:
    """CPU µs per callback of the measured phase (``mark`` called at its start and end)."""
    args = argparse.Namespace(
        variant=variant, mounted=mounted, consumers=0 if variant == "starlette" else 1,
        arg=None, stats=None, latency=None, gc_freeze=False,
    )  # fmt: skip
    app = apps.build(args)
    startup: asyncio.Queue[Message] = asyncio.Queue()
    answers: asyncio.Queue[Message] = asyncio.Queue()
    await startup.put({"type": "lifespan.startup"})
    lifespan_scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    lifespan = asyncio.ensure_future(app(lifespan_scope, startup.get, answers.put))
    await answers.get()
    await load(app, 0, WARMUP)
    mark("warm")
    started = time.process_time()
    await load(app, WARMUP, requests)
    spent = time.process_time() - started
    mark("measured")
    await startup.put({"type": "lifespan.shutdown"})
    await answers.get()
    await lifespan
    return spent / requests * 1e6


def _name(variant: str, mounted: bool) -> str:
    return variant + ("-mounted" if mounted else "")


async def run(
    requests: int, rounds: int, mark: Callable[[str], None], apps: Sequence[tuple[str, bool]]
) -> None:
    """Each app in turn, ``rounds`` times; print the CPU µs per callback."""
    for _ in range(rounds):
        for variant, mounted in apps:
            mark("start " + _name(variant, mounted))
            cpu = await measure(variant, mounted, requests, mark)
            print(f"{_name(variant, mounted):18} {cpu:6.1f} CPU µs/callback", flush=True)


def under_callgrind(requests: int, names: str, keep: str | None) -> None:
    """Run this script under callgrind, one dump per phase; print instructions per callback
    (with ``keep``, the measured phases' dumps are copied into that folder, for
    ``callgrind_annotate``)."""
    if shutil.which("valgrind") is None:
        sys.exit("--callgrind needs valgrind (apt-get install valgrind)")
    apps = _apps(names)
    with tempfile.TemporaryDirectory(prefix="diag-mount-") as folder:
        out = os.path.join(folder, "cg.out")
        argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable]
        argv += [__file__, "--requests", str(requests), "--apps", names, "--child"]
        subprocess.run(argv, check=True, capture_output=True)  # noqa: S603
        phases = sorted(glob.glob(out + ".*"), key=lambda p: int(p.rsplit(".", 1)[1]))
        counts = [(path, *callgrind_dump(path)) for path in phases]
        # The dumps come in fours per app: start, warm, measured, and the next start.
        measured = [(path, cost) for path, trigger, cost in counts if trigger == "measured"]
        if keep is not None:
            os.makedirs(keep, exist_ok=True)
            for (v, m), (path, _) in zip(apps, measured, strict=True):
                shutil.copy(path, os.path.join(keep, f"{_name(v, m)}.callgrind"))
    per = {_name(v, m): cost / requests for (v, m), (_, cost) in zip(apps, measured, strict=True)}
    for name, instructions in per.items():
        print(f"{name:18} {instructions / 1000:7.1f} k instructions/callback")
    for variant in ("starlette", "memory"):
        if variant in per and variant + "-mounted" in per:
            added = per[variant + "-mounted"] - per[variant]
            print(f"mounting adds to {variant:9} {added / 1000:+7.1f} k instructions/callback")


def _apps(names: str) -> list[tuple[str, bool]]:
    """``--apps``' names (``starlette,memory-mounted``...) as (variant, mounted) pairs."""
    known = {_name(v, m): (v, m) for v, m in APPS}
    try:
        return [known[name] for name in names.split(",")]
    except KeyError as exc:
        sys.exit(f"--apps: unknown app {exc}; known: {', '.join(known)}")


def main() -> None:
    """Print each app's CPU µs (or, ``--callgrind``, instructions) per callback."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=12800, help="measured callbacks per app")
    parser.add_argument("--callgrind", action="store_true", help="instructions, under valgrind")
    parser.add_argument(
        "--apps", default=",".join(_name(v, m) for v, m in APPS), help="comma-separated"
    )
    parser.add_argument("--keep", help="--callgrind: copy the measured phases' dumps here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.callgrind:
        under_callgrind(args.requests, args.apps, args.keep)
    elif args.child:
        uvloop.run(run(args.requests, 1, callgrind_mark, _apps(args.apps)))
    else:
        uvloop.run(run(args.requests, 2, lambda label: None, _apps(args.apps)))


if __name__ == "__main__":
    main()
