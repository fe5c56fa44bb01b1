"""Run every benchmark in turn and print each one's JSON summary (``make bench``).

Each benchmark reports ratios measured in its own run, because absolute numbers drift on these
machines. ``wrk`` (Debian's package) drives the receiver benchmarks: it is installed when missing.
A throwaway ``redis-server`` is started on a free port for the Redis figure;
``bench_replicas.py`` starts its own.

    .venv/bin/python bench/run.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _util import redis_server

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def ensure_wrk() -> None:
    """Install Debian's wrk when it is missing (as root, or through sudo)."""
    if shutil.which("wrk"):
        return
    sudo = [] if _is_root() else ["sudo"]
    subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "wrk"], check=True)  # noqa: S603


def _is_root() -> bool:
    return os.geteuid() == 0


def run(script: str, *args: str) -> None:
    """Run one benchmark script, its output passed through."""
    print(f"\n== {script} {' '.join(args)}", flush=True)
    subprocess.run([sys.executable, str(HERE / script), *args], check=True, cwd=ROOT)  # noqa: S603


def main() -> None:
    """Client, receiver (memory, SQLite, Redis), merge, memory, replica and OpenTelemetry
    (no-SDK cost) benchmarks."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="shorter runs, noisier figures")
    quick = parser.parse_args().quick
    ensure_wrk()
    run("bench_client.py", "--seconds", "0.8" if quick else "1.5")
    run("bench_merge.py", "--rounds", "1" if quick else "3")
    run("bench_memory.py", *(["--requests", "1000"] if quick else []))
    duration = "3" if quick else "5"
    if shutil.which("redis-server") is None:  # `make redis-server` installs it
        print("\n(no redis-server: the receiver benchmark runs without its Redis variant)")
        run("bench_receiver.py", "--duration", duration)
    else:
        with tempfile.TemporaryDirectory() as folder, redis_server(folder) as url:
            run("bench_receiver.py", "--duration", duration, "--redis", url)
    run("bench_replicas.py", "--duration", duration)
    run("bench_otel.py", "--rounds", "3" if quick else "5")


if __name__ == "__main__":
    main()
