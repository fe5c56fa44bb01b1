"""Track sends, receive callbacks and consume delivery events with `async for`, resumably.

Runs everything on 127.0.0.1 with the simulator (half the callbacks dropped, recovered by the
reconciliation poller) and a SQLite store; the consumer saves its cursor after each event.

    .venv/bin/python examples/event_stream.py
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from opensms_async import DeliveryTracker, OpenSMSClient, create_receiver_app
from opensms_async.testing import run_simulator, serve

TOKEN = "example-token"


def _read_cursor(path: Path) -> str | None:
    return path.read_text() if path.exists() else None


async def consume(tracker: DeliveryTracker, cursor_file: Path, expected: int) -> None:
    """Print events from the saved cursor on, saving the cursor after each one."""
    since = await asyncio.to_thread(_read_cursor, cursor_file)
    finals = 0
    async for event in tracker.events(since=since):
        print(f"{event.source:<8} {event.address} {event.previous} -> {event.status}")
        await asyncio.to_thread(cursor_file.write_text, event.cursor)
        finals += event.is_final
        if finals == expected:
            return


async def main() -> None:
    """Subscribe, send, and consume until every recipient is final."""
    folder = Path(tempfile.mkdtemp())
    store = f"sqlite:///{folder / 'events.db'}"
    async with (
        run_simulator(seed=3, callback_drop_rate=0.5) as sim,
        OpenSMSClient(api_key=sim.api_key, base_url=sim.base_url) as client,
        DeliveryTracker(store, client, reconcile_after=0.5) as tracker,
        serve(create_receiver_app(tracker, TOKEN, manage_tracker=False)) as receiver,
    ):
        sim.simulator.route_callbacks_to(f"{receiver.url}/sms/callback")
        await client.create_subscription("https://me.example/sms/callback", TOKEN)
        sent = await client.send_message("tel:+32123456", ["+33612345678", "+33612345699"], "Hi")
        await tracker.track(sent)
        await asyncio.wait_for(consume(tracker, folder / "cursor", len(sent.recipients)), 30)


if __name__ == "__main__":
    asyncio.run(main())
