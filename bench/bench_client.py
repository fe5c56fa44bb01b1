"""Client throughput: ``send_message`` req/s beside raw aiohttp and raw httpx posting the same.

The fake API (``_fake_api.py``, uvicorn with uvloop and httptools) runs in its own process pinned
to CPU 0; this process (the load) is pinned to CPU 1. Every variant counts a call only when it got
a 2xx and read the body; a run with any other status or any socket error is refused
(:class:`RunRefused`), never counted in a rate.

How the ratios are kept steady on a shared machine (they measure the same thing as before, only
less noisily): each round runs every variant once, back to back, and a variant's ratio is taken
*within its round* (its req/s ÷ raw aiohttp's of the same round), the reported figure being the
median of those per-round ratios. On these 2 shared cores others' work comes in bursts of seconds
that hit one variant of a round and not the next: the medians of each variant's rates, taken
apart, paired a burst on one side with a quiet round on the other (raw aiohttp alone spanned
2,067 to 3,823 req/s at 64 callers in one run). The order of the variants is reversed every other
round so that none always runs first or last; the garbage of the variant before is collected
before each (``gc.collect()``), so no variant pays for another's; rounds are 2 s and 5 by default
(3 of 1.5 s before), so that a burst is one round of five. Beside each ratio: the same ratio by
CPU (the load process's CPU µs per call of raw aiohttp ÷ the variant's), which others' load
barely moves, and how long the load and the server waited for a CPU while runnable (``waited``):
a figure from rounds where they waited more than a few % is noisy.

    .venv/bin/python bench/bench_client.py [--seconds 2] [--rounds 5] [--json]
    .venv/bin/python bench/bench_client.py --in-flight 16,32,64 --callers 64  # max_in_flight sweep

``measure_client(url, seconds, rounds)`` is what ``run.py`` calls; :func:`summary` gives the
JSON shape (rates, ratios to raw aiohttp, targets, pass/fail).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import httpx
from _util import (
    cpu_wait_seconds,
    free_port,
    median,
    pin_to_cpu,
    row,
    server_process,
    write_rows,
)

from opensms_async import OpenSMSClient

SENDER = "tel:+32123456"
TO = "+33612345678"
PATH = "/outbound/tel%3A%2B32123456/requests"
BODY = {
    "outboundSMSMessageRequest": {
        "address": ["tel:+33612345678"],
        "senderAddress": SENDER,
        "outboundSMSTextMessage": {"message": "Hello"},
        "clientCorrelator": "c",
    }
}
HEADERS = {"Authorization": "Bearer bench-key"}
CALLERS = (1, 64)
TARGETS = {1: 0.60, 64: 0.50}
"""``send_message`` req/s divided by raw aiohttp's, by callers (PERFORMANCE.md)."""

Call = Callable[[], Awaitable[object]]


class RunRefused(RuntimeError):
    """A run met a non-2xx answer or a socket error: its rate means nothing."""


async def drive(call: Call, callers: int, seconds: float) -> float:
    """Requests per second of ``callers`` tasks calling for ``seconds`` (after a warm-up of a
    few calls each, so that connections are open): bounded in time, whatever the variant's speed.
    """

    async def worker(until: float | None, count: int) -> int:
        done = 0
        while (until is None and done < count) or (
            until is not None and time.perf_counter() < until
        ):
            await call()
            done += 1
        return done

    await asyncio.wait_for(asyncio.gather(*(worker(None, 3) for _ in range(callers))), 60)
    started = time.perf_counter()
    until = started + seconds
    done = await asyncio.wait_for(asyncio.gather(*(worker(until, 0) for _ in range(callers))), 60)
    return sum(done) / (time.perf_counter() - started)


async def timed(name: str, run: Awaitable[float]) -> float:
    """``run()``'s rate, or :class:`RunRefused` naming the variant and what went wrong."""
    try:
        return await run
    except RunRefused:
        raise
    except Exception as exc:  # a socket error, a timeout, a typed SDK error: all refuse the run
        raise RunRefused(f"{name}: {type(exc).__name__}: {exc}") from exc


def check_status(status: int) -> None:
    """Refuse the run on any answer but a 2xx."""
    if not 200 <= status < 300:
        raise RunRefused(f"answered {status}")


# --- the variants ------------------------------------------------------------------------------


def aiohttp_call(session: aiohttp.ClientSession, url: str) -> Callable[[], Awaitable[object]]:
    """One send through ``session`` as aiohttp's docs show it (the yardstick of every client
    benchmark here, ``diag_client_cost.py``'s too)."""
    target = url + PATH

    async def call() -> object:
        async with session.post(target, data=json.dumps(BODY), headers=HEADERS) as response:
            check_status(response.status)
            return json.loads(await response.read())

    return call


async def raw_aiohttp(url: str, callers: int, seconds: float) -> float:
    """aiohttp's ``ClientSession`` as its docs show it: the floor of what Python does here."""
    async with aiohttp.ClientSession() as session:
        return await drive(aiohttp_call(session, url), callers, seconds)


async def raw_httpx(url: str, callers: int, seconds: float, pool: int | None = None) -> float:
    """Plain httpx: a pool as large as the callers (what a naive caller writes), or ``pool``
    connections behind a semaphore of as many (httpx tuned as PERFORMANCE.md says)."""
    size = pool or callers
    limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
    gate = asyncio.Semaphore(size)
    async with httpx.AsyncClient(limits=limits) as http:
        target = url + PATH

        async def call() -> object:
            async with gate:
                response = await http.post(target, json=BODY, headers=HEADERS)
            check_status(response.status_code)
            return response.json()

        return await drive(call, callers, seconds)


async def sdk(
    url: str,
    callers: int,
    seconds: float,
    *,
    in_flight: int | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> float:
    """The SDK with its defaults, or ``in_flight`` requests in flight, or over ``transport``."""
    options: dict[str, Any] = {}
    if in_flight is not None:
        options["max_in_flight"] = in_flight
    if transport is not None:
        options["transport"] = transport
    client = OpenSMSClient(api_key="bench-key", base_url=url, max_retries=0, **options)
    async with client:
        return await drive(lambda: client.send_message(SENDER, TO, "Hello"), callers, seconds)


async def sdk_httpx_aiohttp(url: str, callers: int, seconds: float) -> float:
    """Diagnosis: the SDK over httpx-aiohttp's ``AiohttpTransport`` (an optional package)."""
    from httpx_aiohttp import AiohttpTransport

    return await sdk(url, callers, seconds, transport=AiohttpTransport())


async def sdk_httpcore(url: str, callers: int, seconds: float) -> float:
    """Diagnosis: the SDK over httpx's own transport (httpcore), as before issue 12."""
    return await sdk(url, callers, seconds, transport=httpx.AsyncHTTPTransport())


Variant = Callable[[str, int, float], Awaitable[float]]


def variants() -> dict[str, Variant]:
    """The variants measured, by name; diagnosis-only ones are labelled as such."""
    found: dict[str, Variant] = {
        "aiohttp": raw_aiohttp,
        "httpx": raw_httpx,
        "httpx pool=8": lambda url, c, s: raw_httpx(url, c, s, pool=8),
        "sdk": sdk,
        "sdk over httpcore (diagnosis)": sdk_httpcore,
    }
    try:
        import httpx_aiohttp  # noqa: F401
    except ImportError:
        return found
    found["sdk over httpx-aiohttp (diagnosis)"] = sdk_httpx_aiohttp
    return found


class Sample:
    """One variant's round: req/s, the load's CPU µs per call, and the share of the round the
    load and the server spent runnable but waiting for a CPU."""

    __slots__ = ("cpu_per_call", "rate", "waited")

    def __init__(self, rate: float, cpu_per_call: float, waited: float) -> None:
        self.rate = rate
        self.cpu_per_call = cpu_per_call
        self.waited = waited


async def sample(name: str, run: Awaitable[float], server_pid: int | None) -> Sample:
    """``run``'s rate, its CPU per call (set-up included: the same few hundred calls of warm-up
    for every variant), and the waits for a CPU of this process and the server meanwhile."""
    pids = [os.getpid()] + ([server_pid] if server_pid is not None else [])
    waited = [cpu_wait_seconds(pid) for pid in pids]
    cpu, started = time.process_time(), time.perf_counter()
    rate = await timed(name, run)
    cpu, took = time.process_time() - cpu, time.perf_counter() - started
    share = max(cpu_wait_seconds(pid) - w for pid, w in zip(pids, waited, strict=True)) / took
    return Sample(rate, 1e6 * cpu / max(rate * took, 1.0), share)


Samples = dict[str, dict[int, list[Sample]]]


async def measure_samples(
    url: str, seconds: float, rounds: int, server_pid: int | None = None
) -> Samples:
    """Every variant at 1 and 64 callers, ``rounds`` times: the samples of each, by round.

    A round runs each variant once, the order reversed every other round; the garbage of the
    variant before is collected first. Raises :class:`RunRefused` when any call failed.
    """
    plans = variants()
    names = list(plans)
    samples: Samples = {n: {c: [] for c in CALLERS} for n in plans}
    for index in range(rounds):
        for callers in CALLERS:
            for name in names if index % 2 == 0 else reversed(names):
                gc.collect()
                done = await sample(name, plans[name](url, callers, seconds), server_pid)
                samples[name][callers].append(done)
    return samples


async def measure_client(
    url: str, seconds: float, rounds: int, server_pid: int | None = None
) -> dict[str, Any]:
    """Interleaved rounds of every variant at 1 and 64 callers; :func:`summary` of them."""
    return summary(await measure_samples(url, seconds, rounds, server_pid))


def summary(samples: Samples) -> dict[str, Any]:
    """The JSON the lead's table reads: median req/s, the median of each round's ratio to raw
    aiohttp, the same by CPU per call, the most any round waited for a CPU, the SDK's targets."""
    floor = samples["aiohttp"]

    def ratios(name: str, callers: int, by: str) -> list[float]:
        pairs = zip(floor[callers], samples[name][callers], strict=True)
        if by == "rate":
            return [mine.rate / base.rate for base, mine in pairs]
        return [base.cpu_per_call / mine.cpu_per_call for base, mine in pairs]

    def each(figure: Callable[[str, int], Any]) -> dict[str, dict[str, Any]]:
        return {n: {str(c): figure(n, c) for c in CALLERS} for n in samples}

    ratio = each(lambda n, c: round(median(ratios(n, c, "rate")), 3))
    return {
        "req_per_s": each(lambda n, c: round(median([s.rate for s in samples[n][c]]))),
        "ratio_to_aiohttp": ratio,
        "ratio_rounds": each(lambda n, c: [round(r, 2) for r in ratios(n, c, "rate")]),
        "ratio_by_cpu": each(lambda n, c: round(median(ratios(n, c, "cpu")), 3)),
        "cpu_us_per_call": each(
            lambda n, c: round(median([s.cpu_per_call for s in samples[n][c]]))
        ),
        "waited_max": each(lambda n, c: round(max(s.waited for s in samples[n][c]), 3)),
        "targets": {
            f"sdk ÷ aiohttp, {c} caller{'s' if c > 1 else ''}": {
                "value": ratio["sdk"][str(c)],
                "target": f">= {TARGETS[c]:.2f}",
                "pass": ratio["sdk"][str(c)] >= TARGETS[c],
            }
            for c in CALLERS
        },
    }


def rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """``run.py``'s rows: each variant ÷ raw aiohttp, the SDK's beside its targets."""
    group = "client: send_message req/s ÷ raw aiohttp ClientSession, same local fake API"
    floor = result["req_per_s"]["aiohttp"]
    out = [
        row(
            group,
            f"raw aiohttp, {c} caller{'s' if c > 1 else ''}",
            floor[str(c)],
            "req/s",
            note="the floor of what Python does here",
        )
        for c in CALLERS
    ]
    for name, by in result["ratio_to_aiohttp"].items():
        if name == "aiohttp":
            continue
        for c in CALLERS:
            target = TARGETS[c] if name == "sdk" else None
            label = "the SDK, defaults" if name == "sdk" else name
            kind = "" if name == "sdk" or "diagnosis" in name else "context; "
            out.append(
                row(
                    group,
                    f"{label} ÷ aiohttp, {c} caller{'s' if c > 1 else ''}",
                    by[str(c)],
                    "ratio",
                    target="" if target is None else f">= {target:.2f}",
                    passed=None if target is None else by[str(c)] >= target,
                    note=f"{kind}{_detail(result, name, c)}",
                )
            )
    return out


def _detail(result: dict[str, Any], name: str, callers: int) -> str:
    """The note beside a ratio: its rounds, the ratio by CPU, and the most a round waited."""
    key = str(callers)
    rounds = "/".join(f"{r:.2f}" for r in result["ratio_rounds"][name][key])
    by_cpu = result["ratio_by_cpu"][name][key]
    waited = max(result["waited_max"][name][key], result["waited_max"]["aiohttp"][key])
    return f"rounds {rounds}; by CPU {by_cpu:.2f}; waited for a CPU ≤ {waited:.0%}"


def table(result: dict[str, Any]) -> str:
    """A plain-text table of the ratios, one line per variant, targets beside the SDK's; each
    round's ratio, the ratio by CPU and the most a round waited for a CPU after it."""
    lines = [f"{'client (÷ raw aiohttp)':38} {'1 caller':>14} {'64 callers':>14}  details"]
    for name, by in result["ratio_to_aiohttp"].items():
        cells = [f"{by[str(c)]:.2f}" for c in CALLERS]
        if name == "sdk":
            cells = [f"{cell} (≥{TARGETS[c]:.2f})" for cell, c in zip(cells, CALLERS, strict=True)]
        details = " | ".join(_detail(result, name, c) for c in CALLERS)
        lines.append(f"{name:38} {cells[0]:>14} {cells[1]:>14}  {details}")
    floor = result["req_per_s"]["aiohttp"]
    cpu = result["cpu_us_per_call"]
    lines.append(
        f"(raw aiohttp: {floor['1']} req/s at 1 caller, {floor['64']} at 64; CPU per call of "
        f"raw aiohttp / the SDK: {cpu['aiohttp']['1']} / {cpu['sdk']['1']} µs at 1 caller, "
        f"{cpu['aiohttp']['64']} / {cpu['sdk']['64']} µs at 64)"
    )
    return "\n".join(lines)


async def sweep(
    url: str, limits: list[int], seconds: float, rounds: int, callers: int
) -> dict[str, dict[str, float]]:
    """req/s and CPU µs per call of ``callers`` callers through each in-flight limit of the
    SDK: medians of interleaved rounds, the order reversed every other round."""
    found: dict[int, list[Sample]] = {n: [] for n in limits}
    for index in range(rounds):
        for n in limits if index % 2 == 0 else reversed(limits):
            gc.collect()
            run = sdk(url, callers, seconds, in_flight=n)
            found[n].append(await sample(f"in_flight={n}", run, None))
    return {
        f"sdk in_flight={n}": {
            "req_per_s": round(median([s.rate for s in got])),
            "cpu_us_per_call": round(median([s.cpu_per_call for s in got])),
        }
        for n, got in found.items()
    }


def main() -> None:
    """Run the benchmark; print the table (and the JSON with ``--json``)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0, help="per variant and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the JSON summary too")
    parser.add_argument("--in-flight", help="comma-separated max_in_flight values to sweep")
    parser.add_argument("--callers", type=int, default=128, help="callers of the sweep")
    parser.add_argument("--json-out", help="write the table's rows here (run.py reads them)")
    args = parser.parse_args()
    port = free_port()
    with server_process(["bench/_fake_api.py", str(port)], port, cpu=0) as (url, server_pid):
        pin_to_cpu(1)
        if args.in_flight:
            limits = [int(n) for n in args.in_flight.split(",")]
            swept = asyncio.run(sweep(url, limits, args.seconds, args.rounds, args.callers))
            print(json.dumps(swept, indent=2))
            return
        result = asyncio.run(measure_client(url, args.seconds, args.rounds, server_pid))
    write_rows(args.json_out, rows(result))
    print(table(result))
    if args.json:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
