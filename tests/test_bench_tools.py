"""The bench tools' own parsing: a variant `bench_receiver.py` cannot run is refused before any
server starts, a receiver figure says how much of its runs the hypervisor stole, and `make
bench`'s header names the processor it ran on."""

from __future__ import annotations

import builtins
import io
import os
import platform
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import _util
import bench_receiver
import run as bench_run
from bench_receiver import Variant


@pytest.mark.parametrize(
    ("name", "app", "consumers", "mounted"),
    [
        ("starlette", "starlette", 0, False),
        ("starlette-mounted", "starlette", 0, True),
        ("memory/4", "memory", 4, False),
        ("memory-mounted/1", "memory", 1, True),
        ("redis/1@against", "redis", 1, False),
        ("null/0", "null", 0, False),
    ],
)
def test_a_variant_name_gives_its_setup(name: str, app: str, consumers: int, mounted: bool) -> None:
    variant = Variant.parse(name)
    assert (variant.app, variant.consumers, variant.mounted) == (app, consumers, mounted)
    assert variant.against == name.endswith("@against")


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("baseline", "the apps are raw, starlette, memory, sqlite, redis, null"),
        ("memroy/1", "unknown variant 'memroy/1'"),
        ("memory/one", "must be a number"),
        ("starlette/1", "the bare apps have no consumers"),
        ("raw-mounted", "not mounted"),
        ("memory/1@b", "only @against"),
    ],
)
def test_a_variant_it_cannot_run_is_refused_by_name(name: str, says: str) -> None:
    """Refused at once with what is wrong, not taken as a variant whose every round then fails."""
    with pytest.raises(SystemExit) as refused:
        Variant.parse(name)
    assert says in str(refused.value)


CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 1
model name\t: AMD EPYC
stepping\t: 1

processor\t: 1
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 1
model name\t: AMD EPYC
"""


def _proc_cpuinfo(monkeypatch: pytest.MonkeyPatch, text: str | None) -> None:
    _proc_file(monkeypatch, "/proc/cpuinfo", text)


def _proc_file(monkeypatch: pytest.MonkeyPatch, faked: str, text: str | None) -> None:
    real_open = builtins.open

    def fake_open(path: Any, *args: Any, **kwargs: Any) -> Any:
        if path == faked:
            if text is None:
                raise FileNotFoundError(path)
            return io.StringIO(text)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)


def test_the_processor_is_named_with_its_family_and_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """A virtual machine's model name alone ("AMD EPYC") does not tell its generation."""
    _proc_cpuinfo(monkeypatch, CPUINFO)
    assert bench_run.cpu_model() == "AMD EPYC, family 25 model 1"


def test_without_proc_cpuinfo_the_processor_is_what_platform_knows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _proc_cpuinfo(monkeypatch, None)
    monkeypatch.setattr(platform, "processor", lambda: "arm64")
    assert bench_run.cpu_model() == "arm64"


PROC_STAT = """cpu  900 0 300 5000 10 0 5 7700 0 0
cpu0 400 0 100 2500 5 0 2 300 0 0
cpu1 500 0 200 2500 5 0 3 7400 0 0
cpu10 1 0 1 1 0 0 0 99999 0 0
intr 12345
"""


def test_steal_is_read_per_cpu_from_proc_stat(monkeypatch: pytest.MonkeyPatch) -> None:
    """CPU 0's and CPU 1's own steal column (the 8th value), in seconds; never the sum over
    the CPUs or another CPU whose number starts with 1."""
    _proc_file(monkeypatch, "/proc/stat", PROC_STAT)
    monkeypatch.setattr(os, "sysconf", lambda name: 100)
    assert _util.steal_seconds() == (3.0, 74.0)


def _run(rate: float, steal: float) -> dict[str, float]:
    return {"rate": rate, "cpu_us": 1e6 / rate, "cpu_wait": 0.01, "steal": steal}


def test_a_receiver_figure_says_how_much_of_its_runs_the_hypervisor_stole() -> None:
    """Steal is invisible to schedstat: a figure whose runs were stolen from says so, by the
    worst run, so that a low ratio from a busy host is told apart from a slow receiver."""
    variants = [Variant.parse("starlette"), Variant.parse("memory/1")]
    base = [_run(10_000, 0.0), _run(10_000, 0.02)]
    mine = [_run(9_000, 0.01), _run(5_000, 0.37)]
    results = {"starlette": list(base), "memory/1": list(mine)}
    pairs = {"starlette": [], "memory/1": list(zip(mine, base, strict=True))}
    summary = bench_receiver.summarise(variants, results, pairs)  # type: ignore[arg-type]
    notes = {r["name"]: r["note"] for r in bench_receiver.rows(variants, summary)}
    assert "steal up to 37%" in notes["memory/1 ÷ starlette"]
    assert "steal up to 2%" in notes["starlette"]
