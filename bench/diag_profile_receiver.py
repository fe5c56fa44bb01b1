"""Diagnosis: where a receiver variant's CPU goes under the load of ``bench_receiver.py``.

Starts the variant's server (``_receiver_apps.py --profile``: cProfile on process time) pinned to
CPU 0, its own ``redis-server`` for a Redis variant, warms it up for a second, loads it with wrk
(the benchmark's script, 64 connections) for ``--duration`` seconds, stops it and prints the top
functions by own time and by cumulative time. cProfile slows the server several-fold, so only the
shares mean something, not the rates; and what runs inside redis-server is not in it (the run
prints redis-server's CPU time per callback beside the server's).

    .venv/bin/python bench/diag_profile_receiver.py [--variant redis/1] [--duration 8] [--top 30]
        [--py-spy | --no-profile]

``--py-spy`` samples the server at its real speed instead (``pip install py-spy`` into the venv);
``--no-profile`` prints only the rate and how busy the server and redis-server were. With
``DIAG_KEEP=FILE`` in the environment, the raw profile (or collapsed stacks) is copied there.
"""

from __future__ import annotations

import argparse
import collections
import os
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _util import cpu_seconds, free_port, redis_server_process, server_process
from bench_receiver import Variant, lua_script, server_argv, wrk


def main() -> None:
    """Profile one variant under wrk load and print the top functions."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="redis/1")
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument(
        "--py-spy",
        action="store_true",
        help="sample with py-spy (pip install py-spy) instead of cProfile: real speed",
    )
    parser.add_argument(
        "--no-profile", action="store_true", help="no cProfile: the rate and CPU shares only"
    )
    args = parser.parse_args()
    variant = Variant.parse(args.variant)
    with tempfile.TemporaryDirectory(prefix="opensms-diag-") as workdir:
        script = os.path.join(workdir, "callback.lua")
        Path(script).write_text(lua_script())
        profile = os.path.join(workdir, "profile.out")
        with redis_server_process(workdir) as redis:
            port = free_port()
            stats = os.path.join(workdir, "stats.json")
            argv = server_argv(variant, port, stats, workdir, redis)
            extra = [] if args.no_profile or args.py_spy else ["--profile", profile]
            with server_process([*argv, *extra], port) as (url, pid):
                wrk(url, script, tag="w", duration=1, connections=args.connections)
                before = cpu_seconds(pid), cpu_seconds(redis[1])
                spy = _py_spy(pid, args.duration, profile) if args.py_spy else None
                run = wrk(url, script, tag="m", duration=args.duration, connections=64)
                if spy is not None:
                    spy.wait()
                server = (cpu_seconds(pid) - before[0]) / run["requests"] * 1e6
                store = (cpu_seconds(redis[1]) - before[1]) / run["requests"] * 1e6
        seconds = run["duration_us"] / 1e6
        print(
            f"{args.variant}: {run['requests'] / seconds:.0f} callbacks/s; CPU per callback:"
            f" server {server:.0f} µs (busy {server * run['requests'] / seconds / 1e6:.0%}),"
            f" redis-server {store:.0f} µs (busy {store * run['requests'] / seconds / 1e6:.0%})"
        )
        if args.no_profile:
            return
        if args.py_spy:
            if os.environ.get("DIAG_KEEP"):
                shutil.copy(profile, os.environ["DIAG_KEEP"])
            _print_samples(profile, args.top)
            return
        if os.environ.get("DIAG_KEEP"):
            shutil.copy(profile, os.environ["DIAG_KEEP"])
        data = pstats.Stats(profile)
        data.sort_stats("tottime").print_stats(args.top)
        data.sort_stats("cumulative").print_stats(args.top)


def _py_spy(pid: int, seconds: int, out: str) -> subprocess.Popen[bytes]:
    """py-spy sampling ``pid`` for ``seconds`` (without pausing it), collapsed stacks to ``out``."""
    argv = [
        shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy"),
        "record",
        "-p",
        str(pid),
        "-d",
        str(seconds),
        "-r",
        "200",
        "--nonblocking",
    ]
    return subprocess.Popen(  # noqa: S603
        [*argv, "-f", "raw", "-o", out], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _print_samples(path: str, top: int) -> None:
    """The functions with most samples, own (leaf) and inclusive, from collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in Path(path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";")]
        total += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):
            inclusive[frame] += int(count)
    for title, counter in (("own", own), ("inclusive", inclusive)):
        print(f"-- {title} samples of {total}")
        for frame, samples in counter.most_common(top):
            print(f"{samples / total:6.1%}  {frame}")


if __name__ == "__main__":
    main()
