"""Inbound SMS and conversions in the simulator: inboxes, the inbound subscription and its posts.

A message is injected with :meth:`Simulator.inject_inbound`, split into SMS as a handset splits
it (GSM-7 153 / UCS-2 67 per part, a concatenation reference from a counter that recycles after
255). Where it goes is decided when it comes, from the inbound subscription then:

- **No subscription**: into the destination number's inbox, for ``GET
  /inbound/registrations/{number}/messages``. Each part is listed as a message of its own, with
  its UDH fields (``udhMessageId``, ``concatPart``, ``concatTotal``) and a ``resourceURL``.
- **A subscription** (BICS calls it "an alternative way" to polling): posted to it, per its
  ``concat``: ``true``, one post of the joined message under its first part's ``messageId``;
  ``false``, one post per part with its UDH fields, in a shuffled order; absent, one post per
  part without UDH fields (BICS's legacy behaviour). With ``inbox_with_subscription`` the parts
  also go into the inbox, so that one message arrives both ways.

Posts carry ``Authorization: Bearer <securityToken>`` with the token of the subscription the
message came under (retries keep it, as BICS's do, even after the subscription changed), and go
to the subscription's URL unless :attr:`Simulator.inbound_target` routes them elsewhere (read at
each attempt). A post that gets no 2xx (an error status, a timeout, a refused connection) is
retried on BICS's schedule (:data:`BICS_RETRY_DELAYS`, multiplied by
``inbound_retry_time_scale``), then abandoned. ``inbound_duplicate_rate`` posts some twice.

Fetching: with ``inbox_consumes`` (the default, the conservative reading of BICS's "return the
messages of your inbound number"), a poll takes what it returns off the inbox, as a queue; else
the inbox keeps them and every poll returns its oldest ``maxBatchSize`` again.
``totalNumberOfPendingMessages`` counts the inbox before the fetch, this page included.
"""

from __future__ import annotations

import asyncio
import collections
import json
import random
import threading
import uuid
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import attrs
import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .._inbound import InboundSubscription
from .._segments import split_segments
from . import _inbound_wire as wire
from ._wire import NOT_HTTPS, service_exception

__all__ = [
    "BICS_RETRY_DELAYS",
    "ConversionReport",
    "InboundAttempt",
    "InboundPost",
    "InboundService",
    "InboundSettings",
    "inbound_retry_delays",
]

_MINUTE, _HOUR, _DAY = 60.0, 3600.0, 86400.0
_REFERENCES = 256
_JSON_UTF8 = "application/json; charset=UTF-8"


def inbound_retry_delays(horizon: float = 3 * _DAY) -> tuple[float, ...]:
    """BICS's waits between the posts of one inbound message, in seconds.

    From its description: every 2 minutes during the first 10 minutes, then every hour during 2
    hours, then every 6 hours until 3 days have passed; after that the message is deleted.
    """
    delays = [2 * _MINUTE] * 5 + [_HOUR] * 2
    while sum(delays) + 6 * _HOUR <= horizon:
        delays.append(6 * _HOUR)
    return tuple(delays)


BICS_RETRY_DELAYS = inbound_retry_delays()
"""5 x 2 min, 2 x 1 h, 11 x 6 h: 18 retries, the last one 68 h 10 min after the first post."""


def _empty(status: int) -> Response:
    return Response(b"", status_code=status, media_type="text/plain")


def _bad(part: str) -> Response:
    return JSONResponse(service_exception(part), status_code=400)


@attrs.frozen
class InboundSettings:
    """The simulator's inbound settings, read afresh for each request and each post."""

    seed: int
    inbox_consumes: bool = True
    inbox_with_subscription: bool = False
    duplicate_rate: float = 0.0
    retry_time_scale: float = 1.0
    target: str | None = None
    refusal_format: wire.RefusalFormat = "array"
    conversions_forbidden: bool = False


@attrs.frozen
class InboundPost:
    """One delivery of an inbound body to the subscription (``copy`` 1 for a duplicate)."""

    message_id: str
    body: dict[str, Any] = attrs.field(repr=False)
    url: str
    token: str = attrs.field(repr=False)
    copy: int = 0


Outcome = Literal["acknowledged", "retrying", "abandoned"]


@attrs.frozen
class InboundAttempt:
    """One post of an inbound message: ``attempt`` 0 is the first, later ones are retries.

    ``acknowledged``: answered 2xx. ``retrying``: no 2xx (``status_code`` or ``error`` say why),
    a retry is planned. ``abandoned``: no 2xx and no retry left: BICS deletes the message.
    """

    message_id: str
    copy: int
    attempt: int
    url: str
    outcome: Outcome
    status_code: int | None = None
    error: str | None = None


@attrs.frozen
class ConversionReport:
    """A conversion report the simulator accepted (``sim.conversions``).

    ``endpoint`` is ``"conversions"`` (``address`` or ``customer_reference``, as sent) or
    ``"conversionsinfos"`` (``message_ids``, ``type``, and the ids refused: those that name no
    request the simulator sent).
    """

    endpoint: Literal["conversions", "conversionsinfos"]
    address: str | None = None
    customer_reference: str | None = None
    message_ids: tuple[str, ...] = ()
    type: str | None = None
    refused: tuple[str, ...] = ()


class _Inboxes:
    """The inbox of each inbound number: parts waiting to be fetched, oldest first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._boxes: dict[str, collections.deque[tuple[wire.InjectedInbound, wire.InboundPart]]]
        self._boxes = {}

    def register(self, number: str) -> None:
        with self._lock:
            self._boxes.setdefault(wire.wire_address(number), collections.deque())

    def knows(self, number: str) -> bool:
        return wire.wire_address(number) in self._boxes

    def put(self, message: wire.InjectedInbound) -> None:
        with self._lock:
            box = self._boxes.setdefault(message.destination, collections.deque())
            box.extend((message, part) for part in message.parts)

    def fetch(
        self, number: str, limit: int, consume: bool
    ) -> tuple[list[tuple[wire.InjectedInbound, wire.InboundPart]], int]:
        with self._lock:
            box = self._boxes.get(wire.wire_address(number), collections.deque())
            total = len(box)
            if consume:
                return [box.popleft() for _ in range(min(limit, total))], total
            return list(box)[:limit], total

    def pending(self, number: str) -> int:
        with self._lock:
            return len(self._boxes.get(wire.wire_address(number), ()))


class _Dispatcher:
    """Posts inbound messages to the subscription and retries them on BICS's schedule.

    Opened and closed by the simulator's lifespan; while closed, posts are planned, never sent.
    ``deliver`` may be called from any thread: the post runs on the simulator's loop.
    """

    def __init__(
        self,
        timeout: float,
        settings: Callable[[], InboundSettings],
        delays: tuple[float, ...] = BICS_RETRY_DELAYS,
    ) -> None:
        self.planned: list[InboundPost] = []
        self.attempts: list[InboundAttempt] = []
        self._timeout = timeout
        self._settings = settings
        self._delays = delays
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock = threading.Lock()
        self._pending = 0

    @property
    def pending(self) -> int:
        """Posts planned while open that have not finished (acknowledged or abandoned)."""
        return self._pending

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._client = httpx.AsyncClient(timeout=self._timeout, trust_env=False)

    async def aclose(self) -> None:
        self._loop = None
        tasks, self._tasks = list(self._tasks), set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with self._lock:
            self._pending = 0  # a task cancelled before its first step never ran its finally
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def deliver(self, post: InboundPost) -> None:
        self.planned.append(post)
        loop = self._loop
        if loop is None:
            return
        with self._lock:
            self._pending += 1
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._start(post)
            return
        try:
            loop.call_soon_threadsafe(self._start, post)
        except RuntimeError:  # the loop closed meanwhile: the post is planned, never sent
            self._done()

    def _start(self, post: InboundPost) -> None:
        if self._client is None:  # closed between deliver and now
            self._done()
            return
        task = asyncio.get_running_loop().create_task(self._run(self._client, post))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _done(self) -> None:
        with self._lock:
            self._pending -= 1

    async def _run(self, client: httpx.AsyncClient, post: InboundPost) -> None:
        try:
            for attempt in range(len(self._delays) + 1):
                if await self._attempt(client, post, attempt):
                    return
                await asyncio.sleep(self._delays[attempt] * self._settings().retry_time_scale)
        finally:
            self._done()

    async def _attempt(self, client: httpx.AsyncClient, post: InboundPost, attempt: int) -> bool:
        url = self._settings().target or post.url
        last = attempt == len(self._delays)
        failed: Outcome = "abandoned" if last else "retrying"
        headers = {"Authorization": f"Bearer {post.token}", "Content-Type": _JSON_UTF8}
        content = json.dumps(post.body, ensure_ascii=False).encode()  # UTF-8, as BICS says
        try:
            response = await client.post(url, content=content, headers=headers)
        except httpx.HTTPError as exc:
            error = type(exc).__name__
            self.attempts.append(
                InboundAttempt(post.message_id, post.copy, attempt, url, failed, error=error)
            )
            return False
        ok = response.is_success
        outcome: Outcome = "acknowledged" if ok else failed
        status = response.status_code
        self.attempts.append(
            InboundAttempt(post.message_id, post.copy, attempt, url, outcome, status)
        )
        return ok


class InboundService:
    """The simulator's inbound numbers, inbound subscription and conversion endpoints."""

    def __init__(
        self,
        *,
        settings: Callable[[], InboundSettings],
        public_base: Callable[[Request], str],
        knows_request: Callable[[str], bool],
        numbers: tuple[str, ...],
        timeout: float,
    ) -> None:
        self.subscription: InboundSubscription | None = None
        self.injected: list[wire.InjectedInbound] = []
        self.conversions: list[ConversionReport] = []
        self.inboxes = _Inboxes()
        self.dispatcher = _Dispatcher(timeout, settings)
        self._settings = settings
        self._public_base = public_base
        self._knows_request = knows_request
        self._reference = 0
        self._lock = threading.Lock()
        for number in numbers:
            self.inboxes.register(number)

    # -- injecting ------------------------------------------------------------------------------

    def inject(
        self,
        sender: str,
        destination: str,
        text: str,
        *,
        reference: int | None = None,
        date_time: str | None = None,
        duplicate_parts: Collection[int] = (),
    ) -> wire.InjectedInbound:
        """Receive ``text`` from ``sender`` on ``destination``; see the module's docstring.
        ``duplicate_parts`` (1-based part numbers) are posted twice, whatever the rate draws."""
        for name, value in (("sender", sender), ("destination", destination), ("text", text)):
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{name} must be a non-empty string")
        if reference is not None and not 0 <= reference < _REFERENCES:
            raise ValueError("reference must be from 0 to 255")
        settings = self._settings()
        with self._lock:  # one rank and one reference per message, whatever the thread
            rank = len(self.injected)
            texts = split_segments(text)
            if reference is None and len(texts) > 1:
                reference, self._reference = self._reference, (self._reference + 1) % _REFERENCES
            rng = random.Random(f"{settings.seed}:inbound:{rank}")
            message = self._message(sender, destination, texts, reference, date_time, rng, settings)
            self.injected.append(message)
        self._route(message, settings, rng, frozenset(duplicate_parts))
        return message

    def _message(
        self,
        sender: str,
        destination: str,
        texts: list[str],
        reference: int | None,
        date_time: str | None,
        rng: random.Random,
        settings: InboundSettings,
    ) -> wire.InjectedInbound:
        subscription = self.subscription
        parts = tuple(
            wire.InboundPart(str(uuid.UUID(int=rng.getrandbits(128), version=4)), t, n)
            for n, t in enumerate(texts, start=1)
        )
        posted = subscription is not None
        return wire.InjectedInbound(
            sender=wire.wire_address(sender),
            destination=wire.wire_address(destination),
            text="".join(texts),
            date_time=date_time or _now_text(),
            parts=parts,
            reference=reference if len(parts) > 1 else None,
            concat=subscription.concat if subscription is not None else None,
            posted=posted,
            polled=not posted or settings.inbox_with_subscription,
        )

    def _route(
        self,
        message: wire.InjectedInbound,
        settings: InboundSettings,
        rng: random.Random,
        duplicate_parts: frozenset[int],
    ) -> None:
        if message.polled:
            self.inboxes.put(message)
        else:
            self.inboxes.register(message.destination)
        subscription = self.subscription
        if not message.posted or subscription is None:
            return
        for post in _posts(message, subscription, settings, rng, duplicate_parts):
            self.dispatcher.deliver(post)

    # -- endpoints ------------------------------------------------------------------------------

    async def subscribe(self, request: Request) -> Response:
        subscription = wire.parse_inbound_callback(await _read_json(request))
        if subscription is None:
            return _bad("callback")
        if urlsplit(subscription.url).scheme.lower() != "https":
            return JSONResponse(NOT_HTTPS, status_code=406)
        self.subscription = subscription  # one per account: a new one replaces the old one
        return JSONResponse(wire.inbound_subscription_body(subscription), status_code=201)

    async def get_subscription(self, request: Request) -> Response:
        if self.subscription is None:
            return _empty(404)
        return JSONResponse(wire.inbound_subscription_body(self.subscription))

    async def unsubscribe(self, request: Request) -> Response:
        if self.subscription is None:
            return _empty(404)
        self.subscription = None
        return Response(status_code=204)

    async def messages(self, request: Request) -> Response:
        number: str = request.path_params["number"]
        size = wire.parse_batch_size(request.query_params.getlist("maxBatchSize"))
        if size is None:
            return _bad("maxBatchSize")
        if not self.inboxes.knows(number):
            return _empty(404)
        batch, total = self.inboxes.fetch(number, size, self._settings().inbox_consumes)
        listing = f"{self._public_base(request)}/inbound/registrations/{quote(number, safe='')}"
        listing += "/messages"
        items = [
            wire.part_body(message, part, udh=True)
            | {"resourceURL": f"{listing}/{part.message_id}"}
            for message, part in batch
        ]
        return JSONResponse(wire.inbound_list_body(items, total=total, resource_url=listing))

    async def conversion(self, request: Request) -> Response:
        parsed = wire.parse_conversion(await _read_json(request))
        if parsed is None:
            return _bad("conversionRequest")
        if self._settings().conversions_forbidden:
            return _empty(403)
        report = ConversionReport(
            "conversions", address=parsed.address, customer_reference=parsed.customer_reference
        )
        self.conversions.append(report)
        return Response(b"", status_code=200, media_type="text/plain")

    async def conversion_infos(self, request: Request) -> Response:
        parsed = wire.parse_message_ids(await _read_json(request))
        if parsed is None:
            return _bad("message_id")
        settings = self._settings()
        if settings.conversions_forbidden:
            return _empty(403)
        refused = tuple(i for i in parsed.message_ids if not self._knows_request(i))
        ids = tuple(parsed.message_ids)
        self.conversions.append(
            ConversionReport("conversionsinfos", message_ids=ids, type=parsed.type, refused=refused)
        )
        body = wire.refused_body(refused, settings.refusal_format)
        return Response(body, status_code=200, media_type="application/json")


def _posts(
    message: wire.InjectedInbound,
    subscription: InboundSubscription,
    settings: InboundSettings,
    rng: random.Random,
    duplicate_parts: frozenset[int] = frozenset(),
) -> list[InboundPost]:
    """The posts of one message, per the subscription's ``concat``, some duplicated (those the
    rate draws, and ``duplicate_parts``)."""
    if subscription.concat is True:
        bodies = [(1, message.message_id, wire.joined_body(message))]
    else:
        udh = subscription.concat is False
        bodies = [
            (p.number, p.message_id, wire.part_body(message, p, udh=udh)) for p in message.parts
        ]
        if udh:
            rng.shuffle(bodies)
    posts = []
    for number, message_id, body in bodies:
        # Drawn whatever duplicate_parts says: a given seed posts the same as before.
        drawn = rng.random() < settings.duplicate_rate
        copies = 2 if drawn or number in duplicate_parts else 1
        for copy in range(copies):
            root = {"InboundSmsMessage": body}
            posts.append(
                InboundPost(message_id, root, subscription.url, subscription.security_token, copy)
            )
    return posts


def _now_text() -> str:
    """The current UTC time as BICS writes ``dateTime``: milliseconds, no zone."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


async def _read_json(request: Request) -> object:
    try:
        return json.loads(await request.body())
    except (ValueError, RecursionError):
        return None
