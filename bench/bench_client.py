"""Client throughput: ``send_message`` req/s beside raw aiohttp and raw httpx posting the same.

The fake API (``_fake_api.py``, uvicorn with uvloop and httptools) runs in its own process pinned
to CPU 0; this process (the load) is pinned to CPU 1. Rounds are interleaved and medians
reported, because absolute numbers drift on these machines: only ratios measured in one run mean
anything. Every variant counts a call only when it got a 2xx and read the body; a run with any
other status or any socket error is refused (:class:`RunRefused`), never counted in a rate.

    .venv/bin/python bench/bench_client.py [--seconds 1.5] [--rounds 3] [--json]
    .venv/bin/python bench/bench_client.py --in-flight 2,4,8,16,20   # the max_in_flight sweep

``measure_client(url, seconds, rounds)`` is what ``run.py`` calls; :func:`summary` gives the
JSON shape (rates, ratios to raw aiohttp, targets, pass/fail).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import httpx
from _util import free_port, median, pin_to_cpu, row, server_process, write_rows

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


async def raw_aiohttp(url: str, callers: int, seconds: float) -> float:
    """aiohttp's ``ClientSession`` as its docs show it: the floor of what Python does here."""
    async with aiohttp.ClientSession() as session:
        target = url + PATH

        async def call() -> object:
            async with session.post(target, data=json.dumps(BODY), headers=HEADERS) as response:
                check_status(response.status)
                return json.loads(await response.read())

        return await drive(call, callers, seconds)


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


async def measure_client(url: str, seconds: float, rounds: int) -> dict[str, dict[int, float]]:
    """Interleaved rounds of every variant at 1 and 64 callers: the median req/s of each.

    Raises :class:`RunRefused` when any call of any variant failed.
    """
    plans = variants()
    rates: dict[str, dict[int, list[float]]] = {n: {c: [] for c in CALLERS} for n in plans}
    for _ in range(rounds):
        for callers in CALLERS:
            for name, variant in plans.items():
                rate = await timed(name, variant(url, callers, seconds))
                rates[name][callers].append(rate)
    return {n: {c: median(r) for c, r in by.items()} for n, by in rates.items()}


def summary(rates: dict[str, dict[int, float]]) -> dict[str, Any]:
    """The JSON the lead's table reads: req/s, each variant ÷ raw aiohttp, the SDK's targets."""
    floor = rates["aiohttp"]
    ratios = {n: {c: round(by[c] / floor[c], 3) for c in CALLERS} for n, by in rates.items()}
    return {
        "req_per_s": {n: {str(c): round(r) for c, r in by.items()} for n, by in rates.items()},
        "ratio_to_aiohttp": {n: {str(c): r for c, r in by.items()} for n, by in ratios.items()},
        "targets": {
            f"sdk ÷ aiohttp, {c} caller{'s' if c > 1 else ''}": {
                "value": ratios["sdk"][c],
                "target": f">= {TARGETS[c]:.2f}",
                "pass": ratios["sdk"][c] >= TARGETS[c],
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
            out.append(
                row(
                    group,
                    f"{label} ÷ aiohttp, {c} caller{'s' if c > 1 else ''}",
                    by[str(c)],
                    "ratio",
                    target="" if target is None else f">= {target:.2f}",
                    passed=None if target is None else by[str(c)] >= target,
                    note="" if name == "sdk" or "diagnosis" in name else "context",
                )
            )
    return out


def table(result: dict[str, Any]) -> str:
    """A plain-text table of the ratios, one line per variant, targets beside the SDK's."""
    lines = [f"{'client (÷ raw aiohttp)':38} {'1 caller':>10} {'64 callers':>11}"]
    for name, by in result["ratio_to_aiohttp"].items():
        cells = [f"{by[str(c)]:.2f}" for c in CALLERS]
        if name == "sdk":
            cells = [f"{cell} (≥{TARGETS[c]:.2f})" for cell, c in zip(cells, CALLERS, strict=True)]
        lines.append(f"{name:38} {cells[0]:>10} {cells[1]:>11}")
    floor = result["req_per_s"]["aiohttp"]
    lines.append(f"(raw aiohttp: {floor['1']} req/s at 1 caller, {floor['64']} at 64)")
    return "\n".join(lines)


async def sweep(url: str, limits: list[int], seconds: float, rounds: int) -> dict[str, float]:
    """req/s of 128 callers through each in-flight limit of the SDK."""
    results: dict[str, list[float]] = {f"sdk in_flight={n}": [] for n in limits}
    for _ in range(rounds):
        for n in limits:
            rate = await timed(f"in_flight={n}", sdk(url, 128, seconds, in_flight=n))
            results[f"sdk in_flight={n}"].append(rate)
    return {name: median(values) for name, values in results.items()}


def main() -> None:
    """Run the benchmark; print the table (and the JSON with ``--json``)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=1.5, help="per variant and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the JSON summary too")
    parser.add_argument("--in-flight", help="comma-separated max_in_flight values to sweep")
    parser.add_argument("--json-out", help="write the table's rows here (run.py reads them)")
    args = parser.parse_args()
    port = free_port()
    with server_process(["bench/_fake_api.py", str(port)], port, cpu=0) as (url, _):
        pin_to_cpu(1)
        if args.in_flight:
            limits = [int(n) for n in args.in_flight.split(",")]
            swept = asyncio.run(sweep(url, limits, args.seconds, args.rounds))
            print(json.dumps({name: round(rate) for name, rate in swept.items()}, indent=2))
            return
        result = summary(asyncio.run(measure_client(url, args.seconds, args.rounds)))
    write_rows(args.json_out, rows(result))
    print(table(result))
    if args.json:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
