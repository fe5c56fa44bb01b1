"""``opensms doctor``: is this set-up ready? One line per check, ✓ or ✗ and what to do.

Checks, in order: the credentials are there; the base URL answers; the API accepts the
credentials; the account has a subscription (else no callback comes); the store opens (never
creating it); and, for a ``redis://`` store, that Redis keeps what it acknowledges (AOF). A check
that depends on one that failed is shown ``-`` (not checked). Exit 1 when any check failed.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import AsyncIterator

import attrs
import httpx

from .._constants import DEFAULT_BASE_URL, ENV_API_KEY, ENV_BASE_URL
from .._exceptions import APIConnectionError, APIStatusError, OpenSMSError, StoreError
from .._models import Subscription
from .._transport import connection_cause
from ..stores import MemoryStore, SQLiteStore, open_store
from ._base import ENV_CLIENT_ID, CommandError, Commands, credentials, env, make_client
from ._events import add_store_option, store_url
from ._output import Output
from ._stores import sqlite_hint, where

__all__ = ["Check", "register"]

_PROBE_TIMEOUT = 5.0
_MARKS = {True: "✓", False: "✗", None: "-"}


@attrs.frozen
class Check:
    """One line of the report: ``ok`` True, False, or None when not checked."""

    name: str
    ok: bool | None
    detail: str
    hint: str | None = None


def register(commands: Commands) -> None:
    """Add ``doctor``."""
    doctor = commands.add(
        "doctor",
        run=_doctor,
        help="check credentials, base URL, subscription, store and Redis",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    add_store_option(doctor)


async def _doctor(args: argparse.Namespace, out: Output) -> int:
    failed = False
    async for check in _checks(args):
        failed |= check.ok is False
        data = attrs.asdict(check, recurse=False)
        hint = f"  → {check.hint}" if check.hint else ""
        out.result(data, [f"{_MARKS[check.ok]} {check.name:<13} {check.detail}{hint}"])
    return 1 if failed else 0


async def _checks(args: argparse.Namespace) -> AsyncIterator[Check]:
    present = _credentials_present(args)
    yield present
    reach = await _base_url(args)
    yield reach
    if not present.ok or not reach.ok:
        reason = "no credentials" if not present.ok else "the base URL does not answer"
        yield Check("accepted", None, f"not checked: {reason}")
        yield Check("subscription", None, f"not checked: {reason}")
    else:
        accepted, subscription = await _account(args)
        yield accepted
        yield subscription
    url = store_url(args)
    yield await _store(url)
    if url.partition("://")[0].lower() in ("redis", "rediss"):
        yield await _redis(url)


def _credentials_present(args: argparse.Namespace) -> Check:
    try:
        api_key, oauth = credentials(args)
    except CommandError as exc:
        return Check("credentials", False, str(exc))
    if oauth is not None:
        source = "--client-id" if args.client_id else ENV_CLIENT_ID
        return Check("credentials", True, f"OAuth client {oauth.client_id!r} (from {source})")
    if api_key is not None:
        source = "--api-key" if args.api_key else ENV_API_KEY
        return Check("credentials", True, f"API key of {len(api_key)} characters (from {source})")
    return Check(
        "credentials",
        False,
        "none",
        f"give --api-key or set {ENV_API_KEY} (BICS v3: --client-id, --client-secret, --scope); "
        "`opensms simulate` prints a key that works against it",
    )


async def _base_url(args: argparse.Namespace) -> Check:
    url = (args.base_url or env(ENV_BASE_URL) or DEFAULT_BASE_URL).rstrip("/")
    source = "--base-url" if args.base_url else ENV_BASE_URL if env(ENV_BASE_URL) else "default"
    try:
        make_client_for_url(url)
    except OpenSMSError as exc:
        return Check("base URL", False, str(exc), f"fix --base-url or {ENV_BASE_URL}")
    started = time.perf_counter()
    try:
        async with httpx.AsyncClient(timeout=_PROBE_TIMEOUT, trust_env=False) as http:
            response = await http.get(f"{url}/outbound/subscriptions")
    except httpx.HTTPError as exc:
        return Check(
            "base URL",
            False,
            f"{url} (from {source}) does not answer: {connection_cause(exc)}",
            f"check --base-url or {ENV_BASE_URL}; is the API (or `opensms simulate`) running?",
        )
    elapsed = (time.perf_counter() - started) * 1000
    detail = f"{url} (from {source}) answers: HTTP {response.status_code} in {elapsed:.0f} ms"
    return Check("base URL", True, detail)


def make_client_for_url(url: str) -> None:
    """Raise the client's own error for a base URL it would refuse (no request made)."""
    from .._client import OpenSMSClient

    OpenSMSClient(api_key="doctor", base_url=url)


async def _account(args: argparse.Namespace) -> tuple[Check, Check]:
    try:
        async with make_client(args, max_retries=0, timeout=_PROBE_TIMEOUT) as client:
            subscription = await client.get_subscription()
    except APIStatusError as exc:
        hint = (
            "check the key (or the OAuth client and scope)"
            if exc.status_code in (401, 403)
            else None
        )
        not_checked = Check("subscription", None, "not checked: the API refused the credentials")
        return Check("accepted", False, f"the API answered {exc}", hint), not_checked
    except (APIConnectionError, OpenSMSError) as exc:
        not_checked = Check("subscription", None, "not checked: the call failed")
        return Check("accepted", False, str(exc)), not_checked
    return Check("accepted", True, "the API accepts the credentials"), _subscription(subscription)


def _subscription(subscription: Subscription | None) -> Check:
    if subscription is None:
        return Check(
            "subscription",
            False,
            "none: BICS posts no delivery callback (only polling would tell states)",
            "opensms subscription create https://YOUR-HOST/sms/callback --token TOKEN",
        )
    return Check("subscription", True, f"callbacks go to {subscription.url}")


async def _store(url: str) -> Check:
    try:
        store = open_store(url)
    except OpenSMSError as exc:
        return Check("store", False, str(exc), "fix --store or OPENSMS_STORE")
    if isinstance(store, MemoryStore):
        return Check("store", True, "memory:// (kept only while the process runs)")
    if isinstance(store, SQLiteStore) and store.path != ":memory:":
        missing = _missing_sqlite(store)
        if missing is not None:
            return missing
    try:
        await store.open()
        try:
            cursor = await store.last_cursor()
        finally:
            await store.aclose()
    except StoreError as exc:
        return Check("store", False, f"{url}: {exc}", "is the store running and reachable?")
    newest = f"newest event {cursor}" if cursor is not None else "no events yet"
    shown = where(store) if isinstance(store, SQLiteStore) else repr(store)
    return Check("store", True, f"{url} → {shown}: {newest}")


def _missing_sqlite(store: SQLiteStore) -> Check | None:
    """A check for a SQLite file that is not there yet (None when it is)."""
    if os.path.exists(store.path):
        return None
    folder = os.path.dirname(where(store))
    if os.path.isdir(folder) and os.access(folder, os.W_OK):
        return Check(
            "store",
            True,
            f"no file yet: `opensms receive` creates {sqlite_hint(store)}",
        )
    return Check("store", False, f"cannot create {sqlite_hint(store)}", "give a folder that exists")


async def _redis(url: str) -> Check:
    from ..stores._redis_config import describe, split_url
    from ..stores._redis_config import make_client as redis_client

    try:
        client = redis_client(split_url(url)[0], socket_timeout=_PROBE_TIMEOUT)
    except OpenSMSError as exc:
        return Check("redis", False, str(exc))
    try:
        info = await client.info("persistence")
        server = await client.info("server")
        fsync = await _appendfsync(client)
    except Exception as exc:  # redis-py's errors: the server is gone or refuses
        return Check("redis", False, f"{describe(client)}: {type(exc).__name__}: {exc}")
    finally:
        await client.aclose()
    version = server.get("redis_version", "?")
    if not int(info.get("aof_enabled", 0)):
        return Check(
            "redis",
            False,
            f"Redis {version} at {describe(client)} has appendonly no: callbacks it acknowledged "
            "are lost if it restarts",
            "set appendonly yes and appendfsync always (or everysec) in redis.conf",
        )
    return Check(
        "redis", True, f"Redis {version} at {describe(client)}: appendonly yes, appendfsync {fsync}"
    )


async def _appendfsync(client: object) -> str:
    try:
        reply = await client.config_get("appendfsync")  # type: ignore[attr-defined]
    except Exception:  # CONFIG is often disabled on managed Redis
        return "unknown (CONFIG is disabled)"
    return str(reply.get("appendfsync", "unknown"))
