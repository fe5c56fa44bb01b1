"""Run every benchmark in turn and print each one's JSON summary (``make bench``).

Each benchmark reports ratios measured in its own run, because absolute numbers drift on these
machines. ``wrk`` (Debian's package) drives the receiver benchmarks: it is installed when missing.
A throwaway ``redis-server`` is started on a free port for the Redis figure;
``bench_replicas.py`` starts its own.

    .venv/bin/python bench/run.py [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from _util import free_port

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
    """Client, receiver (memory, SQLite, Redis), merge, memory and replica benchmarks."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="shorter runs, noisier figures")
    quick = parser.parse_args().quick
    ensure_wrk()
    run("bench_client.py", "--requests", "1500" if quick else "3000")
    run("bench_merge.py", "--rounds", "1" if quick else "3")
    run("bench_memory.py", *(["--requests", "1000"] if quick else []))
    duration = "3" if quick else "5"
    if shutil.which("redis-server") is None:  # `make redis-server` installs it
        print("\n(no redis-server: the receiver benchmark runs without its Redis variant)")
        run("bench_receiver.py", "--duration", duration)
    else:
        with redis_server() as url:
            run("bench_receiver.py", "--duration", duration, "--redis", url)
    run("bench_replicas.py", "--duration", duration)


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway redis-server (no persistence) on a free 127.0.0.1 port; yields its URL."""
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        proc = subprocess.Popen([*argv, "--dir", folder], stdout=subprocess.DEVNULL)  # noqa: S603
        try:
            _wait_for_port(port)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def _wait_for_port(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError("redis-server did not start in 10 s")


if __name__ == "__main__":
    main()
