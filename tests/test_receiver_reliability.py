"""The receiver under faults and shutdown, over real sockets (issue 8).

- A store that hangs (redis-server stopped with SIGSTOP, a SQLite file whose write lock another
  process holds) is answered 503 by the record deadline, not after the store's own timeouts.
- ``/healthz`` answers 503 while the store cannot record, and 200 again once it can.
- ``opensms receive`` stopped with SIGTERM under load answers every callback 204 (recorded) or
  503, never 500: bodies still arriving, records stuck behind a lock, callbacks flowing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from receiver_processes import PATH, TOKEN, receiver_process
from redis_server import RedisServer, serving, start_redis_server
from starlette.applications import Starlette
from starlette.routing import Route

from opensms_async import DeliveryEvent, DeliveryTracker, DeliveryUpdate, create_receiver_app
from opensms_async import receiver as receiver_module
from opensms_async.receiver import _PROBE_TTL as PROBE_TTL
from opensms_async.receiver import DEFAULT_RECORD_DEADLINE, CallbackEndpoint
from opensms_async.stores import MemoryStore, SQLiteStore, Store, open_store
from opensms_async.testing import delivery_callback_body, serve

pytestmark = pytest.mark.integration

SQLITE_BUSY_TIMEOUT = 5.0
"""How long the SQLite store itself waits for a lock before it fails (its ``timeout=5.0``)."""
HEALTH_WAIT = 60.0
"""How long a test waits for ``/healthz`` to change: generous, for a loaded 2-core machine."""


def callback_body(index: int) -> bytes:
    """A distinct BICS callback: recipient ``index`` of request ``rel-<index // 10>`` delivered."""
    request_id, address = pair(index)
    body = delivery_callback_body(request_id, address, "DeliveredToTerminal", security_token=TOKEN)
    return json.dumps(body).encode()


def pair(index: int) -> tuple[str, str]:
    """The (request id, address) callback ``index`` is about."""
    return f"rel-{index // 10:04d}", f"tel:+3361{index:07d}"


# --- faults: a locked SQLite file, a stopped redis-server -------------------------------------

_LOCKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


@dataclasses.dataclass
class WriteLock:
    """Another process holding a SQLite file's write lock (``BEGIN IMMEDIATE``) until released."""

    process: asyncio.subprocess.Process

    async def release(self) -> None:
        """Roll the other process's transaction back and wait for it to exit."""
        if self.process.returncode is None and self.process.stdin is not None:
            self.process.stdin.write(b"\n")
            with contextlib.suppress(ConnectionError):
                await self.process.stdin.drain()
            async with asyncio.timeout(30):
                await self.process.wait()


@contextlib.asynccontextmanager
async def sqlite_write_lock(path: Path) -> AsyncIterator[WriteLock]:
    """Hold ``path``'s write lock in another process for the block (or until ``release()``)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _LOCKER,
        str(path),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    lock = WriteLock(process)
    try:
        assert process.stdout is not None
        async with asyncio.timeout(30):
            assert await process.stdout.readline() == b"locked\n"
        yield lock
    finally:
        with contextlib.suppress(TimeoutError):
            await lock.release()
        if process.returncode is None:
            process.kill()
            await process.wait()


@contextlib.contextmanager
def stopped(server: RedisServer) -> Iterator[None]:
    """redis-server frozen by SIGSTOP for the block: connections open, nothing answered."""
    server.pause()
    try:
        yield
    finally:
        server.resume()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, to stop, kill and restart."""
    with serving(start_redis_server(tmp_path / "redis")) as server:
        yield server


# --- an in-process receiver --------------------------------------------------------------------


@dataclasses.dataclass
class Receiver:
    """A receiver served by uvicorn on a free port, its tracker and an HTTP client."""

    tracker: DeliveryTracker
    url: str
    http: httpx.AsyncClient

    async def post(self, index: int) -> httpx.Response:
        """POST callback ``index``."""
        return await self.http.post(self.url + PATH, content=callback_body(index))

    async def health(self) -> httpx.Response:
        """GET /healthz."""
        return await self.http.get(self.url + "/healthz")

    async def wait_health(self, status: int) -> httpx.Response:
        """The first /healthz answer with ``status`` (AssertionError after ``HEALTH_WAIT``)."""
        deadline = time.monotonic() + HEALTH_WAIT
        seen = []
        while time.monotonic() < deadline:
            response = await self.health()
            if response.status_code == status:
                return response
            seen.append(response.status_code)
            await asyncio.sleep(0.1)
        raise AssertionError(f"/healthz never answered {status} in {HEALTH_WAIT} s: {seen[-5:]}")


@contextlib.asynccontextmanager
async def running(store: Store | str, **options: Any) -> AsyncIterator[Receiver]:
    """Run a receiver over ``store`` (``create_receiver_app`` keyword ``options``)."""
    tracker = DeliveryTracker(store=store)
    app = create_receiver_app(tracker, TOKEN, path=PATH, **options)
    # The client waits far longer than any store timeout: a late answer must be seen as late.
    async with serve(app) as server, httpx.AsyncClient(timeout=60, trust_env=False) as http:
        yield Receiver(tracker, server.url, http)


async def timed(awaitable: Any) -> tuple[Any, float]:
    """The result of ``awaitable`` and the seconds it took."""
    started = time.monotonic()
    result = await awaitable
    return result, time.monotonic() - started


# --- 5: a hung store is answered by the deadline -------------------------------------------------


async def test_locked_sqlite_is_answered_503_by_the_record_deadline(tmp_path: Path) -> None:
    """Callbacks the SQLite store cannot record (another process holds the write lock) get 503 by
    the record deadline, not after SQLite's own 5 s; posted again later they are recorded once."""
    path = tmp_path / "receiver.db"
    async with running(SQLiteStore(path), record_deadline=0.5) as receiver:
        async with sqlite_write_lock(path):
            answers, took = await timed(asyncio.gather(*(receiver.post(i) for i in range(20))))
            assert [r.status_code for r in answers] == [503] * 20
            assert took < SQLITE_BUSY_TIMEOUT - 1.5  # the 0.5 s deadline, with a wide margin
        # The abandoned writes may land after their 503: the merge makes that harmless.
        assert [(await receiver.post(i)).status_code for i in range(20)] == [204] * 20
        events = await receiver.tracker.store.read_events(None, limit=100)
        assert sorted((e.request_id, e.address) for e in events) == sorted(map(pair, range(20)))


async def test_stopped_redis_is_answered_503_by_the_default_deadline(
    own_redis: RedisServer,
) -> None:
    """With redis-server frozen (SIGSTOP), a callback gets 503 by the default record deadline
    (it came after 15-30 s before), and is recorded once Redis runs again."""
    assert DEFAULT_RECORD_DEADLINE <= 3.0
    async with running(own_redis.url) as receiver:
        assert (await receiver.post(0)).status_code == 204
        with stopped(own_redis):
            response, took = await timed(receiver.post(1))
            assert response.status_code == 503
            assert took < DEFAULT_RECORD_DEADLINE + 4.0  # generous: it was 15.1 s and 29.7 s
        assert (await receiver.post(1)).status_code == 204
        assert await receiver.tracker.get(*pair(1)) is not None


class SlowStore(MemoryStore):
    """A memory store whose writes take ``delay`` seconds (forever with None)."""

    def __init__(self, delay: float | None) -> None:
        super().__init__()
        self.delay = delay

    async def apply_events(self, updates: Sequence[DeliveryUpdate]) -> list[DeliveryEvent]:
        """Wait, then merge as usual."""
        if self.delay is None:
            await asyncio.Event().wait()
        else:
            await asyncio.sleep(self.delay)
        return await super().apply_events(updates)


async def test_the_deadline_cuts_no_record_short() -> None:
    """Records well within the deadline are answered 204, however many are in flight; a hung one
    is answered 503, and not before 15/16 of the deadline."""
    store = SlowStore(0.2)
    async with running(store, record_deadline=1.6) as receiver:
        answers = await asyncio.gather(*(receiver.post(i) for i in range(50)))
        assert {r.status_code for r in answers} == {204}
        store.delay = None
        response, took = await timed(receiver.post(50))
        assert response.status_code == 503
        assert took >= 1.6 * 15 / 16


def test_record_deadline_must_be_a_positive_number() -> None:
    """create_receiver_app refuses a zero, negative, infinite or non-numeric record deadline."""
    tracker = DeliveryTracker()
    for bad in (0, -1.0, float("inf"), float("nan"), "2"):
        with pytest.raises(ValueError, match="record_deadline"):
            create_receiver_app(tracker, TOKEN, record_deadline=bad)  # type: ignore[arg-type]


async def test_an_unexpected_error_is_answered_503_not_500() -> None:
    """A bug outside the record (here the clock the parser reads fails) is answered 503 and
    logged, never 500."""

    def broken_clock() -> float:
        raise RuntimeError("the clock is broken")

    tracker = DeliveryTracker()
    endpoint = CallbackEndpoint(tracker, [TOKEN], clock=broken_clock)
    app = Starlette(routes=[Route(PATH, endpoint, methods=["POST"])])
    async with tracker, serve(app) as server, httpx.AsyncClient(trust_env=False) as http:
        response = await http.post(server.url + PATH, content=callback_body(0))
    assert response.status_code == 503


# --- /healthz says whether the store can record ------------------------------------------------


async def test_healthz_follows_a_stopped_and_a_killed_redis(own_redis: RedisServer) -> None:
    """/healthz goes 503 (with a reason) within seconds of redis-server being frozen or killed,
    with no callback traffic, and back to 200 once it runs again."""
    async with running(own_redis.url) as receiver:
        assert (await receiver.health()).json() == {"status": "ok"}
        with stopped(own_redis):
            frozen = await receiver.wait_health(503)
            assert frozen.json()["status"] == "unavailable"
            assert "did not answer" in frozen.json()["reason"]
        await receiver.wait_health(200)
        own_redis.kill()
        killed = await receiver.wait_health(503)
        assert killed.json()["status"] == "unavailable" and killed.json()["reason"]
        own_redis.start()
        await receiver.wait_health(200)
        assert (await receiver.post(0)).status_code == 204


async def test_healthz_follows_a_locked_sqlite_file(tmp_path: Path) -> None:
    """A callback that cannot be recorded (SQLite write lock held elsewhere) turns /healthz 503
    at once; once the lock is gone /healthz is back to 200 with no callback needed."""
    path = tmp_path / "receiver.db"
    async with running(SQLiteStore(path), record_deadline=0.5) as receiver:
        assert (await receiver.health()).status_code == 200
        async with sqlite_write_lock(path) as lock:
            assert (await receiver.post(0)).status_code == 503
            response = await receiver.health()
            assert response.status_code == 503
            assert response.json() == {
                "status": "unavailable",
                "reason": "the last callback could not be recorded",
            }
            await lock.release()
        await receiver.wait_health(200)
        assert (await receiver.post(0)).status_code == 204


class CountingStore(MemoryStore):
    """A memory store that counts the health probe's reads and makes each take 0.3 s."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def last_cursor(self) -> str | None:
        """The newest cursor, slowly, counted."""
        self.reads += 1
        await asyncio.sleep(0.3)
        return await super().last_cursor()


class HealthClock:
    """What the receiver module sees as ``time``: a ``monotonic()`` that moves only when told, so
    "within a second" is the test's to say, not how fast a loaded machine answered."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        """The current manual time."""
        return self.now


async def test_healthz_checks_share_one_store_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Concurrent /healthz checks share one store read, and checks within a second reuse it:
    a load balancer asking often does not hammer the store."""
    clock = HealthClock()
    monkeypatch.setattr(receiver_module, "time", clock)
    store = CountingStore()
    async with running(store) as receiver:
        store.reads = 0  # the tracker read the newest cursor when it opened
        answers = await asyncio.gather(*(receiver.health() for _ in range(20)))
        assert store.reads == 1  # twenty at once (each read takes 0.3 s): one shared read
        clock.now += 0.9 * PROBE_TTL
        answers += await asyncio.gather(*(receiver.health() for _ in range(20)))
        assert store.reads == 1  # within a second of it: reused
        clock.now += 0.2 * PROBE_TTL
        answers.append(await receiver.health())
        assert store.reads == 2  # a second on: read again
        assert {r.status_code for r in answers} == {200}


# --- 6: SIGTERM answers 204 or 503, never 500 --------------------------------------------------


@dataclasses.dataclass
class Flow:
    """What a steady flow of callbacks got: index -> status, and the ones never answered."""

    codes: dict[int, int] = dataclasses.field(default_factory=dict)
    unanswered: set[int] = dataclasses.field(default_factory=set)

    @property
    def acked(self) -> set[int]:
        """The callbacks answered 2xx."""
        return {index for index, code in self.codes.items() if 200 <= code < 300}


async def flow(url: str, first: int, stop: asyncio.Event, result: Flow, workers: int = 8) -> None:
    """Post distinct callbacks from index ``first`` with ``workers`` in flight until ``stop``."""
    indices = iter(range(first, first + 100_000))

    async def worker() -> None:
        async with httpx.AsyncClient(timeout=30, trust_env=False) as http:
            for index in indices:
                if stop.is_set():
                    return
                try:
                    response = await http.post(url, content=callback_body(index))
                except httpx.TransportError:
                    result.unanswered.add(index)
                    await asyncio.sleep(0.02)  # the listener is closed: do not spin
                    continue
                result.codes[index] = response.status_code

    await asyncio.gather(*(worker() for _ in range(workers)))


async def in_flight(
    port: int, index: int, sent: int | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A callback the receiver is already reading when this returns: its headers ask for
    ``100 Continue``, which the receiver sends once its app reads the body, and then the body's
    first ``sent`` bytes (all of it with None) follow.

    A request still in the listener's queue or the socket's buffer when SIGTERM comes is closed
    as idle; one the server answered ``100 Continue`` is in flight, and a graceful shutdown
    waits for it. So the tests know which case they made, without a sleep that a loaded machine
    can outlast."""
    body = callback_body(index)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n"
    ).encode()
    writer.write(head)
    await writer.drain()
    async with asyncio.timeout(30):
        assert await reader.readline() == b"HTTP/1.1 100 Continue\r\n"
        while await reader.readline() != b"\r\n":  # the end of the informational response
            pass
    writer.write(body if sent is None else body[:sent])
    await writer.drain()
    return reader, writer


async def slow_body(port: int, index: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A callback in flight whose headers and first half of body are sent, and the rest never."""
    return await in_flight(port, index, sent=len(callback_body(index)) // 2)


async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int | str:
    """The status of the answer to a raw request, or ``"closed"`` if the connection just ended."""
    try:
        line = await reader.readline()
    except ConnectionError:
        line = b""
    finally:
        writer.close()
    return int(line.split()[1]) if line else "closed"


async def stored_pairs(store_url: str, indices: set[int]) -> set[int]:
    """The callbacks among ``indices`` whose state the store holds."""
    store = open_store(store_url)
    await store.open()
    try:
        return {i for i in indices if await store.get(*pair(i)) is not None}
    finally:
        await store.aclose()


async def wait_acked(result: Flow, count: int) -> None:
    """Until ``count`` callbacks of the flow got 2xx (bounded)."""
    async with asyncio.timeout(30):
        while len(result.acked) < count:  # noqa: ASYNC110 - the flow counts, no event to wait on
            await asyncio.sleep(0.02)


async def test_sigterm_under_load_answers_204_or_503_never_500(tmp_path: Path) -> None:
    """SIGTERM while callbacks flow, bodies are still arriving and records are stuck behind
    another process's SQLite write lock: every answer is 204 or 503 (or a closed connection
    for a body never completed), never 500, and every 204 is in the store afterwards."""
    db = tmp_path / "receiver.db"
    store_url = f"sqlite:///{db}"
    result = Flow()
    stop = asyncio.Event()
    async with receiver_process(store_url, tmp_path, name="receiver") as receiver:
        flowing = asyncio.create_task(flow(receiver.callback_url, 0, stop, result))
        try:
            await wait_acked(result, 100)
            slow = [await slow_body(receiver.port, 200_000 + n) for n in range(8)]
            async with sqlite_write_lock(db) as lock:
                await asyncio.sleep(0.3)  # the flow's callbacks now wait behind the lock
                receiver.process.send_signal(signal.SIGTERM)
                async with asyncio.timeout(30):
                    slow_answers = await asyncio.gather(*(answer(*conn) for conn in slow))
                    stop.set()
                    await flowing
                await lock.release()
            assert await receiver.wait_exit(30) == 0
        finally:
            stop.set()
            await asyncio.wait({flowing}, timeout=30)

    codes = set(result.codes.values())
    assert codes <= {204, 503}, f"{codes} (stderr: {receiver.stderr()[-2000:]})"
    assert set(slow_answers) <= {503, "closed"}, slow_answers
    assert 503 in codes  # the records stuck behind the lock were answered, by the deadline
    assert await stored_pairs(store_url, result.acked) == result.acked


async def test_records_in_flight_at_sigterm_finish_in_the_graceful_shutdown(
    tmp_path: Path,
) -> None:
    """A record still waiting for the store at SIGTERM finishes (204, recorded) when the store
    answers within the record deadline, even well after uvicorn's former 2 s shutdown window."""
    db = tmp_path / "receiver.db"
    store_url = f"sqlite:///{db}"
    options = ["--record-deadline", "6"]
    async with receiver_process(store_url, tmp_path, name="receiver", options=options) as receiver:
        async with sqlite_write_lock(db) as lock:
            # All ten in flight (answered 100 Continue, body sent) when SIGTERM comes.
            posts = await asyncio.gather(*(in_flight(receiver.port, i) for i in range(10)))
            receiver.process.send_signal(signal.SIGTERM)
            await asyncio.sleep(3.0)  # past 2 s; short of the deadline and SQLite's 5 s
            await lock.release()
        async with asyncio.timeout(30):
            answers = await asyncio.gather(*(answer(*post) for post in posts))
        assert answers == [204] * 10, receiver.stderr()[-2000:]
        assert await receiver.wait_exit(30) == 0
    assert await stored_pairs(store_url, set(range(10))) == set(range(10))


async def test_a_body_completed_in_the_graceful_shutdown_is_recorded(tmp_path: Path) -> None:
    """A callback whose body is still arriving at SIGTERM, and completes within the graceful
    shutdown (record deadline + 2 s), is recorded and answered 204, even 5 s after SIGTERM."""
    store_url = f"sqlite:///{tmp_path / 'receiver.db'}"
    options = ["--record-deadline", "6"]
    async with receiver_process(store_url, tmp_path, name="receiver", options=options) as receiver:
        reader, writer = await slow_body(receiver.port, 7)  # in flight: answered 100 Continue
        receiver.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(5.5)  # the rest of the body, 5.5 s later: within the 8 s window
        writer.write(callback_body(7)[len(callback_body(7)) // 2 :])
        await writer.drain()
        async with asyncio.timeout(30):
            assert await answer(reader, writer) == 204, receiver.stderr()[-2000:]
        assert await receiver.wait_exit(30) == 0
    assert await stored_pairs(store_url, {7}) == {7}


async def test_receive_refuses_a_bad_record_deadline(tmp_path: Path) -> None:
    """`opensms receive --record-deadline 0` exits with a usage error, not a traceback."""
    command = [sys.executable, "-m", "opensms_async", "receive", "--token", TOKEN]
    command += ["--store", "memory://", "--record-deadline", "0"]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    async with asyncio.timeout(30):
        _, err = await process.communicate()
    assert process.returncode == 2
    assert b"--record-deadline: a positive number of seconds" in err
    assert b"Traceback" not in err
