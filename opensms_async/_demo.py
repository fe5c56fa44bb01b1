"""``opensms demo``: the whole story on embedded defaults, over real sockets.

The simulator and the receiver listen on 127.0.0.1; the store is SQLite in a temporary folder.
Callbacks arrive shuffled, some twice, some never; the reconciliation poller recovers the lost
ones. The summary counts what happened (from the simulator's records of each callback and the
events the tracker yielded), so that its numbers add up. Then the two-way half
(:mod:`._demo_inbound`): a reply in shuffled parts, one posted twice and one retried after a 503,
comes out of the inbox once and whole; the same receiver serves both routes, on one store.
"""

from __future__ import annotations

import asyncio
import secrets
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import attrs

from ._client import OpenSMSClient
from ._demo_inbound import INBOUND_PATH, FlakyInboundStore, chosen_parts, inbound_story
from ._inbox import Inbox
from ._server import serve
from ._state import DeliveryEvent, DeliveryState
from ._tracker import DeliveryTracker
from .receiver import create_receiver_app
from .stores.inbound import open_inbound_store
from .testing import CallbackAttempt, Simulator, run_simulator

__all__ = ["Tally", "run_demo", "tally"]

SENDER = "tel:+3212345678"
MESSAGES = [
    (["+33612345670", "+33612345698", "+33612345699"], "Your parcel is on its way."),
    (["+447700900123", "+447700900124"], "Votre code : 4711. " + "Long text. " * 20),
    (["+32470123456"], "Ünïcödé 👋 works too."),
]
CALLBACK_PATH = "/sms/callback"
PUBLIC_CALLBACK_URL = "https://demo.example/sms/callback"
RECONCILE_AFTER = 1.0
FINAL_TIMEOUT = 30.0
SETTLE_TIMEOUT = 10.0

_INTRO = """\
Three messages to six numbers. The simulator fails numbers ending in 99 (+33612345699 ends
DeliveryImpossible) and sends those ending in 98 through DeliveryUncertain; the second text is
two SMS parts, so its recipients pass through PartiallyDelivered. It posts a callback for each
state change, shuffled: {dup:.0%} of them twice, {drop:.0%} never. The tracker polls the API for
the recipients still not final {after:g} s after the send."""

_COLUMNS = "  {:>7}  {:<8}  {:<8}  {:<17}  {:<19}    {}".format(
    "time", "source", "request", "recipient", "previous", "status"
)

_NEXT_STEPS = """
next steps
  opensms simulate                  this simulator in its own shell (it prints its base URL and key)
  opensms send / status / receive   the CLI against it: opensms --help, opensms doctor
  examples/event_stream.py          this story as a program of your own
  examples/inbox_stream.py          the two-way story as a program of your own
  README.md, "Receiving callbacks"  a receiver behind your https proxy, subscribed at BICS"""


async def run_demo(*, seed: int = 7, drop_rate: float = 0.3, out: TextIO) -> int:
    """Run the demo and print its story to ``out``; returns the exit code (0 when every
    recipient is final and the reply came out of the inbox once, whole)."""
    token, inbound_token = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory(prefix="opensms-demo-") as folder:
        store_url = f"sqlite:///{Path(folder) / 'demo.db'}"
        inbound_store = FlakyInboundStore(open_inbound_store(store_url), chosen_parts(seed)[1])
        async with run_simulator(
            seed=seed,
            callback_drop_rate=drop_rate,
            callback_duplicate_rate=0.2,
            callback_jitter=0.3,
        ) as sim:
            print(f"simulator      {sim.base_url}", file=out)
            async with (
                OpenSMSClient(api_key=sim.api_key, base_url=sim.base_url) as client,
                DeliveryTracker(
                    store=store_url, client=client, reconcile_after=RECONCILE_AFTER
                ) as tracker,
                Inbox(store=inbound_store) as inbox,
            ):
                app = create_receiver_app(
                    tracker, token, path=CALLBACK_PATH, inbox=inbox, inbound_path=INBOUND_PATH,
                    inbound_security_token=inbound_token, manage_tracker=False,
                )  # fmt: skip
                async with serve(app) as receiver:
                    sim.simulator.route_callbacks_to(receiver.url + CALLBACK_PATH)
                    print(
                        f"receiver       {receiver.url}{CALLBACK_PATH} and {INBOUND_PATH}", file=out
                    )
                    print(f"store          {store_url} (a temporary SQLite file)\n", file=out)
                    print(_INTRO.format(dup=0.2, drop=drop_rate, after=RECONCILE_AFTER), file=out)
                    code = await _story(client, tracker, token, out, sim.simulator)
                    whole = await inbound_story(
                        client, inbox, inbound_store, inbound_token, sim.simulator, out,
                        seed=seed, receiver_url=receiver.url + INBOUND_PATH,
                    )  # fmt: skip
    print(_NEXT_STEPS, file=out)
    return code if whole else 1


async def _story(
    client: OpenSMSClient, tracker: DeliveryTracker, token: str, out: TextIO, sim: Simulator
) -> int:
    await client.create_subscription(PUBLIC_CALLBACK_URL, token)
    started = time.monotonic()
    events: list[DeliveryEvent] = []
    consumer = asyncio.create_task(_consume(tracker, events, out, started))
    pairs: list[tuple[str, str]] = []
    print("\nlive events from `async for event in tracker.events()`", file=out)
    print(_COLUMNS, file=out)
    for to, text in MESSAGES:
        sent = await client.send_message(SENDER, to, text)
        print(
            f"  +{time.monotonic() - started:5.2f}s  sent {sent.request_id[:8]} to "
            f"{len(sent.recipients)} recipient(s), {sent.parts} part(s) each",
            file=out,
        )
        await tracker.track(sent)
        pairs += [(sent.request_id, address) for address in sent.recipients]
    finals = await asyncio.gather(
        *(tracker.wait_for_final(rid, address, timeout=FINAL_TIMEOUT) for rid, address in pairs)
    )
    # Let the simulator post what it still holds (late duplicates), then the consumer print
    # everything the store logged, so that the counts below are the whole story.
    await sim.settle(SETTLE_TIMEOUT)
    await _caught_up(tracker, events)
    consumer.cancel()
    await asyncio.gather(consumer, return_exceptions=True)
    _finals(finals, events, out)
    _summary(tally(sim.callback_attempts, events, finals), out)
    return 0 if all(state.is_final for state in finals) else 1


async def _caught_up(tracker: DeliveryTracker, events: list[DeliveryEvent]) -> None:
    last = await tracker.store.last_cursor()
    async with asyncio.timeout(SETTLE_TIMEOUT):
        while last is not None and not (events and events[-1].cursor == last):  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def _consume(
    tracker: DeliveryTracker, events: list[DeliveryEvent], out: TextIO, started: float
) -> None:
    async for event in tracker.events():
        events.append(event)
        previous = str(event.previous) if event.previous is not None else "-"
        print(
            f"  +{time.monotonic() - started:5.2f}s  {event.source!s:<8}  {event.request_id[:8]}"
            f"  {event.address:<17}  {previous:<19} -> {event.status}",
            file=out,
            flush=True,
        )


def _finals(finals: list[DeliveryState], events: list[DeliveryEvent], out: TextIO) -> None:
    print("\nfinal states (via: where the final state came from)", file=out)
    last_source = {(e.request_id, e.address): str(e.source) for e in events}
    for state in finals:
        via = last_source.get((state.request_id, state.address), "?")
        print(
            f"  {state.request_id[:8]}  {state.address:<17}  {state.status!s:<20}  via {via}",
            file=out,
        )


@attrs.frozen
class Tally:
    """What happened in a demo run, counted from records, in parts that add up."""

    recipients: int
    all_final: bool
    planned: int
    acknowledged: int
    dropped: int
    failed: int
    skipped: int
    advanced: int
    """Acknowledged callbacks that advanced a state (one event each)."""
    duplicates: int
    """Acknowledged second copies of a callback."""
    known: int
    """Acknowledged callbacks that changed nothing and were no duplicate: a state already known
    (the send's answer, a poll, a later callback that came first)."""
    dropped_final: int
    """Dropped callbacks that carried a recipient's final state."""
    events_by_source: dict[str, int]
    finals_by_poll: int
    lost_finals_polled: int
    """Final states whose callback was dropped, recovered by polling (all of them, always)."""


def tally(
    attempts: Sequence[CallbackAttempt],
    events: Sequence[DeliveryEvent],
    finals: Sequence[DeliveryState],
) -> Tally:
    """The counts of a run, from the simulator's callback records and the events yielded."""
    outcomes = Counter(attempt.outcome for attempt in attempts)
    acknowledged = [a for a in attempts if a.outcome == "acknowledged"]
    by_source = Counter({"send": 0, "callback": 0, "poll": 0})
    by_source.update(str(event.source) for event in events)
    advanced = by_source.get("callback", 0)
    duplicates = sum(1 for a in acknowledged if a.planned.copy == 1)
    final_of = {(s.request_id, s.address): s.status for s in finals}
    lost_finals = {
        (a.planned.request_id, a.planned.address)
        for a in attempts
        if a.outcome == "dropped"
        and final_of.get((a.planned.request_id, a.planned.address)) == a.planned.status
    }
    last_source = {(e.request_id, e.address): str(e.source) for e in events}
    polled = {pair for pair in final_of if last_source.get(pair) == "poll"}
    return Tally(
        recipients=len(finals),
        all_final=all(state.is_final for state in finals),
        planned=len(attempts),
        acknowledged=len(acknowledged),
        dropped=outcomes.get("dropped", 0),
        failed=outcomes.get("failed", 0),
        skipped=outcomes.get("skipped", 0),
        advanced=advanced,
        duplicates=duplicates,
        known=len(acknowledged) - advanced - duplicates,
        dropped_final=len(lost_finals),
        events_by_source=dict(by_source),
        finals_by_poll=len(polled),
        lost_finals_polled=len(lost_finals & polled),
    )


def _summary(t: Tally, out: TextIO) -> None:
    lost = f", {t.failed} failed" if t.failed else ""
    lost += f", {t.skipped} skipped" if t.skipped else ""
    events = sum(t.events_by_source.values())
    parts = " + ".join(f"{n} from {source}" for source, n in t.events_by_source.items())
    lines = [
        "\nwhat happened",
        f"  callbacks  {t.planned} planned by the simulator (one per state change, some twice):",
        f"             {t.acknowledged} acknowledged by the receiver, {t.dropped} dropped on "
        f"purpose{lost}",
        f"             of the {t.acknowledged} acknowledged: {t.advanced} advanced a state, "
        f"{t.duplicates} were duplicates,",
        f"             {t.known} told a state already known (the send's answer, or a later "
        "state that came first)",
        f"             of the {t.dropped} dropped: {t.dropped_final} carried a final state, "
        f"{t.dropped - t.dropped_final} a state a later callback superseded",
        f"  polls      {t.finals_by_poll} final state(s) came from polling the API: "
        f"{t.lost_finals_polled} whose callback was dropped,",
        f"             {t.finals_by_poll - t.lost_finals_polled} polled before their callback came",
        f"  events     {events} = {parts}: each state change of each recipient, once",
        f"  result     {t.recipients} recipients, all final: {t.all_final}",
    ]
    print("\n".join(lines), file=out)
