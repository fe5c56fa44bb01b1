"""Diagnosis: how the SQLite store's writer thread and the event loop hand work to each other
under the load of ``bench_receiver.py``.

Starts a ``sqlite/N`` receiver (``_receiver_apps.py``, the writer instrumented by this script)
pinned to CPU 0, warms it up for a second, loads it with wrk (the benchmark's script,
64 connections) for ``--duration`` seconds and prints, per callback of the measured run: write
transactions, the jobs of a transaction (mean and a histogram), the thread's waits for work
(``Writer._take`` calls that found the queue empty and blocked), each thread's context switches
(voluntary: it slept and was woken; involuntary: preempted), its CPU time, and its wait for a
CPU (``schedstat``).

    .venv/bin/python bench/diag_sqlite_writer.py [--variant sqlite/1] [--duration 5]

Run it with ``PYTHONPATH`` pointing at another checkout to see that checkout's writer (the
instrumentation patches ``Writer._write`` and the module's ``queue``, so that checkout's writer
must have both).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import queue
import signal
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

from _util import free_port, server_process
from bench_receiver import Variant, lua_script, server_argv, wrk


def _serve(out: str) -> None:
    """In the server: count write transactions by size, dump them on SIGUSR1, then serve."""
    from opensms_async.stores import _sqlite_writer as module

    sizes: collections.Counter[int] = collections.Counter()
    waits = [0]
    original_write = module.Writer._write

    def write(self: Any, conn: Any, jobs: list[Any]) -> Any:
        sizes[len(jobs)] += 1
        return original_write(self, conn, jobs)

    module.Writer._write = write  # type: ignore[method-assign]

    class CountingQueue(queue.SimpleQueue[Any]):
        def get(self, block: bool = True, timeout: float | None = None) -> Any:
            if block and self.empty():
                waits[0] += 1
            return super().get(block, timeout)

    counting: Any = types.SimpleNamespace(SimpleQueue=CountingQueue, Empty=queue.Empty)
    setattr(module, "queue", counting)  # noqa: B010 (its SimpleQueue() now counts)

    def dump(signum: int, frame: object) -> None:
        Path(out).write_text(json.dumps({"sizes": dict(sizes), "waits": waits[0]}))

    signal.signal(signal.SIGUSR1, dump)
    import _receiver_apps

    _receiver_apps.main()


def _threads(pid: int) -> dict[int, dict[str, float]]:
    """Per thread: context switches, CPU seconds, seconds waited for a CPU."""
    found: dict[int, dict[str, float]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            status = dict(
                line.split(":\t", 1) for line in (task / "status").read_text().splitlines()
            )
            run, wait, _ = (int(v) for v in (task / "schedstat").read_text().split())
        except OSError:
            continue
        found[int(task.name)] = {
            "voluntary": int(status["voluntary_ctxt_switches"]),
            "involuntary": int(status["nonvoluntary_ctxt_switches"]),
            "cpu": run / 1e9,
            "wait": wait / 1e9,
        }
    return found


def _counts(pid: int, out: str) -> dict[str, Any]:
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if os.path.exists(out):
            data: dict[str, Any] = json.loads(Path(out).read_text())
            os.remove(out)
            return data
        time.sleep(0.02)
    raise RuntimeError("the server wrote no counts")


def main() -> None:
    """Load one SQLite variant and print the hand-offs per callback."""
    if len(sys.argv) > 2 and sys.argv[1] == "--serve":
        out = sys.argv[2]
        sys.argv = sys.argv[3:]  # _receiver_apps.py and its arguments
        _serve(out)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="sqlite/1")
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    variant = Variant.parse(args.variant)
    if variant.app != "sqlite":
        parser.error("a sqlite/N variant")
    with tempfile.TemporaryDirectory(prefix="opensms-diag-") as workdir:
        script = os.path.join(workdir, "callback.lua")
        Path(script).write_text(lua_script())
        out = os.path.join(workdir, "counts.json")
        port = free_port()
        argv = server_argv(variant, port, os.path.join(workdir, "stats.json"), workdir, None)
        argv = [__file__, "--serve", out, *argv]
        with server_process(argv, port) as (url, pid):
            wrk(url, script, tag="w", duration=1, connections=args.connections)
            counts, threads = _counts(pid, out), _threads(pid)
            run = wrk(url, script, tag="m", duration=args.duration, connections=args.connections)
            after, threads_after = _counts(pid, out), _threads(pid)
    n = run["requests"]
    seconds = run["duration_us"] / 1e6
    sizes = collections.Counter({int(k): v for k, v in after["sizes"].items()})
    sizes.subtract({int(k): v for k, v in counts["sizes"].items()})
    batches = sum(sizes.values())
    jobs = sum(size * count for size, count in sizes.items())
    print(f"{args.variant}: {n / seconds:,.0f} callbacks/s over {seconds:.1f} s")
    print(
        f"write transactions per callback {batches / n:.3f}; jobs per transaction"
        f" {jobs / max(batches, 1):.1f}; writer waits for work per callback"
        f" {(after['waits'] - counts['waits']) / n:.3f}"
    )
    edges = (1, 2, 4, 8, 16, 32, 64, 128, 1 << 30)
    low = 1
    shares = []
    for edge in edges:
        in_bin = sum(c for s, c in sizes.items() if low <= s <= edge)
        jobs_in = sum(s * c for s, c in sizes.items() if low <= s <= edge)
        label = f"{low}-{edge}" if edge < 1 << 30 else f"{low}+"
        shares.append(f"{label}: {in_bin / max(batches, 1):.0%} ({jobs_in / max(jobs, 1):.0%})")
        low = edge + 1
    print("transactions by jobs (share of jobs): " + ", ".join(shares))
    for tid, now in sorted(threads_after.items()):
        before = threads.get(tid)
        if before is None:
            continue
        d = {key: now[key] - before[key] for key in now}
        if d["cpu"] < 0.01 * seconds:
            continue
        name = "main (loop)" if tid == pid else f"thread {tid}"
        print(
            f"  {name}: per callback {d['voluntary'] / n:.3f} voluntary and"
            f" {d['involuntary'] / n:.3f} involuntary switches, CPU {d['cpu'] / n * 1e6:.1f} µs;"
            f" busy {d['cpu'] / seconds:.0%}, waited for a CPU {d['wait'] / seconds:.0%}"
        )


if __name__ == "__main__":
    main()
