"""One route per path of the simulated API, dispatching on the method.

Starlette gives each ``Route`` its own methods, so a path served by three routes (GET, POST and
DELETE on ``/outbound/subscriptions``) answered a wrong method with the ``Allow`` header of the
first route alone. Here a path is one route that knows every method it serves: a 405 says
``Allow: GET, POST, DELETE``, exactly the methods BICS documents (HEAD included only where
documented, which is nowhere).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

__all__ = ["Endpoint", "method_route"]

Endpoint = Callable[[Request], Awaitable[Response]]


def method_route(path: str, handlers: Mapping[str, Endpoint]) -> Route:
    """A route for ``path`` that calls ``handlers[method]``; other methods get 405 and ``Allow``.

    ``handlers`` keys are upper-case methods, in the order the ``Allow`` header lists them.
    """
    return Route(path, _MethodDispatch(handlers))


class _MethodDispatch:
    """An ASGI app (not a function, so Starlette leaves every method to it)."""

    def __init__(self, handlers: Mapping[str, Endpoint]) -> None:
        self._handlers = dict(handlers)
        self._allow = ", ".join(self._handlers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        handler = self._handlers.get(request.method)
        if handler is None:
            headers = {"Allow": self._allow}
            response = Response(b"", status_code=405, headers=headers, media_type="text/plain")
        else:
            response = await handler(request)
        await response(scope, receive, send)
