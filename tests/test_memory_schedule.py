"""MemoryStore's polling schedule: claiming costs nothing while none is due, and the semantics
(lease, reschedule, unschedule, earliest first) match the plain rule they implement."""

from __future__ import annotations

import random
import time

import pytest

from opensms_async.stores import PendingRequest
from opensms_async.stores.memory import MemoryStore

SENDER = "tel:+3212345"


class ModelSchedule:
    """The schedule's rule written plainly: a scan of every entry (the reference)."""

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, float | int | None]] = {}

    def schedule(self, request_id: str, tracked_at: float, poll_at: float) -> None:
        entry = self.entries.get(request_id)
        if entry is None:
            self.entries[request_id] = {
                "tracked_at": tracked_at, "next": poll_at, "attempts": 0, "lease": None
            }  # fmt: skip
            return
        entry["tracked_at"] = min(float(entry["tracked_at"] or 0.0), tracked_at)
        entry["next"] = poll_at

    def claim(self, now: float, limit: int, lease: float) -> list[tuple[str, float, int]]:
        due = sorted(
            (float(e["next"] or 0.0), rid)
            for rid, e in self.entries.items()
            if float(e["next"] or 0.0) <= now and (e["lease"] is None or float(e["lease"]) <= now)
        )[:limit]
        for _, rid in due:
            self.entries[rid]["lease"] = now + lease
        return [(rid, at, int(self.entries[rid]["attempts"] or 0)) for at, rid in due]

    def reschedule(self, request_id: str, next_poll_at: float, attempts: int) -> None:
        entry = self.entries.get(request_id)
        if entry is not None:
            entry.update(next=next_poll_at, attempts=attempts, lease=None)

    def unschedule(self, request_id: str) -> None:
        self.entries.pop(request_id, None)


def summary(claimed: list[PendingRequest]) -> list[tuple[str, float, int]]:
    """What a claim answered, in the model's terms."""
    return [(p.request_id, p.next_poll_at, p.attempts) for p in claimed]


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_schedule_matches_the_plain_rule_over_a_long_random_run(seed: int) -> None:
    """40,000 random schedules, claims (with leases running out), reschedules and unschedules
    of 40 requests give exactly the claims a scan of every entry gives, earliest first; so many
    changes to so few entries also rebuild the heaps several times on the way."""
    rng = random.Random(seed)
    store, model = MemoryStore(), ModelSchedule()
    await store.open()
    ids = [f"req-{n:02d}" for n in range(40)]
    now = 0.0
    claims = 0
    for _ in range(40_000):
        now += rng.choice([0.0, 0.5, 1.0, 3.0])
        rid, roll = rng.choice(ids), rng.random()
        poll_at = now + rng.choice([-2.0, 0.0, 1.0, 5.0, 20.0, 1e6, 1e6])  # some due, some far off
        if roll < 0.25:
            await store.schedule(rid, SENDER, tracked_at=now, poll_at=poll_at)
            model.schedule(rid, now, poll_at)
        elif roll < 0.55:
            attempts = rng.randrange(5)
            await store.reschedule(rid, next_poll_at=poll_at, attempts=attempts)
            model.reschedule(rid, poll_at, attempts)
        elif roll < 0.6:
            await store.unschedule(rid)
            model.unschedule(rid)
        else:
            limit, lease = rng.choice([1, 3, 100]), rng.choice([0.0, 2.0, 10.0])
            got = summary(await store.claim_due(now, limit=limit, lease=lease))
            assert got == model.claim(now, limit, lease), (seed, now)
            claims += len(got)
    assert claims > 1000  # the run did claim, lease and release a lot


async def test_claim_due_with_many_pending_none_due_costs_next_to_nothing() -> None:
    """With 200,000 requests pending and none due, a thousand claim_due calls (the poller's
    ticks) take well under a second in all: they no longer scan every entry (a scan took about
    25 ms a call, 25 s for these). The bound is 100 times what the heap needs."""
    async with MemoryStore() as store:
        for n in range(200_000):
            await store.schedule(f"req-{n:06d}", SENDER, tracked_at=0.0, poll_at=3600.0 + n)
        spent = 0.0
        for _ in range(1000):
            started = time.perf_counter()
            assert await store.claim_due(10.0, limit=64) == []
            spent += time.perf_counter() - started
            if spent > 1.0:  # no need to wait for the rest: it is a scan
                break
        assert spent < 1.0, f"claim_due took {spent * 1000:.0f} ms for at most 1000 calls"
        [first] = await store.claim_due(3600.0, limit=64)
        assert first.request_id == "req-000000"


async def test_a_nan_poll_time_is_refused() -> None:
    """A NaN poll time raises ValueError instead of hiding other requests from claim_due."""
    async with MemoryStore() as store:
        with pytest.raises(ValueError, match="NaN"):
            await store.schedule("req-1", SENDER, tracked_at=0.0, poll_at=float("nan"))
        await store.schedule("req-1", SENDER, tracked_at=0.0, poll_at=1.0)
        with pytest.raises(ValueError, match="NaN"):
            await store.reschedule("req-1", next_poll_at=float("nan"), attempts=1)
        assert [p.request_id for p in await store.claim_due(1.0)] == ["req-1"]
