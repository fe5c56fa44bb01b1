"""opensms-async: the asyncio SDK for the BICS OpenSMS API.

Send messages, poll delivery infos and manage the delivery-info subscription with
:class:`OpenSMSClient`; run the bundled receiver and iterate delivery events with
:class:`DeliveryTracker`. The client also speaks the rest of BICS v3: the inbound-message
subscription, polling an inbound number's inbox, and conversion reports.
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
    "InboundSmsMessage",
    "InboundSmsMessageList",
    "InboundSubscription",
    "InvalidAddressError",
    "InvalidBaseURLError",
    "InvalidCallbackURLError",
    "InvalidCursorError",
    "InvalidMessageError",
    "InvalidSenderError",
    "InvalidStoreURLError",
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
