"""Defaults shared by the client, the tracker and the receiver."""

from __future__ import annotations

import httpx

DEFAULT_BASE_URL = "https://opensms.api.bics.com/smsmessaging/v1"
"""The v1 API; set ``base_url`` (or ``OPENSMS_BASE_URL``) for ``/smsmessaging/v2`` or ``/sms/v3``.
"""

DEFAULT_TOKEN_URL = "https://idm.bics.com/auth/realms/mybics/protocol/openid-connect/token"  # noqa: S105
"""The BICS identity server that issues OAuth2 client-credentials tokens for SMS v3."""

ENV_API_KEY = "OPENSMS_API_KEY"
ENV_BASE_URL = "OPENSMS_BASE_URL"

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
"""Timeouts are on by default: 5 s to connect, 30 s for each read, write and pool wait."""

DEFAULT_MAX_RETRIES = 2
INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 8.0
MAX_RETRY_AFTER = 60.0
"""A server's ``Retry-After`` is honoured up to this many seconds; longer waits raise instead."""

DEFAULT_MAX_CONNECTIONS = 16
"""In-flight requests per client over httpx's own transport (``http_client=``, ``transport=``
other than an :class:`AiohttpTransport`, or a proxy from the environment): httpcore's pool does
work quadratic in the requests it holds (PERFORMANCE.md), so such a client gains from this bound.
At 20 ms of latency, 16 allow about 800 req/s, far above any hourly quota; raise it knowingly for
slow links or huge volumes."""

DEFAULT_MAX_IN_FLIGHT = 64
"""In-flight requests per client (and connections of the pool) over the default aiohttp
transport, whose cost per request does not grow with its connections: against a local API,
64 callers make 1.4 times the requests per second of 16 in flight, each for less CPU, and 128
callers as many more; 100 in flight gain nothing over 64 (``bench/bench_client.py --in-flight
16,32,64,100 --callers 64``, 2026-12-02). At 20 ms of latency, 64 allow about 3,200 req/s."""

KEEPALIVE_EXPIRY = 4.0
"""Below the usual 5 s server keep-alive, so a pooled connection is not reused as it closes."""

RECEIPT_RETENTION = 7 * 24 * 3600.0
"""BICS keeps delivery receipts for 7 days: polling after that can only answer 404."""

USER_AGENT = "opensms-async"

SHARED_STORE_RECHECK = 1.0
"""Seconds between re-reads of a store shared with other processes (Redis) while waiting: other
replicas append events and finish recipients without waking this process."""

DEFAULT_MAX_RESPONSE_SIZE = 4 * 1024 * 1024
"""Bytes of (decoded) response body the client reads before giving up with
``ResponseTooLargeError``: a send or poll answer for 1,000 recipients is about 150 KB, so 4 MiB is
far above any answer the API gives, and far below what a gzip bomb would inflate to."""

ACCEPT_ENCODING = "gzip, deflate"
"""The content codings the client asks for: the ones it can inflate with a bound on the output."""

READ_AT_ONCE = 64 * 1024
"""Raw body bytes the default transport reads in one call when an answer declares a length up to
this (an API answer is rarely above a few KB); a longer or unknown length is streamed."""

DECODE_PIECE = 64 * 1024
"""Most bytes one inflate step may produce, so a compressed chunk never balloons in memory."""
