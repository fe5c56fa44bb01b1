"""Sending one request with httpx, its transport errors turned into this package's."""

from __future__ import annotations

import httpx

from ._exceptions import APIConnectionError, APITimeoutError

__all__ = ["send_request"]


async def send_request(http: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
    """``http.send(request)``, with httpx's transport errors turned into this tree's.

    The message names only the error's type: httpx's own text may carry the URL with a query.
    """
    try:
        return await http.send(request)
    except httpx.TimeoutException:
        raise APITimeoutError(request=request) from None
    except httpx.TransportError as exc:
        raise APIConnectionError(
            f"Connection error: {type(exc).__name__}", request=request
        ) from None
