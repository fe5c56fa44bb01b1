"""A minimal OpenSMS send endpoint for benchmarks: answers every POST with a fixed 201.

Run as ``python bench/_fake_api.py PORT``; it serves on 127.0.0.1 with uvicorn (uvloop, httptools).
"""

from __future__ import annotations

import json
import sys

from _util import drain_body, serve_fast
from starlette.types import Receive, Scope, Send

RESOURCE = "http://127.0.0.1/outbound/tel%3A%2B32123456/requests/bench-1"
BODY = json.dumps(
    {
        "outboundSMSMessageRequest": {
            "address": ["tel:+33612345678"],
            "senderAddress": "tel:+32123456",
            "outboundSMSTextMessage": {"message": "Hello"},
            "clientCorrelator": "c",
            "resourceURL": RESOURCE,
            "deliveryInfoList": {
                "resourceURL": RESOURCE + "/deliveryInfos",
                "deliveryInfo": [
                    {"address": "tel:+33612345678", "deliveryStatus": "DeliveredToNetwork"}
                ],
            },
        }
    }
).encode()
HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(BODY)).encode()),
    (b"location", RESOURCE.encode()),
]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Drain the request body, answer 201 with the fixed body."""
    if scope["type"] != "http":
        return
    await drain_body(receive)
    await send({"type": "http.response.start", "status": 201, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


if __name__ == "__main__":
    serve_fast(app, int(sys.argv[1]))
