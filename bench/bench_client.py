"""Client throughput: ``send_message`` req/s divided by raw httpx posting the same request.

The fake API runs in its own process pinned to CPU 0; this process (the load) is pinned to CPU 1.
Rounds are interleaved and medians reported, because absolute numbers drift on these machines:
only the ratios measured in one run mean anything.

    .venv/bin/python bench/bench_client.py [--requests 3000] [--rounds 3]
    .venv/bin/python bench/bench_client.py --in-flight 2,4,8,16,20   # the default's rationale
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable

import httpx
from _util import free_port, median, pin_to_cpu, server_process

from opensms_async import OpenSMSClient

SENDER = "tel:+32123456"
TO = "+33612345678"
BODY = {
    "outboundSMSMessageRequest": {
        "address": ["tel:+33612345678"],
        "senderAddress": SENDER,
        "outboundSMSTextMessage": {"message": "Hello"},
        "clientCorrelator": "c",
    }
}


async def drive(call: Callable[[], Awaitable[object]], callers: int, total: int) -> float:
    """Requests per second of ``callers`` tasks sharing ``total`` calls (bounded in count)."""
    left = total

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await call()

    started = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(callers))), timeout=300)
    return total / (time.perf_counter() - started)


async def raw_httpx(url: str, callers: int, total: int) -> float:
    """Plain httpx, a pool as large as the callers (what a naive caller writes)."""
    limits = httpx.Limits(max_connections=callers, max_keepalive_connections=callers)
    async with httpx.AsyncClient(limits=limits) as http:
        target = f"{url}/outbound/tel%3A%2B32123456/requests"
        headers = {"Authorization": "Bearer bench-key"}

        async def call() -> object:
            response = await http.post(target, json=BODY, headers=headers)
            return response.json()

        return await drive(call, callers, total)


async def sdk(url: str, callers: int, total: int, in_flight: int | None = None) -> float:
    """The SDK with its defaults (bounded in-flight requests), or ``in_flight`` of them."""
    client = (  # None: the client's own default
        OpenSMSClient(api_key="bench-key", base_url=url)
        if in_flight is None
        else OpenSMSClient(api_key="bench-key", base_url=url, max_in_flight=in_flight)
    )
    async with client:
        return await drive(lambda: client.send_message(SENDER, TO, "Hello"), callers, total)


async def sweep(url: str, limits: list[int], requests: int, rounds: int) -> dict[str, float]:
    """req/s of 128 callers through each in-flight limit, and of the naive pool of 128."""
    results: dict[str, list[float]] = {f"sdk in_flight={n}": [] for n in limits}
    results["raw c=128"] = []
    for _ in range(rounds):
        for n in limits:
            results[f"sdk in_flight={n}"].append(await sdk(url, 128, requests, n))
        results["raw c=128"].append(await raw_httpx(url, 128, requests))
    return {name: median(values) for name, values in results.items()}


async def measure(url: str, requests: int, rounds: int) -> dict[str, float]:
    """Interleaved rounds of each variant; the median req/s of each."""
    plans = {
        "raw c=1": (raw_httpx, 1, requests // 3),
        "sdk c=1": (sdk, 1, requests // 3),
        "raw c=64": (raw_httpx, 64, requests),
        "sdk c=64": (sdk, 64, requests),
        "raw c=128": (raw_httpx, 128, requests),
        "sdk c=128": (sdk, 128, requests),
    }
    results: dict[str, list[float]] = {name: [] for name in plans}
    for _ in range(rounds):
        for name, (variant, callers, total) in plans.items():
            results[name].append(await variant(url, callers, total))
    return {name: median(values) for name, values in results.items()}


def main() -> None:
    """Run the benchmark and print a JSON summary with the ratios."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--in-flight", help="comma-separated max_in_flight values to sweep at 128 callers instead"
    )
    args = parser.parse_args()
    port = free_port()
    with server_process(["bench/_fake_api.py", str(port)], port, cpu=0) as (url, _):
        pin_to_cpu(1)
        if args.in_flight:
            limits = [int(n) for n in args.in_flight.split(",")]
            swept = asyncio.run(sweep(url, limits, args.requests, args.rounds))
            print(json.dumps({name: round(rate) for name, rate in swept.items()}, indent=2))
            return
        rates = asyncio.run(measure(url, args.requests, args.rounds))
    summary = {
        "req_per_s": {name: round(rate) for name, rate in rates.items()},
        "sdk/raw c=1 (target >= 0.95)": round(rates["sdk c=1"] / rates["raw c=1"], 3),
        "sdk/raw c=64 (target >= 3.0 vs naive pool)": round(
            rates["sdk c=64"] / rates["raw c=64"], 3
        ),
        "sdk/raw c=128 (target >= 3.0 vs naive pool)": round(
            rates["sdk c=128"] / rates["raw c=128"], 3
        ),
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
