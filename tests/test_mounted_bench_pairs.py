"""bench_receiver.py's schedule: each receiver run beside a run of its own yardstick."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from bench_receiver import Server, Variant, round_schedule

NAMES = (
    "raw",
    "starlette",
    "starlette-mounted",
    "memory/1",
    "memory-mounted/1",
    "memory-mounted/4",
)


def _servers() -> list[Server]:
    return [Server(Variant.parse(name), "http://127.0.0.1:1", 1, "stats", None) for name in NAMES]


def _names(groups: list[list[Server]]) -> list[list[str]]:
    return [[server.variant.name for server in group] for group in groups]


def test_every_receiver_run_is_beside_its_yardstick_in_every_round() -> None:
    """A mounted receiver's ratio divides two runs made back to back, never runs 15 s apart."""
    for round_no in range(4):
        groups = _names(round_schedule(_servers(), round_no, 4))
        pairs = [group for group in groups if len(group) == 2]
        assert sorted(sorted(pair) for pair in pairs) == sorted(
            [
                sorted(["memory/1", "starlette"]),
                sorted(["memory-mounted/1", "starlette-mounted"]),
                sorted(["memory-mounted/4", "starlette-mounted"]),
            ]
        )
        assert [group for group in groups if len(group) == 1] == [["raw"]]


def test_the_yardstick_goes_first_and_second_in_turn() -> None:
    """A drift of the machine during a pair counts against the receiver and the yardstick in
    turn, so it does not bias the median of the pairs' ratios one way."""
    firsts = []
    for round_no in range(2):
        groups = round_schedule(_servers(), round_no, 2)
        firsts.append({group[0].variant.receiver for group in groups if len(group) == 2})
    assert firsts == [{False}, {True}]


def test_each_round_starts_at_another_group() -> None:
    """Rounds are interleaved: the run after the warm-ups is not always the same variant's."""
    starts = {tuple(_names(round_schedule(_servers(), round_no, 3))[0]) for round_no in range(3)}
    assert len(starts) == 3
