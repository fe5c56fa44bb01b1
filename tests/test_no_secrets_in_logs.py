"""No secret in the logs: a whole demo run at DEBUG never shows a key, a secret or a token."""

from __future__ import annotations

import io
import logging
import secrets

import attrs
import pytest

from opensms_async._demo import run_demo
from opensms_async.testing import Simulator


async def test_no_secret_in_debug_logs_of_a_demo_run(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A whole demo run (send, callbacks, polls, receiver) logs at DEBUG without ever showing the
    API key, the OAuth client secret or the security token, in a record or in its output."""
    generated: list[str] = []
    real = secrets.token_urlsafe

    def spy(nbytes: int | None = None) -> str:
        token = real(nbytes)
        generated.append(token)
        return token

    monkeypatch.setattr(secrets, "token_urlsafe", spy)  # the demo's security token comes from it
    caplog.set_level(logging.DEBUG)
    out = io.StringIO()
    assert await run_demo(seed=5, drop_rate=0.3, out=out) == 0
    fields = attrs.fields(Simulator)
    hidden = [fields.api_key.default, fields.client_secret.default, *generated]
    assert generated, "the demo no longer draws its token from secrets.token_urlsafe"
    assert any(
        r.name.startswith("opensms_async") and r.levelno == logging.DEBUG for r in caplog.records
    )
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    texts = [out.getvalue(), caplog.text]
    texts += [formatter.format(record) + repr(vars(record)) for record in caplog.records]
    for secret in hidden:
        assert isinstance(secret, str) and len(secret) >= 8
        leaks = [text for text in texts if secret in text]
        assert not leaks, f"a secret appears in: {leaks[0][:300]!r}"
