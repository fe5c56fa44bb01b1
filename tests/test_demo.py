"""``opensms demo``: the story ends final, and its summary adds up."""

from __future__ import annotations

import io
import re

import pytest

from opensms_async._demo import run_demo

pytestmark = pytest.mark.integration


def numbers(pattern: str, text: str) -> tuple[int, ...]:
    """The integers ``pattern``'s groups capture in ``text``."""
    match = re.search(pattern, text)
    assert match is not None, (pattern, text)
    return tuple(int(group) for group in match.groups())


@pytest.mark.parametrize(("seed", "drop_rate"), [(7, 0.3), (11, 0.6), (3, 0.0)])
async def test_the_demo_summary_adds_up(seed: int, drop_rate: float) -> None:
    """Every count of the summary is the sum of its parts, and every dropped final callback is
    a final state recovered by polling (the demo once claimed 3 recovered with 2 polled)."""
    out = io.StringIO()
    assert await run_demo(seed=seed, drop_rate=drop_rate, out=out) == 0
    text = " ".join(out.getvalue().split())
    planned, acked, dropped = numbers(
        r"(\d+) planned by the simulator .*?: (\d+) acknowledged by the receiver, (\d+) dropped",
        text,
    )
    assert "failed" not in text.split("what happened")[1].split("polls")[0]
    assert planned == acked + dropped
    advanced, dups, known = numbers(
        r"acknowledged: (\d+) advanced a state, (\d+) were duplicates, (\d+) told", text
    )
    assert acked == advanced + dups + known
    assert min(advanced, dups, known) >= 0
    final_drops, superseded = numbers(r"dropped: (\d+) carried a final state, (\d+) a state", text)
    assert dropped == final_drops + superseded
    by_poll, lost_polled, raced = numbers(
        r"(\d+) final state\(s\) came from polling the API: (\d+) whose callback was dropped, "
        r"(\d+) polled before",
        text,
    )
    assert lost_polled == final_drops
    assert by_poll == lost_polled + raced
    total, send, callback, poll = numbers(
        r"events (\d+) = (\d+) from send \+ (\d+) from callback \+ (\d+) from poll", text
    )
    assert total == send + callback + poll
    assert callback == advanced
    assert send <= 6  # a callback may come before the send's own answer
    assert "6 recipients, all final: True" in text
    assert text.count(" via poll") == by_poll
    assert "next steps" in text
    if drop_rate == 0.0:
        assert dropped == 0 and by_poll == raced
