"""Inbound receiver throughput and the memory of dedupe.

1. **Callbacks/s** of the inbound receiver (``create_receiver_app(None, inbox=...)``) with one
   live ``messages()`` consumer, divided by a bare Starlette route that reads the body and
   answers 204 (targets: memory >= 0.80, SQLite >= 0.65). The harness is ``bench_receiver.py``'s:
   each variant of ``_inbound_apps.py`` in its own uvicorn process (uvloop, httptools) pinned to
   CPU 0, ``wrk`` (one thread, 64 connections) on CPU 1, interleaved rounds, a fresh server and
   store per round and variant, medians and the median of per-round ratios. The load: BICS's
   ``InboundSmsMessage`` bodies (about 250 bytes) with the token as ``Authorization: Bearer``,
   each with a new ``messageId``; one request in ten is a part of a two-part message (its other
   part is the next request), so the store joins too. The receivers report how many messages
   they logged and their consumer got: every callback must be recorded and yielded.
2. **Bytes per remembered messageId**: a ``MemoryInboundStore`` fed ``--ids`` (default 1M)
   single messages of BICS's form (uuid4 ids), its log kept to one message so that only dedupe
   is counted (tracemalloc; target <= 150 B); the same for SQLite (pages of the ids table and
   its index, from ``dbstat``) and Redis (``MEMORY USAGE`` of the ids' sorted set) with
   ``--store-ids`` (default 100k) ids, when they are available.

    .venv/bin/python bench/bench_inbound.py [--duration 5] [--rounds 3] [--ids 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path

from _inbound_apps import INBOUND_PATH, TOKEN
from _util import cpu_seconds, free_port, median, redis_server, server_process
from bench_receiver import WRK_DONE, wrk

from opensms_async._reassembly import Part
from opensms_async.stores.inbound import (
    InboundStore,
    MemoryInboundStore,
    SQLiteInboundStore,
    open_inbound_store,
)

HERE = Path(__file__).resolve().parent
TARGETS = {"memory": 0.80, "sqlite": 0.65}
TARGET_BYTES = 150
RETENTION = 4 * 86400.0

_LUA = (
    r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json; charset=UTF-8"
wrk.headers["Authorization"] = "Bearer TOKEN"
local tag = "m"
function init(args)
  if args[1] then tag = args[1] end
end
local head = '{"InboundSmsMessage":{"dateTime":"2021-11-24T09:13:40.639",'
  .. '"destinationAddress":"32470000000","senderAddress":"3247%07d",'
  .. '"messageId":"%s-%08d-%s","message":"Reply %d: yes please, call me back tomorrow"'
local n = -1
function request()
  n = n + 1
  local b
  local k = n % 10
  if k == 0 or k == 1 then  -- the two parts of one message, one after the other
    b = string.format(head .. ',"udhMessageId":%d,"concatPart":%d,"concatTotal":2}}',
                      math.floor(n / 10) % 10000000, tag, n, "part", n,
                      math.floor(n / 10) % 256, k + 1)
  else
    b = string.format(head .. '}}', n % 10000000, tag, n, "whole", n)
  end
  return wrk.format(nil, "PATH", nil, b)
end
"""
    + WRK_DONE
)


def lua_script() -> str:
    """The wrk script, with the token and the path filled in."""
    return _LUA.replace("TOKEN", TOKEN).replace("PATH", INBOUND_PATH)


def run_variant(
    variant: str, script: str, workdir: str, args: argparse.Namespace
) -> dict[str, float]:
    """One round of one variant in a fresh server: callbacks/s, server CPU per callback, errors,
    messages logged and consumed per callback."""
    port = free_port()
    stats = os.path.join(workdir, "stats.json")
    argv = [str(HERE / "_inbound_apps.py"), variant, str(port)]
    if variant == "sqlite":
        argv.append(tempfile.mkdtemp(dir=workdir))
    argv += ["--stats", stats]
    # wrk's URL carries the path: bench_receiver.wrk appends its own callback path, so the
    # script's request() sets the inbound path and wrk's is ignored.
    with server_process(argv, port) as (url, pid):
        warm = wrk(url, script, tag="w", duration=args.warmup, connections=args.connections)
        cpu = cpu_seconds(pid)
        run = wrk(url, script, tag="r", duration=args.duration, connections=args.connections)
        cpu = cpu_seconds(pid) - cpu
    errors = sum(run[k] for k in ("connect", "read", "write", "status", "timeout"))
    result = {
        "rate": run["requests"] / (run["duration_us"] / 1e6),
        "cpu_us": cpu / max(run["requests"], 1) * 1e6,
        "errors": float(errors + warm["status"]),
    }
    if os.path.exists(stats):
        with open(stats) as file:
            counts = json.load(file)
        os.remove(stats)
        callbacks = warm["requests"] + run["requests"]
        result["logged_per_callback"] = int(counts["last_cursor"] or 0) / callbacks
        result["consumed_per_callback"] = counts["consumed"] / callbacks
    return result


def measure(args: argparse.Namespace) -> dict[str, list[dict[str, float]]]:
    """Interleaved rounds over every variant."""
    names = ["starlette", "memory", "sqlite"]
    results: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory(prefix="opensms-bench-inbound-") as workdir:
        script = os.path.join(workdir, "inbound.lua")
        Path(script).write_text(lua_script())
        for round_no in range(args.rounds):
            order = names[round_no % len(names) :] + names[: round_no % len(names)]
            for name in order:
                results[name].append(run_variant(name, script, workdir, args))
    return results


def summarise(results: dict[str, list[dict[str, float]]]) -> dict[str, object]:
    """Medians, ratios to the bare Starlette route, sanity figures."""
    rates = {name: median([r["rate"] for r in runs]) for name, runs in results.items()}
    base = rates["starlette"]
    summary: dict[str, object] = {
        "callbacks_per_s": {name: round(rate) for name, rate in rates.items()},
        "per_round": {name: [round(r["rate"]) for r in runs] for name, runs in results.items()},
    }
    for name, target in TARGETS.items():
        summary[f"{name}/starlette (target >= {target})"] = round(rates[name] / base, 3)
        paired = [
            r["rate"] / s["rate"] for r, s in zip(results[name], results["starlette"], strict=True)
        ]
        summary[f"{name}/starlette, median of per-round ratios"] = round(median(paired), 3)
    cpu = {name: median([r["cpu_us"] for r in runs]) for name, runs in results.items()}
    summary["server_cpu_us_per_callback"] = {name: round(us, 1) for name, us in cpu.items()}
    for name in TARGETS:
        summary[f"{name}/starlette by server CPU"] = round(cpu["starlette"] / cpu[name], 3)
    summary["errors_or_non_2xx"] = {
        n: int(sum(r["errors"] for r in rs)) for n, rs in results.items()
    }
    for key in ("logged_per_callback", "consumed_per_callback"):
        summary[f"{key} (0.9: one in ten callbacks is a first part)"] = {
            name: round(median([r[key] for r in runs]), 3)
            for name, runs in results.items()
            if runs and key in runs[0]
        }
    return summary


# --- bytes per remembered messageId ----------------------------------------------------------


def parts(count: int) -> list[Part]:
    """``count`` single messages of BICS's form: a uuid4 id each."""
    return [
        Part(str(uuid.uuid4()), "tel:+32470000001", "tel:+32470000000", "x") for _ in range(count)
    ]


async def fill(store: InboundStore, ids: int, batch: int = 1000) -> None:
    """Receive ``ids`` single messages, ``batch`` per call, one second apart per batch."""
    now = time.time()
    for start in range(0, ids, batch):
        await store.receive(parts(min(batch, ids - start)), now=now + start / batch,
                            timeout=600.0, retention=RETENTION)  # fmt: skip


async def memory_bytes_per_id(ids: int) -> dict[str, object]:
    """tracemalloc's growth per id of a memory store remembering ``ids`` ids."""
    store = MemoryInboundStore(max_messages=1)
    await store.open()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    await fill(store, ids)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert store.remembered == ids
    per_id = (after - before) / ids
    await store.aclose()
    return {f"memory_bytes_per_id at {ids} ids (target <= {TARGET_BYTES})": round(per_id, 1)}


async def sqlite_bytes_per_id(ids: int, folder: str) -> dict[str, object]:
    """Pages of the ids table and its index per id (``dbstat``), when SQLite has it."""
    path = os.path.join(folder, "ids.db")
    async with SQLiteInboundStore(path) as store:
        await fill(store, ids)
    with sqlite3.connect(path) as conn:
        try:
            sql = "SELECT sum(pgsize) FROM dbstat WHERE name IN (?, ?)"
            row = conn.execute(sql, ("inbound_seen", "inbound_seen_forget")).fetchone()
        except sqlite3.OperationalError:
            return {"sqlite_bytes_per_id": "dbstat not available"}
    return {f"sqlite_bytes_per_id at {ids} ids (table and index pages)": round(row[0] / ids, 1)}


async def redis_bytes_per_id(ids: int, url: str) -> dict[str, object]:
    """``MEMORY USAGE`` of the ids' sorted set per id."""
    import redis.asyncio as aioredis

    store = open_inbound_store(url)
    await store.open()
    try:
        await fill(store, ids)
    finally:
        await store.aclose()
    client = aioredis.Redis.from_url(url)
    try:
        used = await client.memory_usage("opensms:inbound:seen", samples=0)
    finally:
        await client.aclose()
    return {f"redis_bytes_per_id at {ids} ids (MEMORY USAGE)": round((used or 0) / ids, 1)}


async def bytes_per_id(args: argparse.Namespace) -> dict[str, object]:
    """Every store's bytes per remembered id."""
    figures = await memory_bytes_per_id(args.ids)
    with tempfile.TemporaryDirectory(prefix="opensms-bench-ids-") as folder:
        figures |= await sqlite_bytes_per_id(args.store_ids, folder)
        if shutil.which("redis-server"):
            with redis_server(folder) as url:
                figures |= await redis_bytes_per_id(args.store_ids, url)
    return figures


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of warm-up per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--ids", type=int, default=1_000_000, help="ids for the memory figure")
    parser.add_argument("--store-ids", type=int, default=100_000, help="ids for SQLite and Redis")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    return parser.parse_args()


def main() -> None:
    """Run both parts and print a JSON summary."""
    args = parse_args()
    summary: dict[str, object] = {}
    if not args.skip_throughput:
        if shutil.which("wrk") is None:
            sys.exit("wrk is missing: apt-get install -y wrk (bench/run.py does it when root)")
        summary |= summarise(measure(args))
    if not args.skip_memory:
        summary |= asyncio.run(bytes_per_id(args))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
