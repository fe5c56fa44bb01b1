"""The client benchmark's arithmetic: ratios paired within a round, order alternating."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import bench_client
from bench_client import Sample


def samples(rates: dict[str, list[float]], cpu: dict[str, list[float]]) -> bench_client.Samples:
    """The same rates and CPU per call at both caller counts, waits of 1%."""
    return {
        name: {c: [Sample(r, u, 0.01) for r, u in zip(by, cpu[name], strict=True)] for c in (1, 64)}
        for name, by in rates.items()
    }


def test_a_ratio_is_the_median_of_the_ratios_within_each_round() -> None:
    """A burst of others' load that slows raw aiohttp in one round and the SDK in another is
    paired within each round: the figure is the median of the rounds' ratios."""
    found = bench_client.summary(
        samples(
            {"aiohttp": [100.0, 400.0, 300.0], "sdk": [90.0, 100.0, 80.0]},
            {"aiohttp": [300.0, 300.0, 300.0], "sdk": [600.0, 500.0, 400.0]},
        )
    )
    # rounds: 0.90, 0.25, 0.27 -> 0.27 (the medians taken apart would make 90 / 300 = 0.30)
    assert found["ratio_to_aiohttp"]["sdk"]["64"] == pytest.approx(0.267, abs=0.001)
    assert found["ratio_rounds"]["sdk"]["1"] == [0.9, 0.25, 0.27]
    # by CPU: 300 / 600, 300 / 500, 300 / 400 -> 0.6
    assert found["ratio_by_cpu"]["sdk"]["64"] == pytest.approx(0.6)
    assert found["waited_max"]["sdk"]["64"] == pytest.approx(0.01)
    assert found["targets"]["sdk ÷ aiohttp, 64 callers"]["pass"] is False
    assert found["req_per_s"]["aiohttp"]["1"] == 300


async def test_every_other_round_runs_the_variants_in_reverse_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No variant always runs first (or last) in a round: the order flips every round."""
    order: list[tuple[str, int]] = []

    def variant(name: str) -> Any:
        async def run(url: str, callers: int, seconds: float) -> float:
            order.append((name, callers))
            return 100.0

        return run

    plans = {name: variant(name) for name in ("aiohttp", "a", "sdk")}
    monkeypatch.setattr(bench_client, "variants", lambda: plans)
    got = await bench_client.measure_samples("http://127.0.0.1:9", 0.01, 2)
    forward = ["aiohttp", "a", "sdk"]
    expected = [(n, c) for c in (1, 64) for n in forward]
    expected += [(n, c) for c in (1, 64) for n in reversed(forward)]
    assert order == expected
    assert [len(got[n][64]) for n in forward] == [2, 2, 2]
