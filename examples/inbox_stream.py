"""Receive inbound SMS (replies) by callback and by polling, each message once and whole.

Runs everything on 127.0.0.1 with the simulator: a long reply arrives as shuffled parts, some
posted twice; another message waits in the inbox of a second number, which the inbox polls. The
consumer saves its cursor after each message, so a restart resumes after the last one it
handled.

    .venv/bin/python examples/inbox_stream.py
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from opensms_async import Inbox, OpenSMSClient, create_receiver_app
from opensms_async.testing import run_simulator, serve

TOKEN = "example-inbound-token"
NUMBER, POLLED, HANDSET = "+32470000000", "+32470000009", "+32470000001"
REPLY = "Yes, please call me back tomorrow morning. " * 5  # 215 characters: two SMS


def _read_cursor(path: Path) -> str | None:
    return path.read_text() if path.exists() else None


async def consume(inbox: Inbox, cursor_file: Path, expected: int) -> None:
    """Print messages from the saved cursor on, saving the cursor after each one."""
    since = await asyncio.to_thread(_read_cursor, cursor_file)
    seen = 0
    async for message in inbox.messages(since=since):
        print(f"{message.source:<8} {message.sender} ({message.parts} parts): {message.text!r}")
        await asyncio.to_thread(cursor_file.write_text, message.cursor)
        seen += 1
        if seen == expected:
            return


async def main() -> None:
    """Subscribe to inbound messages, receive a reply and a polled message, print them."""
    folder = Path(tempfile.mkdtemp())
    store = f"sqlite:///{folder / 'inbox.db'}"
    async with (
        run_simulator(seed=4, inbound_numbers=(NUMBER, POLLED), inbound_duplicate_rate=0.5) as sim,
        OpenSMSClient(api_key=sim.api_key, base_url=sim.base_url) as client,
        Inbox(store, client, poll_numbers=[POLLED], poll_interval=0.2) as inbox,
        serve(create_receiver_app(None, inbox=inbox, inbound_security_token=TOKEN)) as receiver,
    ):
        sim.simulator.inject_inbound(HANDSET, POLLED, "Polled: STOP")  # no subscription yet
        sim.simulator.route_inbound_to(f"{receiver.url}/sms/inbound")
        await client.create_inbound_subscription("https://me.example/sms/inbound", TOKEN, False)
        sim.simulator.inject_inbound(HANDSET, NUMBER, REPLY)
        await asyncio.wait_for(consume(inbox, folder / "cursor", 2), 30)


if __name__ == "__main__":
    asyncio.run(main())
