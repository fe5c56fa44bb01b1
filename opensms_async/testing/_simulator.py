"""The OpenSMS API simulator: BICS v3's eleven endpoints, delivery timelines, callbacks, faults.

One :class:`Simulator` is one account: the API key and the OAuth client credentials both act
for it, and it holds the account's subscriptions, correlators, inbound numbers and conversions.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import math
import random
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from typing import Any
from urllib.parse import quote, urlsplit

import attrs
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp

from .._inbound import InboundSubscription
from .._models import DeliveryStatus, Subscription
from . import _wire
from ._access import AccessControl, parse_token_request
from ._callbacks import (
    CallbackAttempt,
    CallbackDispatcher,
    CallbackRates,
    CallbackTarget,
    PlannedCallback,
)
from ._delivery import (
    DeliveryRules,
    SentMessage,
    Transition,
    count_parts,
    delivery_info,
    plan_transitions,
    state_at,
)
from ._faults import (
    Fault,
    FaultInjector,
    FaultList,
    RequestRecord,
    endpoint_classifier,
    install_drop_filter,
)
from ._inbound import ConversionReport, InboundAttempt, InboundService, InboundSettings
from ._inbound_wire import InjectedInbound, RefusalFormat
from ._routes import method_route

__all__ = ["SentMessage", "Simulator"]

_Endpoint = Callable[[Request], Awaitable[Response]]


@attrs.frozen
class _Replay:
    at: float
    body: bytes
    location: str


def _base_path(value: str) -> str:
    path = value.rstrip("/")
    if path and not path.startswith("/"):
        raise ValueError(f"base_path must start with '/': {value!r}")
    return path


def _new_seed() -> int:
    return secrets.randbits(32)


def _empty(status: int) -> Response:
    # BICS documents its errors with empty text/plain bodies.
    return Response(b"", status_code=status, media_type="text/plain")


async def _read_json(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested past the limit
        return None


_rate = [attrs.validators.ge(0.0), attrs.validators.le(1.0)]


@attrs.define(kw_only=True, eq=False)
class Simulator:
    """A faithful, in-process stand-in for the OpenSMS API, for tests and demos.

    Serve :attr:`app` with :func:`run_simulator` (or any ASGI server; the lifespan must run for
    callbacks to be posted). Configuration is plain attributes, and most of it may be changed
    while the simulator runs. Delivery: every recipient is ``DeliveredToNetwork`` at once, then
    ``DeliveredToTerminal`` (through one ``PartiallyDelivered`` per part for long messages);
    numbers ending in a ``failing_suffixes`` entry (default ``"99"``) end ``DeliveryImpossible``,
    and those ending in an ``uncertain_suffixes`` entry (default ``"98"``) pass through
    ``DeliveryUncertain`` first. Each step takes a random ``step_delay`` (seeded by ``seed``).
    A send with ``asynchronous: true`` is acknowledged before validation: every recipient is
    ``MessageAccepted`` in the response and first in its timeline, and a failing number only
    fails later, in callbacks and polls. A send's ``finalDelivery`` overrides the subscription's
    for its own callbacks. A poll must name the sender the request was sent from, else 404.

    Inbound messages (see ``opensms_async.testing._inbound``): :meth:`inject_inbound` has a
    handset send a message to one of the account's numbers (``inbound_numbers``, plus every
    number injected to); it goes to the inbox of that number for polling when there is no
    inbound subscription, else it is posted to the subscription (per its ``concat``) and retried
    on BICS's schedule, scaled by ``inbound_retry_time_scale``. ``inbox_consumes`` (default True)
    makes a poll take what it returns off the inbox, as a queue. Conversion reports are kept in
    :attr:`conversions`. Every request body is checked against BICS's OpenAPI schemas: a value of
    the wrong type, ``null`` included (OpenAPI 3.0 makes nothing nullable unless it says so), is
    a 400. A method a path does not serve is a 405 whose ``Allow`` lists the methods it does.
    """

    api_key: str = attrs.field(default="sim-api-key", repr=False)
    base_path: str = attrs.field(default="", converter=_base_path)
    public_url: str | None = None
    """Prefix of the ``resourceURL`` s; default: the URL the request came to, plus ``base_path``."""
    client_id: str = "sim-client"
    client_secret: str = attrs.field(default="sim-client-secret", repr=False)
    token_ttl: float = attrs.field(default=3600.0, validator=attrs.validators.gt(0))
    failing_suffixes: tuple[str, ...] = ("99",)
    uncertain_suffixes: tuple[str, ...] = ("98",)
    step_delay: tuple[float, float] = (0.02, 0.15)
    callback_drop_rate: float = attrs.field(default=0.0, validator=_rate)
    callback_duplicate_rate: float = attrs.field(default=0.0, validator=_rate)
    callback_jitter: float = attrs.field(default=0.0, validator=attrs.validators.ge(0.0))
    callback_target: str | None = None
    """Where subscription callbacks go instead of the (https) subscription URL: the stand-in for
    a TLS-terminating proxy in front of a plain-http test receiver."""
    callback_timeout: float = 5.0
    """Seconds a receiver has to answer a callback; read once, when the simulator is built."""
    hourly_quota: int | None = None
    correlator_ttl: float = 24 * 3600.0
    receipt_ttl: float = 7 * 24 * 3600.0
    seed: int = attrs.field(factory=_new_seed)
    clock: Callable[[], float] = attrs.field(default=time.monotonic, repr=False)
    inbound_numbers: tuple[str, ...] = ()
    """The account's inbound numbers, read once: polling any other number is a 404. Every
    destination given to :meth:`inject_inbound` becomes one too."""
    inbox_consumes: bool = True
    """A poll takes the messages it returns off the inbox (a queue); False: they stay, and each
    poll returns the oldest ones again."""
    inbox_with_subscription: bool = False
    """Also keep messages posted to the inbound subscription in the inbox, for polling."""
    inbound_duplicate_rate: float = attrs.field(default=0.0, validator=_rate)
    """Share of inbound posts sent twice (seeded)."""
    inbound_retry_time_scale: float = attrs.field(default=1.0, validator=attrs.validators.ge(0.0))
    """Multiplies BICS's waits between inbound retries (2 min x5, 1 h x2, then 6 h up to 3 days):
    ``0.001`` makes the first retries come after 0.12 s."""
    inbound_target: str | None = None
    """Where inbound posts go instead of the subscription's https URL (read at each attempt)."""
    conversion_refusal_format: RefusalFormat = attrs.field(
        default="array", validator=attrs.validators.in_(("array", "object"))
    )
    """How ``/conversionsinfos`` lists refused ids: ``["id"]`` or ``{"message_id": ["id"]}``."""
    conversions_forbidden: bool = False
    """Answer the conversion endpoints 403, as for an API key without the conversion role."""

    sends: int = attrs.field(default=0, init=False, repr=False)
    """Accepted send requests, replays excluded: what BICS would bill."""
    replays: int = attrs.field(default=0, init=False, repr=False)
    messages: list[SentMessage] = attrs.field(factory=list, init=False, repr=False)
    messages_per_recipient: collections.Counter[str] = attrs.field(
        factory=collections.Counter, init=False, repr=False
    )
    requests_log: list[RequestRecord] = attrs.field(factory=list, init=False, repr=False)
    subscription: Subscription | None = attrs.field(default=None, init=False, repr=False)
    _faults: FaultList = attrs.field(factory=FaultList, init=False, repr=False)
    _by_id: dict[str, SentMessage] = attrs.field(factory=dict, init=False, repr=False)
    _correlators: dict[str, _Replay] = attrs.field(factory=dict, init=False, repr=False)
    _access: AccessControl = attrs.field(init=False, repr=False)
    _callbacks: CallbackDispatcher = attrs.field(init=False, repr=False)
    _inbound: InboundService = attrs.field(init=False, repr=False)
    _app: ASGIApp = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        self._access = AccessControl(self.clock)
        self._callbacks = CallbackDispatcher(self.callback_timeout, self._target)
        self._inbound = InboundService(
            settings=self._inbound_settings,
            public_base=self._public_base,
            knows_request=self._by_id.__contains__,
            numbers=self.inbound_numbers,
            timeout=self.callback_timeout,
        )
        self._app = self._build_app()

    # -- public API -----------------------------------------------------------------------------

    @property
    def app(self) -> ASGIApp:
        """The ASGI app: the API under ``base_path`` and the token endpoint at ``/oauth/token``."""
        return self._app

    @property
    def tokens_issued(self) -> int:
        """OAuth access tokens issued so far (a client that caches its token asks once)."""
        return self._access.tokens_issued

    def add_fault(self, fault: Fault) -> Fault:
        """Queue ``fault``, e.g. ``Fault.respond(429, retry_after=1, endpoint="send")``.

        Each request takes the first matching fault not used up. Safe from any thread.
        """
        return self._faults.add(fault)

    def clear_faults(self) -> None:
        """Remove every fault not used up yet."""
        self._faults.clear()

    def route_callbacks_to(self, url: str | None) -> None:
        """Post subscription callbacks to ``url`` instead of the https URL; None undoes it."""
        self.callback_target = url

    def message(self, request_id: str) -> SentMessage:
        """The message sent under ``request_id`` (KeyError when there is none)."""
        return self._by_id[request_id]

    def state_of(self, request_id: str, address: str) -> DeliveryStatus:
        """The delivery status of one recipient now, as a poll would report it."""
        message = self._by_id[request_id]
        return self._current(message, _tel(address)).status

    @property
    def planned_callbacks(self) -> list[PlannedCallback]:
        """Every callback planned so far, in planning order: the seeded schedule."""
        return self._callbacks.planned

    @property
    def callback_attempts(self) -> list[CallbackAttempt]:
        """What became of each planned callback, in the order they came due."""
        return self._callbacks.attempts

    @property
    def callbacks_attempted(self) -> int:
        """Callbacks actually posted (acknowledged or failed; duplicates count twice)."""
        return self._callbacks.count("acknowledged") + self._callbacks.count("failed")

    @property
    def callbacks_acknowledged(self) -> int:
        """Callbacks the receiver answered with a 2xx."""
        return self._callbacks.count("acknowledged")

    @property
    def callbacks_failed(self) -> int:
        """Callbacks lost to a non-2xx answer, a timeout or a connection error."""
        return self._callbacks.count("failed")

    @property
    def callbacks_dropped(self) -> int:
        """Callbacks never sent, on purpose (``callback_drop_rate``)."""
        return self._callbacks.count("dropped")

    @property
    def is_settled(self) -> bool:
        """True when every recipient is final and no callback or inbound post is waiting."""
        now = self.clock()
        done = all(now - m.created_at >= m.final_after for m in self.messages)
        return done and self._callbacks.pending == 0 and self._inbound.dispatcher.pending == 0

    # -- inbound messages and conversions -------------------------------------------------------

    def inject_inbound(
        self,
        sender: str,
        destination: str,
        text: str,
        *,
        reference: int | None = None,
        date_time: str | None = None,
        duplicate_parts: Collection[int] = (),
    ) -> InjectedInbound:
        """A handset sends ``text`` from ``sender`` to ``destination`` (one of the account's
        numbers, which it becomes if it was not); safe from any thread.

        The text is split into SMS as a handset splits it; a long one takes the next reference
        of a counter that recycles after 255, unless ``reference`` is given. ``date_time`` is
        the wire's ``dateTime`` (default: now, UTC). ``duplicate_parts`` names parts (1-based;
        with ``concat=true``, 1 is the joined message) posted twice whatever
        ``inbound_duplicate_rate`` draws, for a test or a demo that needs exactly those. Returns
        the message with its part ids.
        """
        return self._inbound.inject(
            sender, destination, text, reference=reference, date_time=date_time,
            duplicate_parts=duplicate_parts,
        )  # fmt: skip

    def route_inbound_to(self, url: str | None) -> None:
        """Post inbound messages to ``url`` instead of the https URL; None undoes it."""
        self.inbound_target = url

    @property
    def inbound_subscription(self) -> InboundSubscription | None:
        """The account's inbound subscription, or None."""
        return self._inbound.subscription

    @property
    def injected_inbound(self) -> list[InjectedInbound]:
        """Every message injected so far, in order."""
        return self._inbound.injected

    @property
    def inbound_attempts(self) -> list[InboundAttempt]:
        """Every post of an inbound message so far (first posts, retries and duplicates)."""
        return self._inbound.dispatcher.attempts

    def inbox_size(self, number: str) -> int:
        """Messages (parts) waiting in the inbox of ``number``."""
        return self._inbound.inboxes.pending(number)

    @property
    def conversions(self) -> list[ConversionReport]:
        """The conversion reports accepted so far, in order."""
        return self._inbound.conversions

    def _inbound_settings(self) -> InboundSettings:
        return InboundSettings(
            seed=self.seed,
            inbox_consumes=self.inbox_consumes,
            inbox_with_subscription=self.inbox_with_subscription,
            duplicate_rate=self.inbound_duplicate_rate,
            retry_time_scale=self.inbound_retry_time_scale,
            target=self.inbound_target,
            refusal_format=self.conversion_refusal_format,
            conversions_forbidden=self.conversions_forbidden,
        )

    async def settle(self, timeout: float = 5.0) -> None:
        """Wait (from any asyncio loop) until :attr:`is_settled`; TimeoutError after ``timeout``."""
        async with asyncio.timeout(timeout):
            while not self.is_settled:  # noqa: ASYNC110 - a condition on the clock, not an event
                await asyncio.sleep(0.01)

    # -- the app --------------------------------------------------------------------------------

    def _build_app(self) -> ASGIApp:
        base, guard, inbound = self.base_path, self._guarded, self._inbound
        requests = f"{base}/outbound/{{sender}}/requests"
        # One route per path, so that a 405 lists every method of the path in its Allow.
        table: dict[str, dict[str, _Endpoint]] = {
            "/oauth/token": {"POST": self._token},
            f"{base}/outbound/subscriptions": {
                "GET": guard(self._get_subscription),
                "POST": guard(self._subscribe),
                "DELETE": guard(self._unsubscribe),
            },
            requests: {"POST": guard(self._send)},
            f"{requests}/{{request_id}}/deliveryInfos": {"GET": guard(self._poll)},
            f"{base}/inbound/subscriptions": {
                "GET": guard(inbound.get_subscription),
                "POST": guard(inbound.subscribe),
                "DELETE": guard(inbound.unsubscribe),
            },
            f"{base}/inbound/registrations/{{number}}/messages": {"GET": guard(inbound.messages)},
            f"{base}/conversions": {"POST": guard(inbound.conversion)},
            f"{base}/conversionsinfos": {"POST": guard(inbound.conversion_infos)},
        }
        routes = [method_route(path, handlers) for path, handlers in table.items()]
        app = Starlette(routes=routes, lifespan=self._lifespan)
        classify = endpoint_classifier(self.base_path)
        return FaultInjector(app, self._faults, self.requests_log, classify)

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        # After the server has configured its logging, which may have replaced logger filters.
        install_drop_filter()
        await self._callbacks.open()
        await self._inbound.dispatcher.open()
        try:
            yield
        finally:
            await self._inbound.dispatcher.aclose()
            await self._callbacks.aclose()

    def _guarded(self, endpoint: _Endpoint) -> _Endpoint:
        """``endpoint`` behind the bearer check and the hourly quota."""

        async def guarded(request: Request) -> Response:
            return self._refusal(request) or await endpoint(request)

        return guarded

    def _refusal(self, request: Request) -> Response | None:
        if not self._access.bearer_is_valid(request.headers.get("authorization"), self.api_key):
            return _empty(401)
        if not self._access.within_quota(self.hourly_quota):
            return _empty(429)
        return None

    async def _token(self, request: Request) -> Response:
        form = parse_token_request(await request.body(), request.headers.get("authorization"))
        if not self._access.client_is_valid(form, self.client_id, self.client_secret):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        if form.grant_type != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        token = self._access.issue_token(self.token_ttl)
        # RFC 6749 and Keycloak: whole seconds; rounded down, never promising more than it lives.
        expires_in = math.floor(self.token_ttl)
        body = {"access_token": token, "token_type": "Bearer", "expires_in": expires_in}
        if form.scope:
            body["scope"] = form.scope
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    async def _send(self, request: Request) -> Response:
        body = await _read_json(request)
        invalid = _wire.invalid_send_field(body)
        if invalid is not None:
            return JSONResponse(_wire.service_exception(invalid), status_code=400)
        fields: dict[str, Any] = body["outboundSMSMessageRequest"]
        replay = self._replay(fields.get("clientCorrelator"))
        return replay if replay is not None else self._accept(request, fields)

    def _replay(self, correlator: str | None) -> Response | None:
        stored = self._correlators.get(correlator) if correlator else None
        if stored is None or self.clock() - stored.at >= self.correlator_ttl:
            return None
        self.replays += 1
        headers = {"Location": stored.location}
        return Response(stored.body, 201, headers=headers, media_type="application/json")

    def _accept(self, request: Request, fields: dict[str, Any]) -> Response:
        message = self._record_send(request, fields)
        body = _wire.send_response_body(
            fields,
            resource_url=message.resource_url,
            client_correlator=message.client_correlator,
            addresses=message.addresses,
            parts=message.parts,
            status=_first_status(message),
        )
        response = JSONResponse(body, status_code=201, headers={"Location": message.resource_url})
        replay = _Replay(message.created_at, bytes(response.body), message.resource_url)
        self._correlators[message.client_correlator] = replay
        return response

    def _record_send(self, request: Request, fields: dict[str, Any]) -> SentMessage:
        # One random source per send, derived from the seed and the send's rank, so that a seeded
        # run plans the same timelines and callbacks for the same sequence of sends.
        rng = random.Random(f"{self.seed}:{self.sends}")
        message = self._new_message(request, fields, rng)
        self.sends += 1
        self.messages.append(message)
        self._by_id[message.request_id] = message
        self.messages_per_recipient.update(message.addresses)
        self._plan_callbacks(message, rng)
        return message

    def _new_message(
        self, request: Request, fields: dict[str, Any], rng: random.Random
    ) -> SentMessage:
        sender = _path_sender(request)
        request_id = str(uuid.uuid4())
        addresses = tuple(dict.fromkeys(fields["address"]))
        text: str = fields["outboundSMSTextMessage"]["message"]
        parts = count_parts(text)
        rules = DeliveryRules(self.failing_suffixes, self.uncertain_suffixes, self.step_delay)
        accepted_first = fields.get("asynchronous") is True
        return SentMessage(
            request_id=request_id,
            sender=sender,
            addresses=addresses,
            text=text,
            parts=parts,
            client_correlator=fields.get("clientCorrelator") or str(uuid.uuid4()),
            resource_url=f"{self._public_base(request)}/outbound/{quote(sender, safe='')}"
            f"/requests/{request_id}",
            created_at=self.clock(),
            callback_data=fields.get("callbackData"),
            notify_url=fields.get("notifyURL"),
            asynchronous=accepted_first,
            final_delivery=fields.get("finalDelivery"),
            timelines={
                a: plan_transitions(a, parts, rules, rng, accepted_first=accepted_first)
                for a in addresses
            },
        )

    def _public_base(self, request: Request) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        return f"{request.url.scheme}://{request.url.netloc}{self.base_path}"

    async def _poll(self, request: Request) -> Response:
        message = self._by_id.get(request.path_params["request_id"])
        if message is None or message.sender != _path_sender(request):
            return _empty(404)  # another sender's request is as unknown as a made-up id
        if self.clock() - message.created_at >= self.receipt_ttl:
            return _empty(404)
        infos = [self._info(message, address) for address in message.addresses]
        resource_url = f"{message.resource_url}/deliveryInfos"
        body = {"resourceURL": resource_url, "smsParts": message.parts, "deliveryInfo": infos}
        return JSONResponse({"deliveryInfoList": body})

    def _current(self, message: SentMessage, address: str) -> Transition:
        return state_at(message.timelines[address], self.clock() - message.created_at)

    def _info(self, message: SentMessage, address: str) -> dict[str, Any]:
        now = self._current(message, address)
        return delivery_info(address, now.status, now.parts_delivered, message.callback_data)

    async def _subscribe(self, request: Request) -> Response:
        subscription = _wire.parse_callback(await _read_json(request))
        if subscription is None:
            return JSONResponse(_wire.service_exception("callback"), status_code=400)
        if urlsplit(subscription.url).scheme.lower() != "https":
            return JSONResponse(_wire.NOT_HTTPS, status_code=406)
        # One subscription per account: a new one replaces the old one, as a PUT would.
        self.subscription = subscription
        return JSONResponse(_wire.subscription_body(subscription), status_code=201)

    async def _get_subscription(self, request: Request) -> Response:
        if self.subscription is None:
            return _empty(404)
        return JSONResponse(_wire.subscription_body(self.subscription))

    async def _unsubscribe(self, request: Request) -> Response:
        if self.subscription is None:
            return _empty(404)
        self.subscription = None
        return Response(status_code=204)

    # -- callbacks ------------------------------------------------------------------------------

    def _plan_callbacks(self, message: SentMessage, rng: random.Random) -> None:
        rates = CallbackRates(
            self.callback_drop_rate, self.callback_duplicate_rate, self.callback_jitter
        )
        self._callbacks.plan(message, rates, rng)

    def _target(self, message: SentMessage) -> CallbackTarget | None:
        subscription = self.subscription
        token = subscription.security_token if subscription is not None else None
        if message.notify_url:
            # notifyURL takes precedence over the subscription (BICS v3), and is used as given.
            final = bool(message.final_delivery)
            return CallbackTarget(message.notify_url, token, final_only=final)
        if subscription is None:
            return None
        url = self.callback_target or subscription.url
        final_only = message.final_delivery
        if final_only is None:
            final_only = bool(subscription.final_delivery)
        return CallbackTarget(url, token, final_only=final_only)


def _path_sender(request: Request) -> str:
    # The ASGI server percent-decodes the path, so "tel%3A%2B32123" and "tel:+32123" are one
    # sender: the send path records this value and the poll path compares with it.
    sender: str = request.path_params["sender"]
    return sender


def _first_status(message: SentMessage) -> DeliveryStatus:
    if message.asynchronous:
        return DeliveryStatus.MESSAGE_ACCEPTED
    return DeliveryStatus.DELIVERED_TO_NETWORK


def _tel(address: str) -> str:
    return address if address.startswith("tel:") else f"tel:{address}"
