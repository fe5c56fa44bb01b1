"""Receiver throughput as users run it: callbacks/s with live ``events()`` consumers, as a ratio
to a bare Starlette route (and, mounted in a parent app, to a bare route mounted the same way).

Each variant (``_receiver_apps.py``) runs in its own uvicorn process (uvloop, httptools, one
worker) pinned to CPU 0; ``wrk`` (one thread, 64 connections) is pinned to CPU 1. A variant is
named ``APP/N``: the app, and N live consumers in the server iterating ``tracker.events()``:

| variant | what | role |
|---|---|---|
| ``raw`` | a raw ASGI app: drain the body, 204 | context (the ceiling) |
| ``starlette`` | a bare Starlette route: read the body, 204 | **the yardstick** |
| ``starlette-mounted`` | that route's app mounted at ``/sms`` in a parent app | mounted yardstick |
| ``memory/N`` (``sqlite``, ``redis``) | the receiver over that store, N = 1, 4 | **users run it** |
| ``memory/0`` (``sqlite``, ``redis``) | no consumer at all | diagnosis: no user runs it |
| ``memory-mounted/N`` | the receiver mounted at ``/sms``, N consumers | ÷ ``starlette-mounted`` |
| ``null/0`` | a store that records nothing (``--variants``) | diagnosis: HTTP, token, parse |

Every variant's server is started (and warmed up) first and serves to the end, idle while
another is measured. A round runs each receiver variant right beside a run of its own yardstick
(a pair: the yardstick first in one round, second in the next, so that a drift of the machine
during a pair counts against each side in turn), and every other variant once; rounds are
interleaved (each starts at another pair). Medians are reported, because absolute numbers drift
on these machines: only ratios measured in one run mean anything. A receiver's figure is the
median of its pairs' ratios (callbacks/s ÷ the yardstick's); beside it the same by CPU (the
yardstick's CPU per callback ÷ the receiver's) and the ratio of the median rates.

Why pairs: the runs of a round used to follow the variants' order, so a receiver and its
yardstick could be three runs (15 s) apart, and a burst of another engineer's load in between
moved one round's ratio by ±0.3 (``memory-mounted/4`` ÷ ``starlette-mounted``: 0.73 to 1.30
per round). Back to back, both sides of a ratio meet nearly the same machine. This measures the
same thing (each side's callbacks/s over the same wrk load); it only moves the yardstick's runs
next to the runs they divide, at the cost of one yardstick run per receiver variant and round.

**A run with any socket error or non-2xx answer is refused**, never counted: wrk reports
connect/read/write errors, timeouts (over 5 s) and answers with a status over 399 (the apps
answer nothing but 204 and 4xx/5xx), and a refused run leaves its round out of the figures. A
receiver run is refused too when a consumer missed events (each consumer's count must reach the
store's event count when the server stops), so a figure never flatters a consumer that fell
behind.

The load: every request POSTs a BICS ``deliveryInfoList`` callback (compact JSON, 255-256 bytes)
with the security token in the body. A counter in the Lua script makes every callback count:
even requests are the first sighting of a new recipient (``DeliveredToNetwork``: a new state and an
event), odd requests bring the recipient first seen about 2000 callbacks earlier to
``DeliveredToTerminal`` (a merge that advances the state: an update and an event). Ten recipients
share a request id (so consecutive callbacks often share a resource URL, as the callbacks of a
bulk send do). So half the callbacks insert and half merge, and each one logs an event
(``events_per_callback`` is a little over 1: the callbacks in flight when wrk stops are stored
but not counted). The Starlette routes get the same bodies.

The load of the machine, per figure: how long the server waited for a CPU while runnable
(``schedstat``; the median share of its runs' time): near 0% on a quiet machine; beyond a few
per cent, other processes held CPU 0 and the rates (and so the ratios) are noisy. And the steal
time of the two CPUs (``/proc/stat``: the hypervisor kept a virtual CPU from running; the most
of either CPU in any of the figure's runs), invisible to ``schedstat``: a run stolen from is
slower for reasons that are not the server's, and its pair's ratio is noise.

CPU: the server's own CPU time per callback (read from ``/proc``; the server is CPU-bound, so its
ratio tracks the throughput ratio), and for the Redis variants the CPU time of ``redis-server``
during the run added to it. The benchmark starts its own ``redis-server`` (not pinned; a fresh
key prefix per round) unless ``--no-redis``.

    .venv/bin/python bench/bench_receiver.py [--duration 5] [--rounds 3] [--variants ...]
        [--no-redis] [--json-out FILE]

Needs ``wrk`` (``apt-get install wrk``; ``bench/run.py`` installs it when missing).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _receiver_apps import CALLBACK_PATH, TOKEN
from _util import (
    RunRefused,
    cpu_seconds,
    cpu_wait_seconds,
    format_rows,
    free_port,
    median,
    pin_to_cpu,
    redis_server_process,
    row,
    server_process,
    steal_seconds,
    steal_since,
    write_rows,
)

HERE = Path(__file__).resolve().parent
LAG = 1000
"""How many callbacks after its first sighting a recipient gets its final status."""
ERROR_KEYS = ("connect", "read", "write", "status", "timeout")
TARGETS = {"memory": 0.85, "sqlite": 0.70, "redis": 0.60, "memory-mounted": 0.85}
"""Callbacks/s with 1 and 4 live consumers ÷ the yardstick (PERFORMANCE.md)."""
APPS = ("raw", "starlette", "memory", "sqlite", "redis", "null")
"""What a variant may run (``bench_latency.py`` has the ``baseline`` app; ``-mounted`` and
``/consumers`` go around these)."""
DEFAULT_VARIANTS = (
    "raw,starlette,starlette-mounted,memory/0,memory/1,memory/4,sqlite/0,sqlite/1,sqlite/4,"
    "redis/0,redis/1,redis/4,memory-mounted/1,memory-mounted/4"
)

WRK_DONE = r"""
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,'
    .. '"status":%d,"timeout":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout))
end
"""
"""The end of a wrk script: the run's counts as one ``WRK_JSON`` line, which :func:`wrk` reads."""

# %% is a literal % for string.format; the body is compact JSON as a sender would post it.
_LUA = (
    r"""
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
"""
    + WRK_DONE
)


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


def check_wrk(summary: dict[str, int]) -> None:
    """Refuse a run with any socket error, timeout or non-2xx answer (wrk: status over 399)."""
    errors = {key: summary[key] for key in ERROR_KEYS if summary[key]}
    if errors:
        raise RunRefused(f"wrk counted errors {errors} in {summary['requests']} requests")
    if summary["requests"] == 0:
        raise RunRefused("no request completed")


@dataclass(frozen=True)
class Variant:
    """One server setup: the app, its live consumers, mounted or not."""

    name: str
    app: str
    consumers: int
    mounted: bool
    against: bool = False
    """Named ``...@against``: its server imports the package of ``--against``'s checkout."""

    @classmethod
    def parse(cls, name: str) -> Variant:
        """``starlette``, ``starlette-mounted``, ``memory/1``, ``memory-mounted/4``,
        ``redis/1@against``..."""
        base, _, side = name.partition("@")
        if side not in ("", "against"):
            raise SystemExit(f"unknown variant suffix @{side} (only @against)")
        app, _, consumers = base.partition("/")
        mounted = app.endswith("-mounted")
        app = app.removesuffix("-mounted")
        if app not in APPS:
            raise SystemExit(f"unknown variant {name!r}: the apps are {', '.join(APPS)}")
        if consumers and not consumers.isdigit():
            raise SystemExit(f"variant {name!r}: the consumers after / must be a number")
        if app in ("raw", "starlette") and consumers:
            raise SystemExit(f"variant {name!r}: the bare apps have no consumers")
        if app == "raw" and mounted:
            raise SystemExit(f"variant {name!r}: the raw ASGI app is not mounted")
        return cls(name, app, int(consumers or 0), mounted, bool(side))

    @property
    def receiver(self) -> bool:
        """True for the SDK's receiver (a store, consumers), False for the bare apps."""
        return self.app not in ("raw", "starlette")

    @property
    def yardstick(self) -> str:
        """The variant this one is divided by."""
        return "starlette-mounted" if self.mounted else "starlette"

    @property
    def target(self) -> float | None:
        """The ratio it must reach, or None (context, diagnosis)."""
        if not self.receiver or self.consumers == 0:
            return None
        return TARGETS.get(self.app + ("-mounted" if self.mounted else ""))

    @property
    def role(self) -> str:
        """What the figure is for, in the table."""
        if self.app == "raw":
            return "context: the ceiling"
        if not self.receiver:
            return "the yardstick"
        if self.consumers == 0:
            return "diagnosis: no user runs this (no consumer)"
        if self.app == "null":
            return "diagnosis: a store that records nothing"
        return ""


@dataclass
class Server:
    """A variant's server, started once for the whole benchmark: its URL, pid, files."""

    variant: Variant
    url: str
    pid: int
    stats: str
    redis_pid: int | None
    requests: int = 0
    """Every request it answered (warm-up included), to check its event count at the end."""

    def cpu(self) -> float:
        """Its CPU seconds so far, and redis-server's for a Redis variant."""
        return cpu_seconds(self.pid) + (cpu_seconds(self.redis_pid) if self.redis_pid else 0.0)


def server_argv(
    variant: Variant, port: int, stats: str, workdir: str, redis: tuple[str, int] | None
) -> list[str]:
    """The command line of a variant's server (a fresh SQLite file, a fresh Redis key prefix)."""
    argv = [str(HERE / "_receiver_apps.py"), variant.app, str(port)]
    if variant.app == "sqlite":
        argv.append(tempfile.mkdtemp(dir=workdir))
    elif variant.app == "redis":
        if redis is None:
            raise RunRefused("no redis-server")
        argv.append(f"{redis[0]}?prefix=bench-{port}")
    argv += ["--consumers", str(variant.consumers), "--stats", stats]
    return argv + (["--mounted"] if variant.mounted else [])


@contextlib.contextmanager
def servers(
    variants: Sequence[Variant],
    workdir: str,
    redis: tuple[str, int] | None,
    against: str | None = None,
) -> Iterator[list[Server]]:
    """A server per variant, all at once (idle but the one under load), each pinned to CPU 0;
    stopped at the end, when each receiver writes its stats. A variant ``@against`` runs with
    ``PYTHONPATH`` at checkout ``against``."""
    with contextlib.ExitStack() as stack:
        started = []
        for variant in variants:
            port = free_port()
            stats = os.path.join(workdir, f"stats-{port}.json")
            argv = server_argv(variant, port, stats, workdir, redis)
            env = None
            if variant.against:
                if against is None:
                    raise SystemExit(f"{variant.name} needs --against CHECKOUT")
                env = {**os.environ, "PYTHONPATH": os.path.abspath(against)}
            url, pid = stack.enter_context(server_process(argv, port, env=env))
            redis_pid = redis[1] if redis is not None and variant.app == "redis" else None
            started.append(Server(variant, url, pid, stats, redis_pid))
        yield started


@dataclass
class Setup:
    """What the runs share: the wrk script and the options."""

    script: str
    args: argparse.Namespace


def load(server: Server, setup: Setup, *, tag: str, seconds: int) -> dict[str, float]:
    """One wrk run against a server: callbacks/s and CPU µs per callback, or RunRefused."""
    connections = setup.args.connections
    cpu, waited = server.cpu(), cpu_wait_seconds(server.pid)
    stolen = steal_seconds()
    run = wrk(server.url, setup.script, tag=tag, duration=seconds, connections=connections)
    cpu, waited = server.cpu() - cpu, cpu_wait_seconds(server.pid) - waited
    steal = max(steal_since(stolen))
    server.requests += run["requests"]
    check_wrk(run)
    seconds_run = run["duration_us"] / 1e6
    return {
        "rate": run["requests"] / seconds_run,
        "cpu_us": cpu / run["requests"] * 1e6,
        "cpu_wait": waited / seconds_run,
        "steal": steal / seconds_run,
    }


def check_events(stats: str, requests: int, variant: Variant) -> dict[str, float]:
    """Events per callback (stores that count their cursors), and every consumer saw them all."""
    with open(stats) as file:
        data: dict[str, Any] = json.load(file)
    last, consumed = data["last_cursor"], data["consumed"]
    print(f"{variant.name}: the server ran {data.get('package')}", file=sys.stderr)
    # Cursors count events from 1 in memory and SQLite (a fresh store per server); a Redis
    # cursor is a stream id, which counts nothing: there every callback's event is at least seen.
    logged = int(last or 0) if last is None or str(last).isdigit() else None
    expected = logged if logged is not None else requests
    if variant.app != "null" and any(seen < expected for seen in consumed):
        raise RunRefused(f"a consumer missed events: saw {consumed}, expected {expected}")
    result: dict[str, float] = {}
    if logged is not None:
        result["events_per_callback"] = logged / requests
    return result


@contextlib.contextmanager
def redis_for(
    variants: Sequence[Variant], args: argparse.Namespace
) -> Iterator[tuple[str, int] | None]:
    """This benchmark's own redis-server (URL, pid: its CPU is counted) when a variant needs it."""
    if args.no_redis or not any(v.app == "redis" for v in variants):
        yield None
        return
    with (
        tempfile.TemporaryDirectory(prefix="opensms-bench-redis-") as folder,
        redis_server_process(folder, cpu=args.redis_cpu) as server,
    ):
        yield server


Results = dict[str, list[dict[str, float] | str]]
"""Per variant, each run's figures, or the reason it was refused."""
Pairs = dict[str, list[tuple[dict[str, float] | str, dict[str, float] | str]]]
"""Per receiver variant, each pair's (its run, its yardstick's run beside it)."""


def measure(variants: Sequence[Variant], args: argparse.Namespace) -> tuple[Results, Pairs]:
    """Interleaved rounds over every variant's server; a refused run is kept as its reason.

    Every server is started (and warmed up) first and runs to the end; each receiver's runs are
    paired with a yardstick run right beside them (:func:`round_schedule`), so that each ratio's
    two sides see the same machine. At the end each receiver's event counts are checked: a
    server whose consumers missed events has every run refused.
    """
    results: Results = {v.name: [] for v in variants}
    pairs: Pairs = {v.name: [] for v in variants}
    with (
        tempfile.TemporaryDirectory(prefix="opensms-bench-") as workdir,
        redis_for(variants, args) as redis,
    ):
        script = os.path.join(workdir, "callback.lua")
        Path(script).write_text(lua_script())
        setup = Setup(script, args)
        with servers(variants, workdir, redis, args.against) as running:
            for server in running:
                _run_once(results, server, setup, "w", args.warmup, keep=False)
            for round_no in range(args.rounds):
                for group in round_schedule(running, round_no, args.rounds):
                    outcomes = [
                        _run_once(results, server, setup, f"m{round_no}-", args.duration)
                        for server in group
                    ]
                    if len(group) == 2:  # a pair: (receiver, yardstick) in either order
                        mine, theirs = (0, 1) if group[0].variant.receiver else (1, 0)
                        pairs[group[mine].variant.name].append((outcomes[mine], outcomes[theirs]))
        for server in running:  # stopped now: each receiver wrote its stats
            if server.variant.receiver:
                _check_server(results, server)
    return results, pairs


def round_schedule(running: Sequence[Server], round_no: int, rounds: int) -> list[list[Server]]:
    """One round's runs, in order: each receiver beside its yardstick (a pair, the yardstick
    first in even rounds, second in odd ones), every other variant alone; the round starts at
    another group than the one before."""
    by_name = {server.variant.name: server for server in running}
    paired = {s.variant.yardstick for s in running if s.variant.receiver}
    groups: list[list[Server]] = []
    for server in running:
        if server.variant.receiver:
            yardstick = by_name[server.variant.yardstick]
            groups.append([yardstick, server] if round_no % 2 == 0 else [server, yardstick])
        elif server.variant.name not in paired:
            groups.append([server])
    shift = round_no * len(groups) // max(rounds, 1)
    return [*groups[shift:], *groups[:shift]]


def _run_once(
    results: Results, server: Server, setup: Setup, tag: str, seconds: int, *, keep: bool = True
) -> dict[str, float] | str:
    name = server.variant.name
    try:
        outcome: dict[str, float] | str = load(server, setup, tag=tag, seconds=seconds)
    except RunRefused as exc:
        outcome = str(exc)
        print(f"refused: {name} ({tag}): {exc}", file=sys.stderr)
    if keep or isinstance(outcome, str):
        results[name].append(outcome)
    return outcome


def _check_server(results: Results, server: Server) -> None:
    """Refuse every run of a receiver whose consumers missed events; note events/callback."""
    name = server.variant.name
    try:
        counts = check_events(server.stats, server.requests, server.variant)
    except (RunRefused, OSError) as exc:
        print(f"refused: every run of {name}: {exc}", file=sys.stderr)
        results[name] = [str(exc) for _ in results[name]]
        return
    for outcome in results[name]:
        if isinstance(outcome, dict):
            outcome.update(counts)


def _counted(runs: Sequence[dict[str, float] | str]) -> list[dict[str, float]]:
    return [r for r in runs if isinstance(r, dict)]


def summarise(variants: Sequence[Variant], results: Results, pairs: Pairs) -> dict[str, Any]:
    """Medians, ratios to each variant's yardstick (the median of each pair's own ratio, by rate
    and by CPU, and the ratio of the medians), refusals, events per callback."""
    out: dict[str, Any] = {}
    for variant in variants:
        runs = results.get(variant.name, [])
        counted = _counted(runs)
        entry: dict[str, Any] = {
            "role": variant.role,
            "rounds": len(runs),
            "refused": [r for r in runs if isinstance(r, str)],
        }
        if counted:
            entry["callbacks_per_s"] = median([r["rate"] for r in counted])
            entry["per_round"] = [round(r["rate"]) if isinstance(r, dict) else None for r in runs]
            entry["cpu_us_per_callback"] = median([r["cpu_us"] for r in counted])
            entry["cpu_wait"] = median([r["cpu_wait"] for r in counted])
            entry["steal"] = max(r["steal"] for r in counted)
            if "events_per_callback" in counted[0]:
                entry["events_per_callback"] = median([r["events_per_callback"] for r in counted])
        out[variant.name] = entry
    for variant in variants:
        entry, base = out[variant.name], out.get(variant.yardstick)
        if variant.receiver and base and "callbacks_per_s" in base and "callbacks_per_s" in entry:
            entry["ratio_of_medians"] = entry["callbacks_per_s"] / base["callbacks_per_s"]
            # A run refused after the fact (a consumer missed events) is no longer in results.
            kept = {id(r) for r in _counted(results[variant.name])}
            both = [
                (mine, theirs)
                for mine, theirs in pairs.get(variant.name, [])
                if isinstance(mine, dict) and isinstance(theirs, dict) and id(mine) in kept
            ]
            by_rate = [mine["rate"] / theirs["rate"] for mine, theirs in both]
            by_cpu = [theirs["cpu_us"] / mine["cpu_us"] for mine, theirs in both]
            entry["per_round_ratios"] = [round(p, 3) for p in by_rate]
            entry["per_round_ratios_by_cpu"] = [round(p, 3) for p in by_cpu]
            if by_rate:
                entry["ratio"] = median(by_rate)
                entry["ratio_by_cpu"] = median(by_cpu)
    return out


def rows(variants: Sequence[Variant], summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The table's rows: each yardstick's rate, each receiver's ratio beside its target."""
    out = []
    group = "receiver: callbacks/s ÷ bare Starlette route (wrk, 64 connections, server on 1 core)"
    for variant in variants:
        entry = summary[variant.name]
        refused = (
            f"{len(entry['refused'])}/{entry['rounds']} runs refused" if entry["refused"] else ""
        )
        waited = (
            f"waited for a CPU {entry['cpu_wait']:.0%}; steal up to {entry['steal']:.0%}"
            if "cpu_wait" in entry
            else ""
        )
        if not variant.receiver:
            rate = entry.get("callbacks_per_s")
            note = "; ".join(n for n in (variant.role, waited, refused) if n)
            out.append(row(group, variant.name, rate, "callbacks/s", note=note))
            continue
        ratio = entry.get("ratio")
        target = variant.target
        notes = [variant.role] if variant.role else []
        if "ratio" in entry:
            notes.append(f"per pair {entry['per_round_ratios']}")
            cpu = " incl. redis-server" if variant.app == "redis" else ""
            notes.append(
                f"by CPU {entry['ratio_by_cpu']:.2f}{cpu} {entry['per_round_ratios_by_cpu']}"
            )
            notes.append(f"ratio of medians {entry['ratio_of_medians']:.2f}")
        if waited:
            notes.append(waited)
        if refused:
            notes.append(refused)
        out.append(
            row(
                group,
                f"{variant.name} ÷ {variant.yardstick}",
                ratio,
                "ratio",
                target="" if target is None else f">= {target:.2f}",
                passed=None if target is None or ratio is None else ratio >= target,
                note="; ".join(notes),
            )
        )
    return out


def _cpu_or_none(text: str) -> int | None:
    """``--redis-cpu``'s value: a CPU number, or ``none``."""
    if text == "none":
        return None
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"a CPU number or 'none', not {text!r}")
    return int(text)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of warm-up per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--variants", default=DEFAULT_VARIANTS, help="comma-separated, in order")
    parser.add_argument("--no-redis", action="store_true", help="skip the Redis variants")
    parser.add_argument(
        "--redis-cpu",
        type=_cpu_or_none,
        default=None,
        help="pin redis-server to this CPU (default: wherever the kernel puts it; 1 is wrk's)",
    )
    parser.add_argument("--json-out", help="write the table's rows here (run.py reads them)")
    parser.add_argument(
        "--against",
        help="a checkout whose package the variants named ...@against import (A/B in one run)",
    )
    parser.add_argument("--details", action="store_true", help="print the full JSON summary")
    return parser.parse_args(argv)


def main() -> None:
    """Run the benchmark and print its table (``--details``: the JSON summary too)."""
    args = parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install -y wrk (bench/run.py does it when root)")
    if not args.no_redis and shutil.which("redis-server") is None:
        print("(no redis-server: the Redis variants are skipped)", file=sys.stderr)
        args.no_redis = True
    variants = [Variant.parse(name) for name in args.variants.split(",")]
    wanted = {v.name for v in variants}
    for yardstick in {v.yardstick for v in variants if v.receiver} - wanted:
        variants.insert(0, Variant.parse(yardstick))  # a ratio needs its yardstick in the run
    if args.no_redis:
        variants = [v for v in variants if v.app != "redis"]
    summary = summarise(variants, *measure(variants, args))
    table = rows(variants, summary)
    write_rows(args.json_out, table)
    print(format_rows(table))
    if args.details:
        print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
