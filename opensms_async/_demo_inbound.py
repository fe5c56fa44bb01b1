"""``opensms demo``, the two-way half: a reply comes back in parts, and the inbox makes it whole.

The simulator has a handset reply with a text of three SMS, under an inbound subscription with
``concat=false``: BICS posts each part with its UDH fields, shuffled. One part is posted twice, and
the first post of another finds the store unavailable (the receiver answers 503, as it does during
a Redis failover) and is retried on BICS's schedule, shrunk so that it comes a second later. Which
parts those are follows from the seed. The inbox yields the one message, whole, once. The lines
and the summary are counted from the simulator's record of each post and from the store's answer
to each part, so that they add up.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import TextIO

import attrs

from ._client import OpenSMSClient
from ._exceptions import StoreUnavailableError
from ._inbound_message import InboundMessage
from ._inbox import Inbox
from ._lifecycle import AsyncContext
from ._reassembly import Part
from .stores.inbound import InboundStore, Received
from .testing import InboundAttempt, InjectedInbound, Simulator

__all__ = [
    "INBOUND_PATH",
    "FlakyInboundStore",
    "InboundTally",
    "inbound_story",
    "inbound_tally",
]

INBOUND_PATH = "/sms/inbound"
PUBLIC_INBOUND_URL = "https://demo.example/sms/inbound"
HANDSET = "+33612345670"
OUR_NUMBER = "+32470000000"
REPLY = "Thanks! Tuesday after 3 pm works for the delivery, the code for the gate is 4711. " * 4
RETRY_TIME_SCALE = 1 / 120
"""BICS waits 2 minutes before its first retry; the demo's simulator, a second."""
SETTLE_TIMEOUT = 15.0

RECORDED, DUPLICATE, UNAVAILABLE = "recorded", "duplicate", "unavailable"

_INTRO = """
two-way: a reply, by the inbound subscription (concat=false: BICS posts each part for us to join)
The handset {handset} answers {number} with {chars} characters: {parts} SMS parts, posted
shuffled. Part {dup} is posted twice. The store is unavailable for the first post of part {fail}:
the receiver answers 503 (and logs it on stderr), and BICS retries it {retry:g} s later (2 minutes,
scaled down for the demo)."""


class FlakyInboundStore(AsyncContext):
    """An inbound store that is unavailable for the first receive of one part number, and
    keeps, per ``messageId``, what it answered each time (in the order it answered).

    Everything else is the wrapped store's: the dedupe, the reassembly and the log are real.
    """

    def __init__(self, store: InboundStore, fail_part: int) -> None:
        self._store = store
        self._fail_part = fail_part
        self._failed = False
        self.answers: defaultdict[str, list[str]] = defaultdict(list)
        self.shared = store.shared

    async def open(self) -> None:
        """Open the wrapped store."""
        await self._store.open()

    async def aclose(self) -> None:
        """Close the wrapped store."""
        await self._store.aclose()

    async def receive(
        self, parts: Sequence[Part], *, now: float, timeout: float, retention: float
    ) -> Received:
        """The wrapped store's receive, except the first time part ``fail_part`` comes."""
        if not self._failed and any(part.number == self._fail_part for part in parts):
            self._failed = True
            for part in parts:
                self.answers[part.message_id].append(UNAVAILABLE)
            raise StoreUnavailableError("the demo's store is down for this one post")
        received = await self._store.receive(parts, now=now, timeout=timeout, retention=retention)
        # A post holds one part: its duplicate count says what became of it.
        answer = DUPLICATE if received.duplicates else RECORDED
        for part in parts:
            self.answers[part.message_id].append(answer)
        return received

    async def expire(self, now: float, *, timeout: float) -> list[InboundMessage]:
        """The wrapped store's."""
        return await self._store.expire(now, timeout=timeout)

    async def read_messages(
        self, after: str | None, *, limit: int = 1000, timeout: float = 0.0
    ) -> list[InboundMessage]:
        """The wrapped store's."""
        return await self._store.read_messages(after, limit=limit, timeout=timeout)

    async def last_cursor(self) -> str | None:
        """The wrapped store's."""
        return await self._store.last_cursor()

    def cursor_key(self, cursor: str) -> tuple[int, int]:
        """The wrapped store's."""
        return self._store.cursor_key(cursor)

    async def remembers(self, message_id: str) -> bool:
        """The wrapped store's."""
        return await self._store.remembers(message_id)


def chosen_parts(seed: int) -> tuple[int, int]:
    """The part posted twice and the part whose first post finds the store down (differ)."""
    duplicated, failing = random.Random(f"{seed}:demo-inbound").sample([1, 2, 3], 2)
    return duplicated, failing


@attrs.frozen
class InboundTally:
    """What happened to the reply's posts, counted from records, in parts that add up."""

    parts: int
    posts: int
    duplicate_posts: int
    """Second copies the simulator posted."""
    retries: int
    """Posts after a first one got no 2xx."""
    acknowledged: int
    refused: int
    """Posts answered other than 2xx (503 here)."""
    recorded: int
    """Acknowledged posts whose part the store took (one per part)."""
    duplicates: int
    """Acknowledged posts whose part the store already had: nothing new."""
    unavailable: int
    """Posts the store could not record: the 503s."""
    yielded: int
    complete: bool
    text_intact: bool


def inbound_tally(
    injected: InjectedInbound,
    attempts: Sequence[InboundAttempt],
    answers: dict[str, list[str]],
    yielded: Sequence[InboundMessage],
) -> InboundTally:
    """The counts of the reply's story, from the simulator's posts and the store's answers."""
    ids = set(injected.message_ids)
    ours = [a for a in attempts if a.message_id in ids]
    counted = Counter(answer for mid in ids for answer in answers.get(mid, []))
    return InboundTally(
        parts=len(injected.parts),
        posts=len(ours),
        duplicate_posts=sum(1 for a in ours if a.copy == 1 and a.attempt == 0),
        retries=sum(1 for a in ours if a.attempt > 0),
        acknowledged=sum(1 for a in ours if a.outcome == "acknowledged"),
        refused=sum(1 for a in ours if a.outcome != "acknowledged"),
        recorded=counted[RECORDED],
        duplicates=counted[DUPLICATE],
        unavailable=counted[UNAVAILABLE],
        yielded=len(yielded),
        complete=all(m.complete for m in yielded),
        text_intact=[m.text for m in yielded] == [injected.text],
    )


async def inbound_story(
    client: OpenSMSClient,
    inbox: Inbox,
    store: FlakyInboundStore,
    token: str,
    sim: Simulator,
    out: TextIO,
    *,
    seed: int,
    receiver_url: str,
) -> bool:
    """Tell the two-way story; True when the reply was yielded once, whole."""
    duplicated, failing = chosen_parts(seed)
    await client.create_inbound_subscription(PUBLIC_INBOUND_URL, token, concat=False)
    sim.inbound_retry_time_scale = RETRY_TIME_SCALE
    sim.route_inbound_to(receiver_url)
    print(
        _INTRO.format(
            handset=HANDSET, number=OUR_NUMBER, chars=len(REPLY), parts=3, dup=duplicated,
            fail=failing, retry=120 * RETRY_TIME_SCALE,
        ),
        file=out,
    )  # fmt: skip
    yielded: list[InboundMessage] = []
    since = await inbox.store.last_cursor()
    consumer = asyncio.create_task(_consume(inbox, since, yielded))
    injected = sim.inject_inbound(HANDSET, OUR_NUMBER, REPLY, duplicate_parts=(duplicated,))
    try:
        await sim.settle(SETTLE_TIMEOUT)  # every post answered 2xx (or abandoned)
        async with asyncio.timeout(SETTLE_TIMEOUT):
            while not yielded:  # noqa: ASYNC110 - the consumer appends; a short wait
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # a second copy of the message would show by now
    finally:
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
    _print_posts(injected, sim.inbound_attempts, store.answers, out)
    _print_yielded(yielded, out)
    t = inbound_tally(injected, sim.inbound_attempts, store.answers, yielded)
    _summary(t, out)
    return t.yielded == 1 and t.complete and t.text_intact


async def _consume(inbox: Inbox, since: str | None, yielded: list[InboundMessage]) -> None:
    async for message in inbox.messages(since=since):
        yielded.append(message)


def _print_posts(
    injected: InjectedInbound,
    attempts: Sequence[InboundAttempt],
    answers: dict[str, list[str]],
    out: TextIO,
) -> None:
    """One line per part: its posts, and what the receiver made of each, in the order it
    answered them (so the same for a given seed, however the posts raced)."""
    print(
        "\neach post of the reply, by part (what the simulator posted, what the receiver did)",
        file=out,
    )
    for part in injected.parts:
        ours = [a for a in attempts if a.message_id == part.message_id]
        said = [_said(answer) for answer in answers.get(part.message_id, [])]
        print(
            f"  part {part.number}/{len(injected.parts)}  {part.message_id[:8]}  "
            f"{len(ours)} post(s): {', '.join(said) or 'none'}",
            file=out,
        )


def _said(answer: str) -> str:
    return {
        RECORDED: "received (204)",
        DUPLICATE: "duplicate (204, nothing new)",
        UNAVAILABLE: f"503, store unavailable: retried after {120 * RETRY_TIME_SCALE:g} s",
    }[answer]


def _print_yielded(yielded: Sequence[InboundMessage], out: TextIO) -> None:
    print("\n`async for msg in inbox.messages()` yielded", file=out)
    for message in yielded:
        state = "complete" if message.complete else "INCOMPLETE"
        print(
            f"  {message.sender} -> {message.destination}  {message.parts}/{message.total} parts, "
            f"{state}, {len(message.text)} characters, via {message.source}",
            file=out,
        )
        print(f"  {message.text[:72]!r}...", file=out)


def _summary(t: InboundTally, out: TextIO) -> None:
    lines = [
        "\nwhat happened to the reply",
        f"  posts      {t.posts} by the simulator = {t.parts} parts + {t.duplicate_posts} "
        f"duplicate + {t.retries} retry",
        f"             {t.acknowledged} answered 204, {t.refused} answered 503 (the store was "
        f"unavailable for {t.unavailable})",
        f"             of the {t.acknowledged} answered 204: {t.recorded} new parts recorded, "
        f"{t.duplicates} duplicate (nothing new)",
        f"  messages   {t.yielded} yielded, complete: {t.complete}, text as sent: {t.text_intact}",
    ]
    print("\n".join(lines), file=out)
