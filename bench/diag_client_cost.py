"""Diagnosis: the client process's own work per ``send_message``, beside raw aiohttp's per post.

    .venv/bin/python bench/diag_client_cost.py [--callers 64] [--requests 6400] [--rounds 3]
        [--variants aiohttp,sdk] [--against CHECKOUT] [--callgrind]

The fake API of ``bench_client.py`` runs in its own process pinned to CPU 0; this one, pinned to
CPU 1, runs each variant for a fixed number of calls (``--requests`` in all, shared by
``--callers`` tasks) after a warm-up of 3 calls per caller. Variants: ``aiohttp`` (the
yardstick of ``bench_client.py``, as it posts), ``sdk`` (``send_message`` with the defaults,
``max_retries=0`` as there), ``sdk-inflight=N`` (diagnosis: ``max_in_flight=N``), and with
``--against CHECKOUT`` the same SDK variants of another checkout's package (copied under
another name and imported in the same process: ``git worktree add /tmp/old main``).

By default it prints the CPU µs per call of each (``time.process_time`` of the measured calls),
rounds interleaved, the order reversed every other round, medians. ``--callgrind`` runs it under
valgrind's callgrind instead (the server is not under it) and prints the instructions per call of
each measured phase (``callgrind_control --dump`` around it): whatever the machine's load, the
same on every run give or take how many answers one loop pass finds ready, so a difference of a
few percent between two variants means something. Callgrind slows this process some 50 times, so
the server always keeps up: the figures are those of a client that is the bottleneck, as at 64
callers in ``bench_client.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import glob
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
from _util import callgrind_dump, callgrind_mark, free_port, median, pin_to_cpu, server_process
from bench_client import SENDER, TO, aiohttp_call

import opensms_async

Mark = Callable[[str], None]


def load_copy(checkout: str, folder: str) -> ModuleType:
    """The package of another checkout, copied as ``opensms_against`` and imported."""
    shutil.copytree(Path(checkout) / "opensms_async", Path(folder) / "opensms_against")
    sys.path.insert(0, folder)
    return importlib.import_module("opensms_against")


async def run_calls(call: Callable[[], Awaitable[object]], callers: int, requests: int) -> None:
    """``requests`` calls shared by ``callers`` tasks, each calling in turn."""
    each, rest = divmod(requests, callers)

    async def worker(count: int) -> None:
        for _ in range(count):
            await call()

    await asyncio.gather(*(worker(each + (i < rest)) for i in range(callers)))


async def measured(
    call: Callable[[], Awaitable[object]], callers: int, requests: int, name: str, mark: Mark
) -> float:
    """CPU µs per call of ``requests`` calls after the warm-up; ``mark`` dumps around them."""
    await run_calls(call, callers, 3 * callers)
    gc.collect()
    mark(f"before {name}")
    cpu = time.process_time()
    await run_calls(call, callers, requests)
    cpu = time.process_time() - cpu
    mark(f"measured {name}")
    return 1e6 * cpu / requests


async def raw_aiohttp(url: str, callers: int, requests: int, mark: Mark) -> float:
    """``bench_client.py``'s yardstick: a ``ClientSession`` with its defaults, as its docs show."""
    async with aiohttp.ClientSession() as session:
        return await measured(aiohttp_call(session, url), callers, requests, "aiohttp", mark)


def sdk_variant(package: ModuleType, name: str, in_flight: int | None) -> Any:
    """A variant calling ``package``'s ``send_message`` (``max_in_flight=in_flight`` if given)."""

    async def run(url: str, callers: int, requests: int, mark: Mark) -> float:
        options: dict[str, Any] = {} if in_flight is None else {"max_in_flight": in_flight}
        client = package.OpenSMSClient(api_key="bench-key", base_url=url, max_retries=0, **options)
        async with client:
            return await measured(
                lambda: client.send_message(SENDER, TO, "Hello"), callers, requests, name, mark
            )

    return run


def plans(names: list[str], against: ModuleType | None) -> dict[str, Any]:
    """The variants asked for, by name; ``against:`` ones use the other checkout's package."""
    found: dict[str, Any] = {}
    for name in names:
        if name == "aiohttp":
            found[name] = raw_aiohttp
            continue
        base, _, limit = name.partition("-inflight=")
        if base != "sdk":
            raise SystemExit(f"unknown variant {name!r}")
        in_flight = int(limit) if limit else None
        found[name] = sdk_variant(opensms_async, name, in_flight)
        if against is not None:
            found[f"against:{name}"] = sdk_variant(against, f"against:{name}", in_flight)
    return found


async def measure(
    url: str, variants: dict[str, Any], args: argparse.Namespace, mark: Mark
) -> dict[str, list[float]]:
    """CPU µs per call of every variant, ``args.rounds`` interleaved rounds."""
    found: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for index in range(args.rounds):
        for name in names if index % 2 == 0 else reversed(names):
            found[name].append(await variants[name](url, args.callers, args.requests, mark))
    return found


def child(args: argparse.Namespace, mark: Mark) -> dict[str, list[float]]:
    """Serve the fake API, run the variants in this process (pinned to CPU 1)."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="diag-client-") as folder:
        against = load_copy(args.against, folder) if args.against else None
        variants = plans(args.variants.split(","), against)
        with server_process(["bench/_fake_api.py", str(port)], port, cpu=0) as (url, _):
            pin_to_cpu(1)
            return asyncio.run(measure(url, variants, args, mark))


def under_callgrind(args: argparse.Namespace) -> None:
    """Run this script under callgrind, one dump per phase; print instructions per call."""
    if shutil.which("valgrind") is None:
        sys.exit("--callgrind needs valgrind (apt-get install valgrind)")
    with tempfile.TemporaryDirectory(prefix="diag-client-cg-") as folder:
        out = os.path.join(folder, "cg.out")
        argv = ["valgrind", "--tool=callgrind", "--dump-instr=no", f"--callgrind-out-file={out}"]
        argv += [sys.executable, __file__, "--child", *sys.argv[1:]]
        argv.remove("--callgrind")
        subprocess.run(argv, check=True, capture_output=True)  # noqa: S603
        dumps = sorted(glob.glob(out + ".*"), key=lambda p: int(p.rsplit(".", 1)[1]))
        counts = [callgrind_dump(path) for path in dumps]
        if args.keep:
            for path in dumps:
                shutil.copy(path, args.keep)
    per: dict[str, list[float]] = {}
    for trigger, cost in counts:
        if trigger.startswith("measured "):
            per.setdefault(trigger.removeprefix("measured "), []).append(cost / args.requests)
    report(per, "k instructions/call", 1e-3)


def report(per: dict[str, list[float]], unit: str, scale: float) -> None:
    """Each variant's median (and rounds), and its extra over raw aiohttp's."""
    floor = median(per["aiohttp"]) if "aiohttp" in per else None
    for name, values in per.items():
        mid = median(values)
        rounds = "/".join(f"{v * scale:.1f}" for v in values)
        extra = "" if floor is None or name == "aiohttp" else f"  (+{(mid - floor) * scale:.1f})"
        print(f"{name:28} {mid * scale:8.1f} {unit}{extra}  rounds {rounds}")
    for name in per:
        if name.startswith("against:") and name.removeprefix("against:") in per:
            this, old = median(per[name.removeprefix("against:")]), median(per[name])
            line = f"{name.removeprefix('against:')}: this ÷ against {this / old:.3f}"
            if floor is not None:
                line += f"; own work (minus aiohttp's) {(this - floor) / (old - floor):.3f}"
            print(line)


def main() -> None:
    """Print each variant's CPU µs (or, ``--callgrind``, instructions) per call."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--callers", type=int, default=64)
    parser.add_argument("--requests", type=int, default=6400, help="measured calls per variant")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variants", default="aiohttp,sdk", help="aiohttp, sdk, sdk-inflight=N")
    parser.add_argument("--against", help="another checkout, measured in the same process")
    parser.add_argument("--callgrind", action="store_true", help="instructions, under valgrind")
    parser.add_argument("--keep", help="with --callgrind: copy the dumps into this folder")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.callgrind:
        under_callgrind(args)
    elif args.child:
        child(args, callgrind_mark)
    else:
        report(child(args, lambda label: None), "µs CPU/call", 1.0)


if __name__ == "__main__":
    main()
