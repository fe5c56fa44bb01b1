"""Polling inbound numbers: the poller's pacing (unit), and the inbox polling the simulator."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from inbound_helpers import TOKEN, FlakyStore
from stream_helpers import take

from opensms_async import (
    InboundSmsMessage,
    InboundSmsMessageList,
    Inbox,
    OpenSMSClient,
    RateLimitError,
    ServerError,
    StoreUnavailableError,
    create_receiver_app,
)
from opensms_async._inbox_poller import InboundPoller
from opensms_async._reassembly import Part
from opensms_async._server import serve
from opensms_async.stores.inbound import Received
from opensms_async.testing import Fault, RunningSimulator, run_simulator

NUMBER = "+32470000000"
CANONICAL = "tel:+32470000000"
OTHER = "tel:+32470000009"
HANDSET = "+32470000001"
LONG = "".join(f"{i:03d} " for i in range(100))  # 3 parts
FAST: dict[str, Any] = {"seed": 3, "step_delay": (0.01, 0.02), "inbound_retry_time_scale": 1e-4}


# -- the poller's pacing, on a clock the test moves -------------------------------------------


class Paced:
    """A poller over scripted pages, a clock the test moves and records of what it recorded."""

    def __init__(self, numbers: Sequence[str] = (CANONICAL,), **kwargs: Any) -> None:
        self.now = 1000.0
        self.pages: list[InboundSmsMessageList | Exception] = []
        self.recorded: list[list[str]] = []
        self.seen: set[str] = set()
        self.record_failures = 0
        self.sleeps: list[float] = []
        settings = {"interval": 10.0, "max_interval": 80.0, "batch_size": 200, **kwargs}
        self.poller = InboundPoller(
            self.fetch, self.record, numbers, clock=lambda: self.now, sleep=self.sleep, **settings
        )

    async def fetch(self, number: str, batch_size: int) -> InboundSmsMessageList:
        page = self.pages.pop(0) if self.pages else InboundSmsMessageList()
        if isinstance(page, Exception):
            raise page
        return page

    async def record(self, parts: Sequence[Part]) -> Received:
        if self.record_failures:
            self.record_failures -= 1
            raise StoreUnavailableError("down (test)")
        ids = [p.message_id for p in parts]
        self.recorded.append(ids)
        duplicates = sum(1 for i in ids if i in self.seen)
        self.seen.update(ids)
        return Received([], duplicates)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def wait(self, number: str = CANONICAL) -> float:
        """Seconds from now to the next fetch of ``number``."""
        return self.poller.next_fetch(number) - self.now


def page(*ids: str, pending: int | None = None) -> InboundSmsMessageList:
    """A page of polled messages."""
    messages = [
        InboundSmsMessage(message_id=i, sender_address="1", destination_address="2", message=i)
        for i in ids
    ]
    return InboundSmsMessageList(messages=messages, total_pending=pending)


def rate_limited(retry_after: float | None) -> RateLimitError:
    """The client's error for a 429."""
    request = httpx.Request("GET", "https://api.example/inbound")
    response = httpx.Response(429, request=request)
    return RateLimitError("429", response=response, body="", retry_after=retry_after)


async def test_empty_fetches_back_off_up_to_the_maximum() -> None:
    """Nothing new: the wait doubles from the interval up to max_interval; news resets it."""
    paced = Paced()
    waits = []
    for _ in range(6):
        await paced.poller.poll(CANONICAL)
        waits.append(paced.wait())
    assert waits == [10.0, 20.0, 40.0, 80.0, 80.0, 80.0]
    paced.pages.append(page("a"))
    await paced.poller.poll(CANONICAL)
    assert paced.wait() == 10.0


async def test_a_page_of_duplicates_counts_as_empty() -> None:
    """An inbox that does not consume returns the same page: the poller backs off anyway."""
    paced = Paced()
    paced.pages += [page("a", "b", pending=5), page("a", "b", pending=5), page("a", "b", pending=5)]
    await paced.poller.poll(CANONICAL)
    assert paced.wait() == 0.0  # news and more pending: again at once
    await paced.poller.poll(CANONICAL)
    assert paced.wait() == 10.0  # nothing new, however many are said to be pending
    await paced.poller.poll(CANONICAL)
    assert paced.wait() == 20.0


async def test_more_pending_is_fetched_at_once() -> None:
    """A page with news while more are pending: the next fetch follows immediately."""
    paced = Paced()
    paced.pages += [page("a", pending=3), page("b", pending=2), page("c", pending=1)]
    await paced.poller.poll(CANONICAL)
    await paced.poller.poll(CANONICAL)
    assert paced.wait() == 0.0
    await paced.poller.poll(CANONICAL)
    assert paced.wait() == 10.0
    assert paced.recorded == [["a"], ["b"], ["c"]]


async def test_a_429_pauses_every_number_for_its_retry_after() -> None:
    """A 429 holds every number: for Retry-After, longer as 429s repeat, never beyond 60 s."""
    paced = Paced(numbers=(CANONICAL, OTHER))
    paced.pages.append(rate_limited(7.0))
    await paced.poller.poll(CANONICAL)
    assert paced.wait(CANONICAL) == paced.wait(OTHER) == 7.0
    paced.now += 7.0
    paced.pages.append(rate_limited(None))
    await paced.poller.poll(OTHER)
    assert paced.wait(OTHER) == 2.0  # the second 429 in a row: 1 s doubled
    paced.now += 2.0
    paced.pages.append(rate_limited(3600.0))
    await paced.poller.poll(CANONICAL)
    assert paced.wait(OTHER) == 60.0
    paced.now += 60.0
    paced.pages.append(page("a"))
    await paced.poller.poll(CANONICAL)  # through: the streak ends
    paced.pages.append(rate_limited(None))
    await paced.poller.poll(CANONICAL)
    assert paced.wait(OTHER) == 1.0


async def test_other_errors_back_off_like_an_empty_fetch() -> None:
    """A 5xx (after the client's own handling) is logged and the number waits its backoff."""
    paced = Paced()
    request = httpx.Request("GET", "https://api.example/inbound")
    paced.pages.append(ServerError("503", response=httpx.Response(503, request=request), body=""))
    await paced.poller.poll(CANONICAL)
    assert paced.wait() == 10.0


async def test_a_fetched_page_is_recorded_again_until_the_store_takes_it() -> None:
    """The store failing after a fetch (which may have consumed the page): retried, not lost."""
    paced = Paced()
    paced.record_failures = 3
    paced.pages.append(page("a", "b"))
    await paced.poller.poll(CANONICAL)
    assert paced.recorded == [["a", "b"]]
    assert paced.sleeps == [0.25, 0.5, 1.0]


# -- the inbox polling the simulator ----------------------------------------------------------


def polling_inbox(sim: RunningSimulator, store: Any = "memory://", **kwargs: Any) -> Inbox:
    """An inbox polling NUMBER on the simulator, quickly."""
    client = OpenSMSClient(api_key=sim.api_key, base_url=sim.base_url)
    settings = {"poll_interval": 0.05, "max_poll_interval": 0.2, **kwargs}
    return Inbox(store, client=client, poll_numbers=[NUMBER], **settings)


@pytest.mark.integration
@pytest.mark.parametrize("consumes", [True, False])
async def test_polled_messages_come_once_and_whole(consumes: bool) -> None:
    """Whether a fetch consumes the inbox or not: each message once, the long one joined."""
    async with run_simulator(inbound_numbers=(NUMBER,), inbox_consumes=consumes, **FAST) as sim:
        long = sim.simulator.inject_inbound(HANDSET, NUMBER, LONG)
        sim.simulator.inject_inbound(HANDSET, NUMBER, "one")
        sim.simulator.inject_inbound(HANDSET, NUMBER, "two")
        inbox = polling_inbox(sim)
        async with inbox.client, inbox:  # type: ignore[union-attr]
            messages = await take(inbox.messages(), 3)
            assert inbox._poller is not None
            fetched = inbox._poller.fetches
            async with asyncio.timeout(30):
                while inbox._poller.fetches < fetched + 3:  # noqa: ASYNC110 - a task polls
                    await asyncio.sleep(0.02)
            assert await inbox.store.read_messages(None) == messages  # nothing came twice
    assert sorted(m.text for m in messages) == sorted([LONG, "one", "two"])
    assert {m.source for m in messages} == {"poll"}
    assert next(m for m in messages if m.text == LONG).message_id == long.message_id
    assert sim.simulator.inbox_size(NUMBER) == (0 if consumes else 5)


@pytest.mark.integration
async def test_more_than_a_page_is_fetched_without_waiting_the_interval() -> None:
    """Five messages, pages of two, a minute between polls: all come, since more are pending."""
    async with run_simulator(inbound_numbers=(NUMBER,), **FAST) as sim:
        for n in range(5):
            sim.simulator.inject_inbound(HANDSET, NUMBER, f"m{n}")
        inbox = polling_inbox(sim, poll_interval=60.0, max_poll_interval=60.0, poll_batch_size=2)
        async with inbox.client, inbox:  # type: ignore[union-attr]
            messages = await take(inbox.messages(), 5)
    assert [m.text for m in messages] == [f"m{n}" for n in range(5)]


@pytest.mark.integration
async def test_a_429_with_retry_after_is_waited_out() -> None:
    """The API answers 429 with Retry-After: the poller waits, then fetches what is there."""
    async with run_simulator(inbound_numbers=(NUMBER,), **FAST) as sim:
        sim.simulator.inject_inbound(HANDSET, NUMBER, "after the pause")
        sim.simulator.add_fault(Fault.respond(429, retry_after=0.3, endpoint="inbound_messages"))
        inbox = polling_inbox(sim)
        async with inbox.client, inbox:  # type: ignore[union-attr]
            (message,) = await take(inbox.messages(), 1)
    assert message.text == "after the pause"


@pytest.mark.integration
async def test_a_consumed_page_survives_a_store_outage() -> None:
    """The store down when a consuming fetch returns: the page is recorded once it is back."""
    async with run_simulator(inbound_numbers=(NUMBER,), **FAST) as sim:
        sim.simulator.inject_inbound(HANDSET, NUMBER, "kept")
        inbox = polling_inbox(sim, FlakyStore(failures=2))
        async with inbox.client, inbox:  # type: ignore[union-attr]
            (message,) = await take(inbox.messages(), 1)
    assert message.text == "kept"
    assert sim.simulator.inbox_size(NUMBER) == 0  # it was consumed by the first fetch


@pytest.mark.integration
async def test_a_message_both_posted_and_polled_comes_once() -> None:
    """Posted to the receiver and kept in the inbox for polling: one message, once."""
    config = {**FAST, "inbox_with_subscription": True}
    async with run_simulator(inbound_numbers=(NUMBER,), **config) as sim:
        inbox = polling_inbox(sim)
        app = create_receiver_app(None, inbox=inbox, inbound_security_token=TOKEN)
        async with inbox.client, serve(app) as server:  # type: ignore[union-attr]
            sim.simulator.route_inbound_to(server.url + "/sms/inbound")
            async with OpenSMSClient(api_key=sim.api_key, base_url=sim.base_url) as client:
                await client.create_inbound_subscription("https://me.example/in", TOKEN, False)
            sent = sim.simulator.inject_inbound(HANDSET, NUMBER, LONG)
            await sim.simulator.settle(timeout=30)
            (message,) = await take(inbox.messages(), 1)
            async with asyncio.timeout(30):
                while sim.simulator.inbox_size(NUMBER):  # noqa: ASYNC110 - the inbox's task polls
                    await asyncio.sleep(0.02)
            assert await inbox.store.read_messages(None) == [message]
    assert (message.text, message.message_id) == (LONG, sent.message_id)
