"""A standalone callback receiver: uvicorn serves it, the app's lifespan opens the tracker.

    OPENSMS_SECURITY_TOKEN=r2k5hq3 .venv/bin/uvicorn examples.receiver_standalone:app --port 8080

Then subscribe its public https:// URL (behind your TLS proxy) with the same token:
`opensms subscription create https://me.example/sms/callback --token r2k5hq3`.
"""

from __future__ import annotations

import os

from opensms_async import DeliveryTracker, create_receiver_app

tracker = DeliveryTracker(store=os.environ.get("OPENSMS_STORE", "sqlite:///opensms.db"))
app = create_receiver_app(
    tracker,
    security_token=os.environ.get("OPENSMS_SECURITY_TOKEN", "change-me"),
    path="/sms/callback",
)
