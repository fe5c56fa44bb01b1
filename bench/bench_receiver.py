"""Receiver throughput: callbacks/s of the real receiver divided by a bare Starlette route.

Each variant of ``_receiver_apps.py`` (``raw`` ASGI for context, the bare ``starlette`` route that
is the yardstick, the receiver over ``memory`` and over ``sqlite``; ``redis`` with ``--redis URL``;
``null``, a store that records nothing, with ``--variants``, to see what the merge costs)
runs in its own uvicorn process (uvloop, httptools, one worker) pinned to CPU 0; ``wrk`` (one
thread, 64 connections) is pinned to CPU 1. Rounds are interleaved, a fresh server (and store)
per round and variant, a short warm-up before each measured run; medians are reported, because
absolute numbers drift on these machines: only ratios measured in one run mean anything.

The load: every request POSTs a BICS ``deliveryInfoList`` callback (compact JSON, 255-256 bytes)
with the security token in the body. A counter in the Lua script makes every callback count:
even requests are the first sighting of a new recipient (``DeliveredToNetwork``: a new state and an
event), odd requests bring the recipient first seen about 2000 callbacks earlier to
``DeliveredToTerminal`` (a merge that advances the state: an update and an event). Ten recipients
share a request id (so consecutive callbacks often share a resource URL, as the callbacks of a
bulk send do). So half the callbacks insert and half merge, and each one logs an event; the
benchmark reports the store's event count afterwards (``events_per_callback`` is a little over 1:
the callbacks still in flight when wrk stops are stored but not counted). The Starlette route gets
the same bodies. No consumer iterates ``events()`` during the run.

Besides callbacks/s, the summary gives each round's own ratio (their median is steadier than the
ratio of the medians when the machine drifts) and the server's CPU time per callback (read from
``/proc``; the server is CPU-bound, so its ratio tracks the throughput ratio). The Redis variant
takes a fresh key prefix per round; redis-server runs wherever the OS puts it.

    .venv/bin/python bench/bench_receiver.py [--duration 5] [--rounds 3] [--redis redis://...]

Needs ``wrk`` (``apt-get install wrk``; ``bench/run.py`` installs it when missing).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from _receiver_apps import CALLBACK_PATH, TOKEN
from _util import free_port, median, pin_to_cpu, server_process

HERE = Path(__file__).resolve().parent
LAG = 1000
"""How many callbacks after its first sighting a recipient gets its final status."""

# %% is a literal % for string.format; the body is compact JSON as a sender would post it.
_LUA = r"""
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

local tag = "m"
function init(args)
  if args[1] then tag = args[1] end
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local body = '{"deliveryInfoList":{"securityToken":"TOKEN",'
  .. '"resourceURL":"http://h/outbound/tel%%3A%%2B32123/requests/%s%d-%07d/deliveryInfos",'
  .. '"smsParts":1,"deliveryInfo":[{"address":"tel:+336%08d","deliveryStatus":"%s",'
  .. '"deliveryStatusCode":%d}]}}'
local n = -1

function request()
  n = n + 1
  local k, status, code
  if n % 2 == 0 then
    k, status, code = n / 2, "DeliveredToNetwork", 1
  else
    k, status, code = (n - 1) / 2 - LAG, "DeliveredToTerminal", 2
    if k < 0 then k = 50000000 + n end  -- the first ones: a fresh recipient
  end
  local b = string.format(body, tag, tid, math.floor(k / 10), k, status, code)
  return wrk.format(nil, "PATH", nil, b)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,'
    .. '"status":%d,"timeout":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def lua_script() -> str:
    """The wrk script, with the token, the path and the lag filled in."""
    return _LUA.replace("TOKEN", TOKEN).replace("PATH", CALLBACK_PATH).replace("- LAG", f"- {LAG}")


def wrk(url: str, script: str, *, tag: str, duration: int, connections: int) -> dict[str, int]:
    """Run wrk pinned to CPU 1 against ``url``; its summary (requests, duration, errors)."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "5s"]
    argv += ["-s", script, url + CALLBACK_PATH, "--", tag]
    done = subprocess.run(  # noqa: S603
        argv, capture_output=True, text=True, preexec_fn=lambda: pin_to_cpu(1)
    )
    if done.returncode != 0:  # wrk's own words (e.g. a Lua error) say more than the exit code
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    line = next(line for line in done.stdout.splitlines() if line.startswith("WRK_JSON "))
    result: dict[str, int] = json.loads(line.removeprefix("WRK_JSON "))
    return result


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_variant(
    variant: str, arg: str | None, script: str, workdir: str, args: argparse.Namespace
) -> dict[str, float]:
    """One round of one variant in a fresh server: callbacks/s, server CPU per callback, errors,
    events per callback."""
    port = free_port()
    stats = os.path.join(workdir, "stats.json")
    argv = [str(HERE / "_receiver_apps.py"), variant, str(port)]
    argv += ([arg] if arg else []) + ["--stats", stats]
    with server_process(argv, port) as (url, pid):
        warm = wrk(url, script, tag="w", duration=args.warmup, connections=args.connections)
        cpu = cpu_seconds(pid)
        run = wrk(url, script, tag="m", duration=args.duration, connections=args.connections)
        cpu = cpu_seconds(pid) - cpu
    errors = sum(run[k] for k in ("connect", "read", "write", "status", "timeout"))
    result = {
        "rate": run["requests"] / (run["duration_us"] / 1e6),
        "cpu_us": cpu / max(run["requests"], 1) * 1e6,
        "errors": float(errors),
    }
    if os.path.exists(stats):
        with open(stats) as file:
            last = json.load(file)["last_cursor"]
        os.remove(stats)
        # Cursors count events from 1 in memory and SQLite (a fresh store per round); a Redis
        # cursor is a stream id, which counts nothing.
        if last is None or str(last).isdigit():
            result["events_per_callback"] = int(last or 0) / (warm["requests"] + run["requests"])
    return result


def measure(
    variants: dict[str, str | None], args: argparse.Namespace
) -> dict[str, list[dict[str, float]]]:
    """Interleaved rounds over every variant, a fresh server and store each time."""
    results: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    names = list(variants)
    with tempfile.TemporaryDirectory(prefix="opensms-bench-") as workdir:
        script = os.path.join(workdir, "callback.lua")
        Path(script).write_text(lua_script())
        for round_no in range(args.rounds):
            order = names[round_no % len(names) :] + names[: round_no % len(names)]
            for name in order:
                arg = variants[name]
                if name == "sqlite":  # a fresh database file per round
                    arg = tempfile.mkdtemp(dir=workdir)
                elif name == "redis" and arg:  # a fresh key prefix per round
                    arg += ("&" if "?" in arg else "?") + f"prefix=bench-{os.getpid()}-{round_no}"
                results[name].append(run_variant(name, arg, script, workdir, args))
    return results


def summarise(results: dict[str, list[dict[str, float]]]) -> dict[str, object]:
    """Medians, ratios to the bare Starlette route, and sanity figures."""
    rates = {name: median([r["rate"] for r in runs]) for name, runs in results.items()}
    base = rates["starlette"]
    summary: dict[str, object] = {
        "callbacks_per_s": {name: round(rate) for name, rate in rates.items()},
        "per_round": {name: [round(r["rate"]) for r in runs] for name, runs in results.items()},
    }
    targets = {"memory": 0.85, "sqlite": 0.70, "redis": 0.60}
    for name, rate in rates.items():
        if name in targets:
            summary[f"{name}/starlette (target >= {targets[name]})"] = round(rate / base, 3)
    if "raw" in rates:
        summary["starlette/raw (context)"] = round(base / rates["raw"], 3)
    # Each round's own ratio (its runs are minutes apart at most), then their median.
    for name in rates:
        if name in targets:
            paired = [
                r["rate"] / s["rate"]
                for r, s in zip(results[name], results["starlette"], strict=True)
            ]
            summary[f"{name}/starlette, median of per-round ratios"] = round(median(paired), 3)
    # The server's own CPU time per callback: steadier than req/s when the machine is shared.
    cpu = {name: median([r["cpu_us"] for r in runs]) for name, runs in results.items()}
    summary["server_cpu_us_per_callback"] = {name: round(us, 1) for name, us in cpu.items()}
    for name in cpu:
        if name in targets:
            summary[f"{name}/starlette by server CPU"] = round(cpu["starlette"] / cpu[name], 3)
    summary["errors_or_non_2xx"] = {
        n: int(sum(r["errors"] for r in rs)) for n, rs in results.items()
    }
    summary["events_per_callback"] = {
        name: round(median([r["events_per_callback"] for r in runs]), 3)
        for name, runs in results.items()
        if runs and "events_per_callback" in runs[0]
    }
    return summary


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of warm-up per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--variants", default="raw,starlette,memory,sqlite", help="comma-separated, in order"
    )
    parser.add_argument("--redis", help="also run the receiver over this redis:// store")
    return parser.parse_args(argv)


def main() -> None:
    """Run the benchmark and print a JSON summary with the ratios."""
    args = parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install -y wrk (bench/run.py does it when root)")
    variants: dict[str, str | None] = dict.fromkeys(args.variants.split(","))
    if args.redis:
        variants["redis"] = args.redis
    print(json.dumps(summarise(measure(variants, args)), indent=2))


if __name__ == "__main__":
    main()
