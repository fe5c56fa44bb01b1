"""One inbound receiver replica as an OS process: an Inbox on a store URL behind uvicorn.

``python tests/inbound_replica.py STORE_URL PORT TOKEN`` serves ``/sms/inbound`` (and
``/healthz``) on 127.0.0.1:PORT and prints every message its ``messages()`` yields as one JSON
line (``message_id``, ``text``, ``parts``, ``complete``, ``cursor``), until it is terminated.
"""

from __future__ import annotations

import asyncio
import json
import sys

from opensms_async import Inbox, create_receiver_app
from opensms_async._server import serve


async def main(store_url: str, port: int, token: str) -> None:
    async with Inbox(store_url) as inbox:
        app = create_receiver_app(None, inbox=inbox, inbound_security_token=token)
        async with serve(app, port=port):
            async for message in inbox.messages():
                line = {
                    "message_id": message.message_id,
                    "text": message.text,
                    "parts": message.parts,
                    "complete": message.complete,
                    "cursor": message.cursor,
                }
                print(json.dumps(line), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
