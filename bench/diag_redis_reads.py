"""Diagnosis: what a ``redis/N`` receiver asks Redis per callback under ``bench_receiver.py``'s wrk
load: the calls of each command (``INFO commandstats``: ``evalsha`` merges, ``xrange`` and
``xread`` reads of the log by the live buffer, ...) per 1,000 callbacks, and the rate.

Starts its own ``redis-server``, the variant's server pinned to CPU 0 (with ``PYTHONPATH`` at
``--against CHECKOUT`` for that checkout's package), warms it up, resets the command counts,
loads it with wrk for ``--duration`` seconds and prints the counts. Run it under the heavy lock.

    .venv/bin/python bench/diag_redis_reads.py [--variant redis/1] [--duration 5]
        [--against CHECKOUT]
"""

from __future__ import annotations

import argparse
import os
import tempfile

import redis
from _util import free_port, redis_server_process, server_process
from bench_receiver import Variant, lua_script, server_argv, wrk


def main() -> None:
    """Load one Redis variant and print its commands per 1,000 callbacks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="redis/1")
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--against", help="a checkout whose package the server imports")
    args = parser.parse_args()
    variant = Variant.parse(args.variant)
    env = None if args.against is None else {**os.environ, "PYTHONPATH": args.against}
    with (
        tempfile.TemporaryDirectory(prefix="opensms-diag-") as workdir,
        redis_server_process(workdir) as (url, _),
    ):
        script = os.path.join(workdir, "callback.lua")
        with open(script, "w") as file:
            file.write(lua_script())
        port = free_port()
        stats = os.path.join(workdir, "stats.json")
        argv = server_argv(variant, port, stats, workdir, (url, 0))
        with server_process(argv, port, env=env) as (server, _):
            wrk(server, script, tag="w", duration=1, connections=args.connections)
            client = redis.Redis.from_url(url)
            client.config_resetstat()
            run = wrk(server, script, tag="m", duration=args.duration, connections=args.connections)
            commands = client.info("commandstats")
            client.close()
    requests = run["requests"]
    print(f"{args.variant}: {requests / (run['duration_us'] / 1e6):,.0f} callbacks/s")
    for name, stat in sorted(commands.items(), key=lambda item: -item[1]["calls"]):
        print(f"  {name.removeprefix('cmdstat_'):<12} {stat['calls'] * 1000 / requests:8.1f}")


if __name__ == "__main__":
    main()
