"""opensms-async: the asyncio SDK for the BICS OpenSMS API.

Send messages, poll delivery infos and manage the delivery-info subscription with
:class:`OpenSMSClient`; run the bundled receiver and iterate delivery events with
:class:`DeliveryTracker`. The client also speaks the rest of BICS v3: the inbound-message
subscription, polling an inbound number's inbox, and conversion reports; :class:`Inbox` turns
inbound SMS (by callback or polled) into a stream that yields each message once and whole.

The map of the house: every module, one line each, under its room. Rooms are numbered low to
high; a module imports only from its own room or from a room of a lower number, never from a
room beside it (same number) or above it, and no two modules import each other, even lazily or
for types only. A lower room that needs something of a higher one is handed it (a callable, a
protocol). ``tests/test_architecture.py`` reads this map and checks every import against it, and
that it names every module.

1 core: pure rules and models, no I/O
    _constants              defaults shared by the client, the tracker and the receiver
    _exceptions             the error tree, rooted at OpenSMSError
    _models                 the wire's models (attrs) and DeliveryStatus
    _json                   JSON in and out without json.loads/json.dumps's wrappers
    _converter              the one cattrs converter: models to and from camelCase JSON
    _inbound                the wire's models of inbound SMS and conversions
    _addressing             recipient and sender rules: tel: URIs, E.164, path segments
    _segments               SMS segment counting: GSM-7 and UCS-2
    _ids                    random identifiers of a send: the clientCorrelator
    _retry                  the retry policy as pure functions
    _gate                   the one gate every delivery update passes, field by field
    _state                  delivery states, updates, events and the merge rule
    _updates                delivery updates from the API's infos: a poll, a send
    _webhook                a delivery callback's token check and structural parse
    _reassembly             the rules joining the parts of long inbound messages
    _inbound_message        InboundMessage, and its form in a store's log
    _inbound_webhook        an inbound callback's body, or a polled page, as parts
    _lifecycle              one open/aclose lifecycle with an explicit state
    _telemetry              OpenTelemetry spans and metrics through the global providers; log fields
2 client: the HTTP client
    _client                 OpenSMSClient: every endpoint of the API
    _auth                   API key and OAuth2 client-credentials authentication
    _transport              one bounded HTTP exchange: a deadline and a size cap
    _aiohttp                the default HTTP layer: aiohttp under httpx's requests and errors
    _errors_map             a non-2xx response as its typed error
    _limiter                the hourly budget and concurrency cap of a client
    _bulk                   sending many messages with bounded concurrency
2 stores: states, the event log and the polling schedule, by URL
    stores                  the package: the store protocols, the stores, open_store
    stores._base            the protocols every store implements (Store, Schedule)
    stores._common          cursor parsing and reader wake-ups the stores share
    stores._memo            the merge replayed from a table, for the in-process stores
    stores._url             open_store, open_backend: a URL's scheme to its backend, lazily
    stores._url_options     a store URL's options, and a URL shown without its secrets
    stores.memory           MemoryStore: in this process's memory
    stores.sqlite           SQLiteStore: one SQLite file, a writer thread, group commit
    stores._sqlite_retention  what a SQLite store forgets, in small steps
    stores._sqlite_writer   the SQLite stores' writer thread: jobs in batches, group commit
    stores.redis            RedisStore: shared by replicas, Lua merges, group commit
    stores._redis_codec     what a Redis store sends to Redis and reads back
    stores._redis_config    a Redis store's URL, clients and settings
    stores._redis_expiry    a Redis store's own expiry of old requests
    stores._redis_errors    what both Redis stores do around a call: typed errors, a deadline
    stores._redis_calls     a Redis store's calls in flight, ended or waited for on close
    stores._redis_batches   a Redis store's group commit: two batches in flight, answered in order
    stores._redis_scripts   the Lua scripts, the merge generated from _state's tables
    stores.inbound          the package: the inbound store protocol, the stores, open_inbound_store
    stores.inbound._base    the protocol every inbound store implements (InboundStore)
    stores.inbound._url     open_inbound_store: the inbound stores' backends for open_backend
    stores.inbound.memory   MemoryInboundStore: in this process's memory
    stores.inbound.sqlite   SQLiteInboundStore: SQLite tables of their own, group commit
    stores.inbound.redis    RedisInboundStore: shared by replicas, one Lua call per receive
    stores.inbound._redis_scripts  the Lua scripts: dedupe, the reassembly step, the log append
2 live: what the stream consumers share
    _live                   the live buffer events() and messages() consumers share (generic)
3 tracking: delivery tracking over a store
    _tracker                DeliveryTracker: track, ingest, events, wait_for_final
    _poller                 the reconciliation poller, handed a store, a fetch and an ingest
    _telemetry_delivery     what a tracker and its poller record: events, durations, poll spans
3 inbox: the inbound stream, beside tracking, on stores of its own
    _inbox                  Inbox: ingest, messages, the reassembly timer
    _inbox_poller           the inbound poller, handed a fetch and a record
    _telemetry_inbound      what an inbox and its poller record: messages counted, poll spans
4 receiver: the ASGI edge
    receiver                create_receiver_app: token, parse, record, answer
    _receiving              what both endpoints share: answers, bounded body, record deadline
    _inbound_receiver       the inbound endpoint: Bearer token, parse, record in the inbox
    _telemetry_receiver     a span and a count per request each endpoint receives
    _telemetry_prometheus   /metrics for Prometheus (the prometheus extra)
5 edges: what users run, and testing support
    opensms_async           this package: the public names
    __main__                python -m opensms_async
    _cli                    the package: the opensms command line, the only package that prints
    _cli._base              what every command shares: parser, options, credentials, exit codes
    _cli._bulk_file         send-many's files: rows in (CSV or JSON lines), results out
    _cli._completion        opensms completion SHELL: a completion script from the parser
    _cli._convert           opensms convert: report a conversion, by address or reference
    _cli._doctor            opensms doctor: is this set-up ready, one line per check
    _cli._events            opensms events: a store's event log as JSON lines
    _cli._inbound           opensms inbound subscription create | get | delete, inbound poll
    _cli._inbox             opensms inbox: a store's inbound log as JSON lines
    _cli._local             opensms simulate and opensms demo: all on this machine
    _cli._main              main(): parse, log, run the command, one line per failure
    _cli._messages          opensms send, status and segments: one message at a time
    _cli._output            how commands print: results on stdout, notes on stderr
    _cli._progress          a long command's progress on stderr
    _cli._receive           opensms receive: the receiver, events and inbound as JSON lines
    _cli._send_many         opensms send-many FILE: every message of a file, resumable
    _cli._stores            store URLs as the commands take them
    _cli._subscription      opensms subscription create | get | delete
    _demo                   opensms demo: the whole story over real sockets
    _demo_inbound           opensms demo's two-way half: a reply in parts, made whole once
    _server                 serving an ASGI app on a real socket for a block
    testing                 the simulator and pytest fixtures, public
    testing._access         who may call the simulated API
    testing._callbacks      the simulator's delivery callbacks, planned and posted
    testing._clock          a manual clock for tests (time moves when the test says)
    testing._delivery       a simulated message's delivery timeline
    testing._faults         faults injected into the simulator
    testing._inbound        the simulator's inbound SMS and conversions
    testing._inbound_wire   the JSON of the simulator's inbound endpoints
    testing._routes         one route per path of the simulated API
    testing._running        running a simulator on a free port
    testing._simulator      the simulator of the OpenSMS API
    testing._wire           the JSON the simulator reads and writes
    testing.pytest_plugin   the pytest fixtures
"""

from ._addressing import normalize_address, normalize_sender
from ._aiohttp import AiohttpTransport
from ._auth import OAuthClientCredentials
from ._bulk import BulkResult, Message
from ._client import OpenSMSClient
from ._exceptions import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    InvalidAddressError,
    InvalidBaseURLError,
    InvalidCallbackURLError,
    InvalidCursorError,
    InvalidMessageError,
    InvalidSenderError,
    InvalidStoreURLError,
    InvalidUpdateError,
    MissingDependencyError,
    NotAcceptableError,
    NotFoundError,
    OpenSMSError,
    PermissionDeniedError,
    RateLimitError,
    ResponseTooLargeError,
    ServerError,
    StoreError,
    StoreUnavailableError,
    ValidationError,
)
from ._inbound import InboundSmsMessage, InboundSmsMessageList, InboundSubscription
from ._inbound_message import InboundMessage
from ._inbox import Inbox
from ._limiter import RateLimiter
from ._models import (
    DeliveryInfo,
    DeliveryInfoList,
    DeliveryStatus,
    NotAcceptableCallback,
    RequestError,
    SendResult,
    Status,
    Subscription,
    is_final,
)
from ._segments import SegmentCount, count_segments
from ._state import DeliveryEvent, DeliveryState, DeliveryUpdate, MergeOutcome, Source
from ._tracker import DeliveryTracker
from .receiver import create_receiver_app

__version__ = "0.1.0"

__all__ = [
    "APIConnectionError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AiohttpTransport",
    "AuthenticationError",
    "BadRequestError",
    "BulkResult",
    "DeliveryEvent",
    "DeliveryInfo",
    "DeliveryInfoList",
    "DeliveryState",
    "DeliveryStatus",
    "DeliveryTracker",
    "DeliveryUpdate",
    "InboundMessage",
    "InboundSmsMessage",
    "InboundSmsMessageList",
    "InboundSubscription",
    "Inbox",
    "InvalidAddressError",
    "InvalidBaseURLError",
    "InvalidCallbackURLError",
    "InvalidCursorError",
    "InvalidMessageError",
    "InvalidSenderError",
    "InvalidStoreURLError",
    "InvalidUpdateError",
    "MergeOutcome",
    "Message",
    "MissingDependencyError",
    "NotAcceptableCallback",
    "NotAcceptableError",
    "NotFoundError",
    "OAuthClientCredentials",
    "OpenSMSClient",
    "OpenSMSError",
    "PermissionDeniedError",
    "RateLimitError",
    "RateLimiter",
    "RequestError",
    "ResponseTooLargeError",
    "SegmentCount",
    "SendResult",
    "ServerError",
    "Source",
    "Status",
    "StoreError",
    "StoreUnavailableError",
    "Subscription",
    "ValidationError",
    "__version__",
    "count_segments",
    "create_receiver_app",
    "is_final",
    "normalize_address",
    "normalize_sender",
]
