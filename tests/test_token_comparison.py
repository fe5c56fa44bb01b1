"""The token check: each accepted token compared as bytes, in constant time, no early exit."""

from __future__ import annotations

import ast
import hmac
import inspect
import textwrap
from typing import Any

import httpx
import pytest

from opensms_async import DeliveryTracker, create_receiver_app
from opensms_async._webhook import encode_token, token_matches
from opensms_async.testing import delivery_callback_body

ACCEPTED = ("r2k5hq3-new-token", "old-T0ken-rotating")
ACCEPTED_BYTES = tuple(t.encode() for t in ACCEPTED)
PATH = "/sms/callback"


class CompareSpy:
    """Records the arguments of every ``hmac.compare_digest`` call."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, Any]] = []
        self._real = hmac.compare_digest

    def __call__(self, a: Any, b: Any) -> bool:
        """Record, then compare for real."""
        self.calls.append((a, b))
        return self._real(a, b)


@pytest.fixture
def compare_spy(monkeypatch: pytest.MonkeyPatch) -> CompareSpy:
    """``hmac.compare_digest`` replaced by a recording spy."""
    spy = CompareSpy()
    monkeypatch.setattr(hmac, "compare_digest", spy)
    return spy


@pytest.mark.parametrize(
    "presented",
    [
        b"first-token",
        b"third-token",
        b"wrong",
        b"",
        None,
        "s\ud800".encode("utf-8", "surrogatepass"),
    ],
)
def test_token_matches_compares_every_accepted_token_as_bytes(
    compare_spy: CompareSpy, presented: bytes | None
) -> None:
    """token_matches calls compare_digest on bytes once per accepted token, in order, whether the
    first one matched or none did (no early exit)."""
    accepted = [encode_token(t) for t in ("first-token", "second-token", "third-token")]
    result = token_matches(presented, accepted)
    assert result == (presented in accepted)
    assert [b for _, b in compare_spy.calls] == accepted
    assert all(type(a) is bytes and type(b) is bytes for a, b in compare_spy.calls)
    assert {a for a, _ in compare_spy.calls} == {presented or b""}


def test_token_matches_has_no_equality_test_on_a_secret() -> None:
    """The source of token_matches compares the presented token only with public constants
    (None, b""), never with an accepted token by ==, != or in, and never leaves its loop early."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(token_matches)))
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            assert any(isinstance(o, ast.Constant) for o in operands), ast.unparse(node)
    loops = [node for node in ast.walk(tree) if isinstance(node, ast.For)]
    assert loops, "expected one comparison per accepted token"
    for loop in loops:
        exits = [n for n in ast.walk(loop) if isinstance(n, (ast.Return, ast.Break))]
        assert not exits, ast.unparse(loop)


async def test_receiver_compares_the_token_with_every_accepted_token(
    compare_spy: CompareSpy,
) -> None:
    """A callback carrying the first of two accepted tokens is still compared with the second
    (and one carrying the second, or neither, with both)."""
    async with DeliveryTracker() as tracker:
        app = create_receiver_app(tracker, list(ACCEPTED), path=PATH, manage_tracker=False)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://r") as http:
            for token in (*ACCEPTED, "nope"):
                body = delivery_callback_body(
                    "r", "tel:+331", "DeliveredToNetwork", security_token=token
                )
                compare_spy.calls.clear()
                await http.post(PATH, json=body)
                assert sorted(b for _, b in compare_spy.calls) == sorted(ACCEPTED_BYTES)
