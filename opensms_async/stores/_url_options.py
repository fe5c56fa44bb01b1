"""Reading a store URL's options, and showing a URL without its secrets (pure, no I/O).

The bottom of the store layer: each backend's ``from_url`` and the URL opener (:mod:`._url`) use
these, and this module imports nothing of theirs, so no import runs back up.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from urllib.parse import parse_qs, unquote, urlsplit

from .._exceptions import InvalidStoreURLError

__all__ = ["memory_options", "options", "positive_int", "positive_seconds", "redact", "sqlite_url"]

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_UNPARSEABLE = "<unparseable URL>"


def options(shown: str, query: str, known: Collection[str]) -> dict[str, str]:
    """The options of a URL's ``query``, each at most once and all of them ``known``.

    ``shown`` is the URL as error messages may show it (see :func:`redact`).
    """
    parsed = _parse_query(query)
    if parsed is None:
        raise InvalidStoreURLError(
            f"malformed options in {shown!r}: expected name=value pairs joined by '&'"
        )
    unknown = sorted(set(parsed) - set(known))
    if unknown:
        allowed = ", ".join(sorted(known))
        raise InvalidStoreURLError(f"unknown option {unknown[0]!r} in {shown!r} (known: {allowed})")
    repeated = [name for name, values in parsed.items() if len(values) > 1]
    if repeated:
        raise InvalidStoreURLError(f"option {repeated[0]!r} given twice in {shown!r}")
    return {name: values[0] for name, values in parsed.items()}


def memory_options(url: str, known: Collection[str]) -> dict[str, str]:
    """The options of a ``memory://`` URL, all of them ``known``; InvalidStoreURLError for
    another scheme, a host or a path."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "memory" or parts.netloc or parts.path not in ("", "/"):
        raise InvalidStoreURLError(f"a memory store URL has no host or path: {redact(url)!r}")
    return options(url, parts.query, known)


def sqlite_url(url: str, known: Collection[str]) -> tuple[str, str, dict[str, str]]:
    """The file a ``sqlite:///relative.db``, ``sqlite:////absolute.db`` or
    ``sqlite:///:memory:`` URL names, its ``synchronous`` option (NORMAL, the default, or FULL,
    upper-cased) and its other options, all of them ``known``; InvalidStoreURLError otherwise."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "sqlite" or parts.netloc:
        raise InvalidStoreURLError(
            f"a SQLite URL has no host: {redact(url)!r} (relative: sqlite:///file.db,"
            " absolute: sqlite:////path/file.db)"
        )
    path = unquote(parts.path[1:])  # the third slash ends the empty host
    if not path or path.endswith("/"):
        raise InvalidStoreURLError(f"a SQLite URL needs a file name: {url!r}")
    given = options(url, parts.query, {"synchronous", *known})
    synchronous = given.pop("synchronous", "NORMAL").upper()
    if synchronous not in ("NORMAL", "FULL"):
        raise InvalidStoreURLError(f"synchronous must be NORMAL or FULL in {url!r}")
    return path, synchronous, given


def _parse_query(query: str) -> dict[str, list[str]] | None:
    """The options of a query, None when malformed: not the parser's error, which quotes the
    offending field (part of a password, maybe), not even as the context of another."""
    try:
        return parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        return None


def positive_int(shown: str, name: str, value: str) -> int:
    """Option ``name`` as a whole number of at least 1; InvalidStoreURLError otherwise."""
    if not (value.isascii() and value.isdigit()) or int(value) < 1:
        raise InvalidStoreURLError(f"{name} must be a positive integer in {shown!r}")
    return int(value)


def positive_seconds(shown: str, name: str, value: str) -> float:
    """Option ``name`` as a finite number of seconds above 0; InvalidStoreURLError otherwise."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise InvalidStoreURLError(f"{name} must be a positive number of seconds in {shown!r}")
    return seconds


def redact(url: object) -> str:
    """What of a URL a message or repr may show: scheme, host, port and path, never credentials.

    Credentials become ``***@`` and the query and fragment are dropped (``?password=`` is a
    password too). An unencoded ``/``, ``?``, ``#`` or ``@`` in a password moves part of it into
    the host, port, path, query or fragment, where nothing can tell it from the rest: a URL with an
    ``@`` outside its credentials, or that does not split, shows as ``scheme://<unparseable URL>``.
    """
    if not isinstance(url, str):
        return _UNPARSEABLE
    scheme, separator, _ = url.partition("://")
    if not separator:
        return _UNPARSEABLE if any(c in url for c in "@?#") else url
    if not _SCHEME.fullmatch(scheme):
        return _UNPARSEABLE
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return f"{scheme}://{_UNPARSEABLE}"
    if "@" in parts.path or "@" in parts.query or "@" in parts.fragment:
        return f"{scheme}://{_UNPARSEABLE}"
    credentials = "***@" if "@" in parts.netloc else ""
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{credentials}{host}{'' if port is None else f':{port}'}{parts.path}"
