"""Every benchmark in turn, then ONE table: every figure beside its target (``make bench``).

Each benchmark runs in its own process and writes its rows (``--json-out``); this prints them
together, with the machine's load when it started and ended (figures on a shared machine are
noisy: every ratio is measured within one benchmark's run, rounds interleaved). A benchmark that
fails shows as a failed row and makes the exit status 1; the others still run.

    .venv/bin/python bench/run.py [--quick] [--only receiver,latency,...] [--markdown]
        [--replicas]

``--quick`` runs shorter and fewer rounds (noisier figures); ``--only`` picks benchmarks by
name (client, receiver, latency, merge, memory, otel); ``--replicas`` adds the scale-out benchmark
(``bench_replicas.py``, its own JSON after the table: no target); ``--markdown`` prints the
table as Markdown. ``wrk`` (Debian's package) is installed when missing; ``redis-server`` is
needed for the Redis figures (``make redis-server``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _util import format_rows, row

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

BENCHMARKS: dict[str, tuple[str, list[str], list[str]]] = {
    # name: (script, its options, its options with --quick)
    "client": (
        "bench_client.py",
        ["--seconds", "2", "--rounds", "5"],
        ["--seconds", "0.8", "--rounds", "1"],
    ),
    "receiver": (
        "bench_receiver.py",
        # Five short pairs, not three long ones: on a shared host one pair's ratio swings by
        # up to 0.25 (steal), and a median of three landed on either side of a target.
        ["--duration", "3", "--rounds", "5"],
        ["--duration", "2", "--rounds", "1"],
    ),
    "latency": (
        "bench_latency.py",
        ["--seconds", "10", "--rounds", "3"],
        ["--seconds", "3", "--rounds", "1"],
    ),
    "merge": ("bench_merge.py", ["--rounds", "3"], ["--rounds", "1"]),
    "memory": ("bench_memory.py", [], ["--requests", "1000"]),
    "otel": ("bench_otel.py", ["--rounds", "5"], ["--rounds", "3", "--seconds", "1"]),
}


def ensure_wrk() -> None:
    """Install Debian's wrk when it is missing (as root, or through sudo)."""
    if shutil.which("wrk"):
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "wrk"], check=True)  # noqa: S603


def run(name: str, quick: bool, folder: str) -> list[dict[str, Any]]:
    """Run one benchmark (its own output passed through); its rows, or a row saying it failed."""
    script, full, short = BENCHMARKS[name]
    out = os.path.join(folder, f"{name}.json")
    argv = [sys.executable, str(HERE / script), *(short if quick else full), "--json-out", out]
    print(f"\n== {' '.join(argv[1:-2])}", flush=True)
    started = time.monotonic()
    done = subprocess.run(argv, cwd=ROOT, check=False)  # noqa: S603
    took = time.monotonic() - started
    if done.returncode != 0 or not os.path.exists(out):
        return [row(name, f"{script} failed", None, "", note=f"exit status {done.returncode}")]
    rows: list[dict[str, Any]] = json.loads(Path(out).read_text())
    print(f"   ({took:.0f} s)", flush=True)
    return rows


def conditions() -> str:
    """The machine's load (1-minute load average) right now."""
    load = os.getloadavg()
    return f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"


def machine() -> str:
    """The machine, its processor named (the receiver's ratios differ between processors)."""
    return f"{os.cpu_count()} CPUs ({cpu_model()}), Python {platform.python_version()}"


def cpu_model() -> str:
    """The processor as Linux names it (model name, family and model: a virtual machine's
    name alone may not tell its generation), else what ``platform`` knows."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                name, _, value = line.partition(":")
                if not name.strip():
                    break  # the first processor's block ends: the others are alike
                fields.setdefault(name.strip(), value.strip())
    except OSError:
        pass
    model = fields.get("model name") or platform.processor() or platform.machine() or "unknown"
    if "cpu family" in fields and "model" in fields:
        model += f", family {fields['cpu family']} model {fields['model']}"
    return model


def markdown(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table."""
    lines = ["| figure | value | target | verdict | note |", "|---|---|---|---|---|"]
    for r in rows:
        value = r["value"]
        if value is None:
            cell = "—"
        elif r["unit"] == "ratio":
            cell = f"{value:.2f}"
        elif r["unit"] == "ms":
            cell = f"{value:.1f} ms"
        else:
            cell = f"{value:,.0f} {r['unit']}"
        verdict = {True: "met", False: "missed", None: ""}[r["passed"]]
        lines.append(f"| {r['name']} | {cell} | {r['target']} | {verdict} | {r['note']} |")
    return "\n".join(lines)


def main() -> None:
    """Run the chosen benchmarks and print the one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs, noisier figures")
    parser.add_argument("--only", help=f"comma-separated, of {','.join(BENCHMARKS)}")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--replicas", action="store_true", help="also run bench_replicas.py")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(BENCHMARKS)
    unknown = set(names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    if {"receiver", "latency"} & set(names):
        ensure_wrk()
    before = conditions()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="opensms-bench-run-") as folder:
        for name in names:
            rows += run(name, args.quick, folder)
    if args.replicas:
        print("\n== bench_replicas.py (scale-out; no target, see its docstring)", flush=True)
        duration = ["--duration", "3" if args.quick else "5"]
        subprocess.run([sys.executable, str(HERE / "bench_replicas.py"), *duration], check=False)  # noqa: S603
    print(
        f"\nmake bench{' (--quick)' if args.quick else ''} on {machine()}:"
        f" start {before}; end {conditions()}"
    )
    print(markdown(rows) if args.markdown else format_rows(rows))
    missed = [r["name"] for r in rows if r["passed"] is False]
    print(f"\n{len(missed)} target(s) missed" + (": " + "; ".join(missed) if missed else ""))
    if any(r["value"] is None and r["unit"] == "" for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
