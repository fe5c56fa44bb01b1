"""``opensms demo``: the whole story on embedded defaults, over real sockets.

The simulator and the receiver listen on 127.0.0.1; the store is SQLite in a temporary folder.
Callbacks arrive shuffled, some twice, some never; the reconciliation poller recovers the lost ones.
"""

from __future__ import annotations

import asyncio
import secrets
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import TextIO

from ._client import OpenSMSClient
from ._server import serve
from ._state import DeliveryEvent, DeliveryState
from ._tracker import DeliveryTracker
from .receiver import create_receiver_app
from .testing import Simulator, run_simulator

__all__ = ["run_demo"]

SENDER = "tel:+3212345678"
MESSAGES = [
    (["+33612345670", "+33612345698", "+33612345699"], "Your parcel is on its way."),
    (["+447700900123", "+447700900124"], "Votre code : 4711. " + "Long text. " * 20),
    (["+32470123456"], "Ünïcödé 👋 works too."),
]
CALLBACK_PATH = "/sms/callback"
PUBLIC_CALLBACK_URL = "https://demo.example/sms/callback"
FINAL_TIMEOUT = 30.0


async def run_demo(*, seed: int = 7, drop_rate: float = 0.3, out: TextIO) -> int:
    """Run the demo and print its story to ``out``; returns the exit code (0 when all final)."""
    token = secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory(prefix="opensms-demo-") as folder:
        store_url = f"sqlite:///{Path(folder) / 'demo.db'}"
        async with run_simulator(
            seed=seed,
            callback_drop_rate=drop_rate,
            callback_duplicate_rate=0.2,
            callback_jitter=0.3,
        ) as sim:
            print(f"simulator      {sim.base_url}  (drops {drop_rate:.0%} of callbacks)", file=out)
            async with (
                OpenSMSClient(api_key=sim.api_key, base_url=sim.base_url) as client,
                DeliveryTracker(store=store_url, client=client, reconcile_after=1.0) as tracker,
            ):
                app = create_receiver_app(tracker, token, path=CALLBACK_PATH, manage_tracker=False)
                async with serve(app) as receiver:
                    sim.simulator.route_callbacks_to(receiver.url + CALLBACK_PATH)
                    print(f"receiver       {receiver.url}{CALLBACK_PATH}", file=out)
                    print(f"store          {store_url}", file=out)
                    return await _story(client, tracker, token, out, sim.simulator)


async def _story(
    client: OpenSMSClient, tracker: DeliveryTracker, token: str, out: TextIO, sim: Simulator
) -> int:
    await client.create_subscription(PUBLIC_CALLBACK_URL, token)
    started = time.monotonic()
    events: list[DeliveryEvent] = []
    consumer = asyncio.create_task(_consume(tracker, events, out, started))
    pairs: list[tuple[str, str]] = []
    print("\nlive events from `async for event in tracker.events()`", file=out)
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
    await asyncio.sleep(0.05)  # let the consumer print the last events
    consumer.cancel()
    await asyncio.gather(consumer, return_exceptions=True)
    _summary(finals, events, out)
    print(
        f"callbacks: {sim.callbacks_acknowledged} acknowledged (duplicates included), "
        f"{sim.callbacks_dropped} dropped on the way and recovered by polling",
        file=out,
    )
    return 0 if all(state.is_final for state in finals) else 1


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


def _summary(finals: list[DeliveryState], events: list[DeliveryEvent], out: TextIO) -> None:
    print("\nfinal states", file=out)
    last_source = {(e.request_id, e.address): str(e.source) for e in events}
    for state in finals:
        via = last_source.get((state.request_id, state.address), "?")
        print(
            f"  {state.request_id[:8]}  {state.address:<17}  {state.status!s:<20}  via {via}",
            file=out,
        )
    sources = Counter(str(e.source) for e in events)
    print(
        f"\n{len(finals)} recipients, all final: {all(s.is_final for s in finals)}; "
        f"{len(events)} events ({', '.join(f'{n} from {s}' for s, n in sorted(sources.items()))})",
        file=out,
    )
