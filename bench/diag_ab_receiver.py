"""Diagnosis: receiver variants of another checkout (A) against this one (B), in one run.

    .venv/bin/python bench/diag_ab_receiver.py --against CHECKOUT [--rounds 5] [--duration 3]
        [--groups memory/1,memory/4,memory-mounted/1]

For each variant of ``--groups`` (``bench_receiver.py``'s names; memory and null variants), two
servers run: A with ``PYTHONPATH=CHECKOUT`` (a checkout, or a copy of its ``opensms_async``
folder: ``git archive COMMIT opensms_async | tar -x -C DIR``), B with this worktree's package,
beside the variant's yardstick (the bare Starlette route, mounted the same way or not). It prints
the package each side imports, and each server's ``PYTHONPATH``, before measuring. Each round
runs, per group, the yardstick, A and B back to back under ``bench_receiver.py``'s wrk load
(yardstick first in even rounds, last in odd ones); the figures are the medians of the rounds' own
ratios (B ÷ A, and each ÷ the yardstick), by rate and by CPU per callback, with each round's
beside. As in ``bench_receiver.py``, a run with a socket error or a non-2xx answer is refused,
and a server whose consumers missed events fails the run. Hold the heavy lock: about 10 s per
group and round, plus start-up.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _util import free_port, median, server_process
from bench_receiver import Server, Setup, Variant, check_events, load, lua_script, server_argv

HERE = Path(__file__).resolve().parent


def imported(env: dict[str, str]) -> str:
    """The ``opensms_async`` a server started with ``env`` imports (run as a script from
    ``bench/``, as the servers are: the script's folder, then ``PYTHONPATH``, then the venv)."""
    probe = "import sys; sys.path.insert(0, sys.argv[1]); import opensms_async; "
    probe += "print(opensms_async.__file__)"
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-c", probe, str(HERE)],
        env=env,
        cwd=tempfile.gettempdir(),
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def _ratios(values: list[float]) -> str:
    return f"{median(values):.3f} [{', '.join(f'{v:.2f}' for v in values)}]"


def main() -> None:
    """Measure A and B beside their yardsticks, rounds interleaved; print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", required=True, help="the folder holding A's opensms_async")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=3, help="seconds per run")
    parser.add_argument("--groups", default="memory/1,memory/4,memory-mounted/1")
    args = parser.parse_args()
    args.connections = 64  # what bench_receiver's load() reads
    b_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    a_env = dict(b_env, PYTHONPATH=os.path.abspath(args.against))
    print(f"A imports {imported(a_env)}; B imports {imported(b_env)}", flush=True)
    groups = [Variant.parse(name) for name in args.groups.split(",")]
    results: dict[str, list[dict[str, dict[str, float]]]] = {g.name: [] for g in groups}
    with tempfile.TemporaryDirectory(prefix="opensms-ab-") as workdir:
        script = os.path.join(workdir, "callback.lua")
        Path(script).write_text(lua_script())
        setup = Setup(script, args)
        with contextlib.ExitStack() as stack:

            def start(variant: Variant, env: dict[str, str]) -> Server:
                port = free_port()
                stats = os.path.join(workdir, f"stats-{port}.json")
                saved = dict(os.environ)
                os.environ.clear()
                os.environ.update(env)  # server_process's child inherits it
                try:
                    argv = server_argv(variant, port, stats, workdir, None)
                    url, pid = stack.enter_context(server_process(argv, port))
                finally:
                    os.environ.clear()
                    os.environ.update(saved)
                environ = Path(f"/proc/{pid}/environ").read_text().split("\0")
                shown = [e for e in environ if e.startswith("PYTHONPATH=")] or ["no PYTHONPATH"]
                print(f"{variant.name:18} pid {pid} {shown[0]}", flush=True)
                return Server(variant, url, pid, stats, None)

            yardsticks: dict[str, Server] = {}
            pairs: dict[str, tuple[Server, Server]] = {}
            for group in groups:
                if group.yardstick not in yardsticks:
                    yardsticks[group.yardstick] = start(Variant.parse(group.yardstick), b_env)
                pairs[group.name] = (start(group, a_env), start(group, b_env))
            for server in [*yardsticks.values(), *(s for pair in pairs.values() for s in pair)]:
                load(server, setup, tag="w", seconds=1)
            for round_no in range(args.rounds):
                for group in groups:
                    a, b = pairs[group.name]
                    runs = [("y", yardsticks[group.yardstick]), ("a", a), ("b", b)]
                    out = {
                        side: load(server, setup, tag=f"m{round_no}-", seconds=args.duration)
                        for side, server in (runs if round_no % 2 == 0 else runs[::-1])
                    }
                    results[group.name].append(out)
                    print(
                        f"round {round_no} {group.name:18}"
                        + "".join(
                            f"  {side} {out[side]['rate']:7.0f}/s {out[side]['cpu_us']:5.1f} µs"
                            f" (waited {out[side]['cpu_wait']:.0%})"
                            for side in "yab"
                        ),
                        flush=True,
                    )
        for a, b in pairs.values():  # stopped: each wrote its stats
            for server in (a, b):
                check_events(server.stats, server.requests, server.variant)
    for group in groups:
        rounds = results[group.name]
        rate = {s: [r[s]["rate"] / r["y"]["rate"] for r in rounds] for s in "ab"}
        cpu = {s: [r["y"]["cpu_us"] / r[s]["cpu_us"] for r in rounds] for s in "ab"}
        print(f"{group.name} ÷ {group.yardstick}: A {_ratios(rate['a'])}; B {_ratios(rate['b'])}")
        print(f"  by CPU: A {_ratios(cpu['a'])}; B {_ratios(cpu['b'])}")
        by_rate = _ratios([r["b"]["rate"] / r["a"]["rate"] for r in rounds])
        by_cpu = _ratios([r["a"]["cpu_us"] / r["b"]["cpu_us"] for r in rounds])
        print(f"  B ÷ A: {by_rate}; by CPU {by_cpu}")
        us = {s: median([r[s]["cpu_us"] for r in rounds]) for s in "yab"}
        print(f"  CPU µs per callback: yardstick {us['y']:.1f}, A {us['a']:.1f}, B {us['b']:.1f}")


if __name__ == "__main__":
    main()
