"""Diagnosis: where ``bench_latency.py``'s slow callbacks come from, episode by episode.

One paced run per variant and round, as ``bench_latency.py`` makes it (the same server,
generator, pinning and callbacks), but keeping every callback's moments and, beside them, a
timeline sampled every ``--sample-ms`` by a thread of the generator: the server's time on a CPU
and waiting for one (``schedstat``, summed over its threads), and the steal time of CPU 0 and
CPU 1 (``/proc/stat``, in ticks of 10 ms). The server notes when each garbage collection
started and how long it took.

The callbacks whose lag (sent → seen by the consumer) is over ``--slow-ms`` are grouped into
episodes (slow callbacks sent less than 20 ms apart), and each episode is printed with what
overlapped it (from 50 ms before its first slow callback was sent to its last one's arrival):
garbage collections (generation, ms), the server's CPU wait and the steal time of CPU 0 in that
window, and how much of the window the server ran. An episode with none of them is the one to
look at in the code. Per run, the p99 and the share of slow callbacks in episodes that a
collection, a CPU wait over 1 ms or steal overlapped.

    .venv/bin/python bench/diag_tail.py [--variants memory,baseline,memory/freeze] [--rate 3000]
        [--seconds 10] [--rounds 1] [--slow-ms 5] [--gc-freeze] [--episodes 15]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import tempfile
import threading
import time
from array import array
from pathlib import Path
from typing import Any

from _util import free_port, pin_to_cpu, server_process, steal_seconds
from bench_latency import Generator, loop_factory, percentile

HERE = Path(__file__).resolve().parent
EPISODE_GAP = 0.020
LOOKBACK = 0.050


class Sampler(threading.Thread):
    """Samples the server's schedstat and the CPUs' steal every ``interval`` seconds."""

    def __init__(self, pid: int, interval: float) -> None:
        super().__init__(daemon=True)
        self._pid = pid
        self._interval = interval
        self._halt = threading.Event()
        self.at = array("d")
        self.ran = array("d")
        self.waited = array("d")
        self.steal0 = array("d")
        self.steal1 = array("d")

    def _schedstat(self) -> tuple[float, float]:
        ran = waited = 0
        for task in Path(f"/proc/{self._pid}/task").iterdir():
            with contextlib.suppress(OSError):
                fields = (task / "schedstat").read_text().split()
                ran += int(fields[0])
                waited += int(fields[1])
        return ran / 1e9, waited / 1e9

    def run(self) -> None:
        while not self._halt.wait(self._interval):
            now = time.monotonic()
            ran, waited = self._schedstat()
            s0, s1 = steal_seconds()
            self.at.append(now)
            self.ran.append(ran)
            self.waited.append(waited)
            self.steal0.append(s0)
            self.steal1.append(s1)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)

    def between(self, start: float, end: float) -> dict[str, float]:
        """Server run and wait seconds, CPU 0/1 steal seconds over [start, end] (samples)."""
        at = self.at
        first = next((i for i in range(len(at)) if at[i] >= start), None)
        if first is None:
            return {"ran": 0.0, "waited": 0.0, "steal0": 0.0, "steal1": 0.0, "span": 0.0}
        last = max(first, next((i for i in range(first, len(at)) if at[i] >= end), len(at) - 1))
        first = max(0, first - 1)
        return {
            "ran": self.ran[last] - self.ran[first],
            "waited": self.waited[last] - self.waited[first],
            "steal0": self.steal0[last] - self.steal0[first],
            "steal1": self.steal1[last] - self.steal1[first],
            "span": at[last] - at[first],
        }


def one_run(variant: str, args: argparse.Namespace, workdir: str) -> dict[str, Any]:
    """One fresh server, one paced run; every callback's moments and the samples."""
    port = free_port()
    arrivals = os.path.join(workdir, f"arrivals-{port}.json")
    variant, _, option = variant.partition("/")
    argv = [str(HERE / "_receiver_apps.py"), variant, str(port)]
    argv += [tempfile.mkdtemp(dir=workdir)] if variant == "sqlite" else []
    argv += ["--consumers", "1", "--latency", arrivals]
    argv += ["--gc-freeze"] if args.gc_freeze or option == "freeze" else []
    total = int(args.rate * (args.warmup + args.seconds))
    generator = Generator(args.rate, total)
    load = os.getloadavg()[0]
    with server_process(argv, port) as (_, pid):
        sampler = Sampler(pid, args.sample_ms / 1e3)
        sampler.start()

        async def drive() -> None:
            await generator.connect(port, args.connections)
            await generator.run()

        with asyncio.Runner(loop_factory=loop_factory("select")) as runner:
            runner.run(drive())
        sampler.stop()
        time.sleep(0.3)
    if generator.failures:
        raise RuntimeError(generator.failures[0])
    with open(arrivals) as file:
        data = json.load(file)
    return {"generator": generator, "data": data, "sampler": sampler, "load": load}


def analyse(variant: str, run: dict[str, Any], args: argparse.Namespace) -> None:
    """Print the run's p99 and its episodes of slow callbacks with what overlapped them."""
    generator: Generator = run["generator"]
    sampler: Sampler = run["sampler"]
    seen = {(a, s): t for a, s, t in run["data"]["arrivals"]}
    pauses = run["data"]["gc_pauses"]
    skip = int(args.rate * args.warmup)
    begin = generator.sent_at[skip]
    lags = []
    slow: list[tuple[float, float, float]] = []  # sent, seen, answered
    for n in range(skip, len(generator.requests)):
        at = seen[generator.requests[n][1]]
        sent = generator.sent_at[n]
        lags.append(at - sent)
        if at - sent > args.slow_ms / 1e3:
            slow.append((sent, at, generator.answered_at[n]))
    lags.sort()
    end = max(generator.answered_at)
    pauses = [p for p in pauses if begin <= p[2] <= end]  # not the shutdown's (the arrivals)
    whole = sampler.between(begin, generator.sent_at[-1])
    full = sum(1 for g, _, _ in pauses if g == 2)
    print(
        f"\n{variant} {args.rate}/s: p50 {percentile(lags, 0.5) * 1e3:.2f} p99 "
        f"{percentile(lags, 0.99) * 1e3:.2f} max {lags[-1] * 1e3:.1f} ms; "
        f"{len(slow)} of {len(lags)} over {args.slow_ms:g} ms; "
        f"server waited {whole['waited'] / max(whole['span'], 1e-9):.1%}, "
        f"server CPU {whole['ran'] / len(lags) * 1e6:.0f} µs per callback, "
        f"steal CPU0 {whole['steal0'] / max(whole['span'], 1e-9):.1%}, CPU1 "
        f"{whole['steal1'] / max(whole['span'], 1e-9):.1%}; load {run['load']:.2f}; "
        f"collections in the counted part gen0/1/2 "
        + "/".join(str(sum(1 for g, _, _ in pauses if g == k)) for k in range(3))
        + f" (longest {max((d for _, d, _ in pauses), default=0) * 1e3:.1f} ms,"
        f" {full} full)"
    )
    for k in range(3):
        durations = sorted(d for g, d, _ in pauses if g == k)
        if durations:
            print(
                f"  gen-{k} collections: {len(durations)}, ms median "
                f"{percentile(durations, 0.5) * 1e3:.2f} p90 {percentile(durations, 0.9) * 1e3:.2f}"
                f" max {durations[-1] * 1e3:.2f}"
            )
    episodes: list[list[tuple[float, float, float]]] = []
    for item in slow:
        if episodes and item[0] - episodes[-1][-1][0] < EPISODE_GAP:
            episodes[-1].append(item)
        else:
            episodes.append([item])
    causes = {"gc": 0, "wait": 0, "steal": 0, "none": 0}
    lines = []
    for episode in episodes:
        start, end = episode[0][0] - LOOKBACK, max(seen for _, seen, _ in episode)
        gcs = [(g, d) for g, d, t in pauses if t + d >= start and t <= end]
        window = sampler.between(start, end)
        has_gc = any(d > 0.001 for _, d in gcs)
        has_wait = window["waited"] > 0.001
        has_steal = window["steal0"] > 0
        for name, flag in (("gc", has_gc), ("wait", has_wait), ("steal", has_steal)):
            if flag:
                causes[name] += len(episode)
        if not (has_gc or has_wait or has_steal):
            causes["none"] += len(episode)
        worst = max(seen - sent for sent, seen, _ in episode)
        answer = max(answered - sent for sent, _, answered in episode)
        lines.append(
            (
                worst,
                f"  at {episode[0][0] - begin:7.3f} s: {len(episode):4} slow over "
                f"{(episode[-1][0] - episode[0][0]) * 1e3:6.1f} ms, worst {worst * 1e3:6.1f} ms "
                f"(204 {answer * 1e3:6.1f}); GC "
                + (",".join(f"{g}:{d * 1e3:.1f}" for g, d in gcs if d > 0.0005) or "-")
                + f"; window {window['span'] * 1e3:.0f} ms: server ran "
                f"{window['ran'] * 1e3:.1f}, waited {window['waited'] * 1e3:.1f}, steal CPU0 "
                f"{window['steal0'] * 1e3:.0f} CPU1 {window['steal1'] * 1e3:.0f} ms",
            )
        )
    total = max(1, len(slow))
    print(
        f"  {len(episodes)} episodes; slow callbacks overlapped by a collection over 1 ms "
        f"{causes['gc'] / total:.0%}, a CPU wait over 1 ms {causes['wait'] / total:.0%}, steal "
        f"{causes['steal'] / total:.0%}, none of them {causes['none'] / total:.0%}"
    )
    for _, line in sorted(lines, reverse=True)[: args.episodes]:
        print(line)


def main() -> None:
    """Run the variants in turn for each round; print each run's episodes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--variants",
        default="memory,baseline",
        help="VARIANT or VARIANT/freeze (gc.freeze at start)",
    )
    parser.add_argument("--rate", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=1)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--connections", type=int, default=256)
    parser.add_argument("--slow-ms", type=float, default=5)
    parser.add_argument("--sample-ms", type=float, default=5)
    parser.add_argument("--episodes", type=int, default=15, help="the worst episodes printed")
    parser.add_argument("--gc-freeze", action="store_true", help="the server freezes at start")
    args = parser.parse_args()
    pin_to_cpu(1)
    with tempfile.TemporaryDirectory(prefix="opensms-tail-") as workdir:
        for _ in range(args.rounds):
            for variant in args.variants.split(","):
                analyse(variant, one_run(variant, args, workdir), args)


if __name__ == "__main__":
    main()
