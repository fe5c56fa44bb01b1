"""Attacks on the callback receiver: fuzzed bodies and headers (cases from ``fuzz_cases.py``).

More than 10,000 generated requests go through the receiver app in-process
(``httpx.ASGITransport``), and a smaller sample over a real socket (uvicorn, SQLite store).
Whatever arrives, the receiver answers 204, 400, 401, 413 or 422, lets no exception out, records
an update exactly when it answers 204, and never records one unless the request carried an
accepted token.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path

import httpx
import pytest
from fuzz_cases import (
    ACCEPTED,
    ALLOWED,
    FUZZ,
    PATH,
    REGRESSIONS,
    SQLITE_REGRESSIONS,
    Case,
    Chooser,
    callback_case,
    expected_statuses,
    header_set,
    hostile_case,
    json_case,
    may_record,
    raw_case,
    seeded,
    simple_auth,
    structured,
)
from hypothesis import example, given, settings
from hypothesis import strategies as st

from opensms_async import DeliveryEvent, DeliveryTracker, DeliveryUpdate, create_receiver_app
from opensms_async.stores import MemoryStore, SQLiteStore
from opensms_async.testing import serve

# --- the receiver under attack --------------------------------------------------------------


class SpyMixin:
    """Counts the writes of a store (the tracker writes through ``apply_events``)."""

    applies = 0

    async def apply_events(self, updates: Sequence[DeliveryUpdate]) -> list[DeliveryEvent]:
        """Count the call, then apply."""
        self.applies += 1
        return await super().apply_events(updates)  # type: ignore[misc, no-any-return]


class SpyMemoryStore(SpyMixin, MemoryStore):
    """A memory store that counts its writes."""


class SpySQLiteStore(SpyMixin, SQLiteStore):
    """A SQLite store that counts its writes."""


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one request did: the status, and whether the store changed."""

    status: int
    applied: bool
    logged: bool


class Harness:
    """A receiver on its own event loop, driven one case at a time from synchronous hypothesis
    tests (one loop, one tracker, one HTTP client for every example)."""

    def __init__(self, store: SpyMixin, *, real_socket: bool = False) -> None:
        self.store = store
        self.real_socket = real_socket
        self.cases = 0
        self._runner = asyncio.Runner()
        self._stack = contextlib.AsyncExitStack()

    def __enter__(self) -> Harness:
        self._runner.__enter__()
        try:
            self._runner.run(self._open())
        except BaseException:
            self._runner.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._runner.run(self._stack.aclose())
        finally:
            self._runner.__exit__(None, None, None)

    async def _open(self) -> None:
        tracker = DeliveryTracker(store=self.store)  # type: ignore[arg-type]
        await self._stack.enter_async_context(tracker)
        app = create_receiver_app(tracker, list(ACCEPTED), path=PATH, manage_tracker=False)
        if self.real_socket:
            server = await self._stack.enter_async_context(serve(app))
            transport, base = None, server.url
        else:
            transport, base = httpx.ASGITransport(app=app), "http://receiver"
        client = httpx.AsyncClient(transport=transport, base_url=base, timeout=10, trust_env=False)
        self.http = await self._stack.enter_async_context(client)

    def check(self, case: Case) -> None:
        """Send ``case`` and assert every receiver rule on the outcome."""
        outcome = self._runner.run(self._send(case))
        self.cases += 1
        context = f"{case!r:.600} -> {outcome}"
        assert outcome.status in ALLOWED, context
        assert outcome.status in expected_statuses(case), context
        # 2xx only once recorded, and nothing recorded without a 2xx.
        assert outcome.applied == (outcome.status == 204), context
        assert outcome.logged <= outcome.applied, context
        # The headline: never a stored update without an accepted token.
        assert may_record(case) or not (outcome.applied or outcome.logged), context

    async def _send(self, case: Case) -> Outcome:
        applies, cursor = self.store.applies, await self.store.last_cursor()  # type: ignore[attr-defined]
        headers = list(case.headers)
        if case.declared is not None:
            headers.append((b"content-length", case.declared))
        content: bytes | AsyncIterator[bytes] = _chunks(case.body) if case.chunked else case.body
        response = await self.http.post(PATH, content=content, headers=headers)
        logged = await self.store.last_cursor() != cursor  # type: ignore[attr-defined]
        return Outcome(response.status_code, self.store.applies != applies, logged)


async def _chunks(body: bytes) -> AsyncIterator[bytes]:
    step = max(1, len(body) // 3)
    for start in range(0, len(body), step):
        yield body[start : start + step]


@contextlib.contextmanager
def harness(*, real_socket: bool = False) -> Iterator[Harness]:
    """A receiver over the memory store (in-process) or SQLite (over a real socket)."""
    if not real_socket:
        with Harness(SpyMemoryStore()) as h:
            yield h
        return
    with (
        tempfile.TemporaryDirectory(prefix="opensms-fuzz-") as folder,
        Harness(SpySQLiteStore(Path(folder) / "fuzz.db"), real_socket=True) as h,
    ):
        yield h


# --- the fuzz tests -------------------------------------------------------------------------

BATCH = 5
"""Cases per seed in the seeded runs."""
seeds = st.integers(0, 2**64 - 1)


def run_seeded(build: Callable[[Chooser], Case], examples: int) -> int:
    """Run ``examples`` hypothesis seeds of ``BATCH`` cases each; the number of cases sent."""
    with harness() as h:

        @settings(FUZZ, max_examples=examples)
        @given(seeds)
        def run(seed: int) -> None:
            for case in seeded(build, seed, BATCH):
                h.check(case)

        run()
        return h.cases


def test_fuzz_arbitrary_bytes_and_headers() -> None:
    """3,000 random, byte-mutated and pathological bodies under arbitrary headers never crash the
    receiver, and none without an accepted token records anything."""
    assert run_seeded(raw_case, 600) >= 3_000


def test_fuzz_arbitrary_json() -> None:
    """2,500 arbitrary JSON documents, bare or as the fields of a callback with an accepted
    token, are answered 204/400/401/422 and recorded only with the token."""
    assert run_seeded(json_case, 500) >= 2_500


def test_fuzz_hostile_headers() -> None:
    """3,000 callbacks under hostile Authorization values (latin-1, random bytes, near misses,
    duplicates), odd content types and lying Content-Lengths never crash the receiver."""
    assert run_seeded(hostile_case, 600) >= 3_000


def with_examples(test: Callable[[Case], None], cases: Sequence[Case]) -> Callable[[Case], None]:
    """``test`` with every one of ``cases`` as an explicit hypothesis example (all of them, so a
    regression added to the list is run without touching the test)."""
    for case in reversed(cases):
        test = example(case)(test)
    return test


def test_fuzz_mutated_callbacks() -> None:
    """1,500 callbacks in every accepted shape, built by hypothesis draws, with odd values in any
    field and the token right, wrong, non-string, non-ASCII, surrogate, misplaced or missing,
    get exactly the answer the receiver rules prescribe (and shrink to a minimal case if not)."""
    with harness() as h:

        def check(case: Case) -> None:
            h.check(case)

        run = with_examples(check, REGRESSIONS)
        strategy = structured(
            lambda ch: dataclasses.replace(callback_case(ch), headers=simple_auth(ch))
        )
        settings(FUZZ, max_examples=1_500)(given(strategy)(run))()
        assert h.cases >= 1_500


@pytest.mark.integration
def test_fuzz_over_a_real_socket_with_sqlite() -> None:
    """300 generated callbacks under HTTP-safe hostile headers, sent to uvicorn over a real socket
    into the SQLite store, obey the same rules (the durable store refuses what memory takes)."""

    def build(ch: Chooser) -> Case:
        return dataclasses.replace(callback_case(ch, 2), headers=header_set(ch, real_socket=True))

    with harness(real_socket=True) as h:

        def check(case: Case) -> None:
            h.check(case)

        run = with_examples(check, SQLITE_REGRESSIONS)
        settings(FUZZ, max_examples=300)(given(structured(build))(run))()
        assert h.cases >= 300
