"""The receiver mounted in a parent app: its callbacks take the same direct path as alone."""

from __future__ import annotations

import httpx
import pytest
from starlette._utils import get_route_path
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route

from opensms_async import DeliveryStatus, DeliveryTracker, create_receiver_app
from opensms_async.receiver import _below
from opensms_async.testing import delivery_callback_body, serve

TOKEN = "mounted-secret"


def callback(address: str = "tel:+33612345678") -> dict[str, object]:
    """A BICS callback body with the token inside."""
    return delivery_callback_body(
        "req-m", address, DeliveryStatus.DELIVERED_TO_TERMINAL, security_token=TOKEN
    )


async def _home(request: Request) -> Response:
    return PlainTextResponse("host")


@pytest.mark.integration
async def test_mounted_callbacks_skip_the_receivers_own_starlette_stack() -> None:
    """Mounted, a callback is recorded without building the receiver's Starlette stack (its
    middleware and router), as when it runs alone: mounting costs only the parent's routing."""
    tracker = DeliveryTracker()
    child = create_receiver_app(tracker, TOKEN, path="/callback")
    parent = Starlette(routes=[Route("/", _home), Mount("/sms", child)])
    async with tracker, serve(parent) as server, httpx.AsyncClient() as http:
        for n in range(3):
            answer = await http.post(
                f"{server.url}/sms/callback", json=callback(f"tel:+3361234{n}")
            )
            assert answer.status_code == 204
        assert len(await tracker.get_request("req-m")) == 3
        assert child.middleware_stack is None  # built on the first request Starlette handles
        # Anything else still goes through Starlette: the health route, a wrong method.
        assert (await http.get(f"{server.url}/sms/healthz")).status_code == 200
        assert (await http.get(f"{server.url}/sms/callback")).status_code == 405
        assert (await http.post(f"{server.url}/sms/callbackx", json=callback())).status_code == 404


class _Tag(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers["x-tag"] = "seen"
        return response


@pytest.mark.integration
async def test_a_mounted_receiver_with_middleware_runs_it_on_callbacks() -> None:
    """Middleware added to the receiver app still sees every callback when it is mounted."""
    tracker = DeliveryTracker()
    child = create_receiver_app(tracker, TOKEN, path="/callback")
    child.user_middleware.insert(0, Middleware(_Tag))
    parent = Starlette(routes=[Mount("/sms", child)])
    async with tracker, serve(parent) as server, httpx.AsyncClient() as http:
        answer = await http.post(f"{server.url}/sms/callback", json=callback())
        assert answer.status_code == 204
        assert answer.headers["x-tag"] == "seen"


@pytest.mark.parametrize(
    ("path", "root"),
    [
        ("/sms/callback", "/sms"),
        ("/sms", "/sms"),
        ("/sms/", "/sms"),
        ("/smsx/callback", "/sms"),
        ("/callback", "/sms"),  # a server that keeps the root path out of ``path``
        ("/a/b/callback", "/a/b"),
        ("/a/bc", "/a/b"),
    ],
)
def test_the_path_below_a_mount_is_the_one_starlette_routes_on(path: str, root: str) -> None:
    """The callback path is matched below a mount's prefix exactly as Starlette's router does."""
    assert _below(path, root) == get_route_path({"path": path, "root_path": root})
