"""What every command shares: the parser, global options, credentials, errors and exit codes.

Exit codes, the same for every command: 0 done; 1 it was tried and failed (network, API, store,
a port in use, a doctor check); 2 nothing was done because the input is invalid (an option, a
file, a number, a URL: fix the command); 130 interrupted (Ctrl-C). SIGTERM stops the long-running
commands cleanly, with 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import math
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from .._auth import OAuthClientCredentials
from .._client import OpenSMSClient
from .._constants import DEFAULT_BASE_URL, DEFAULT_TOKEN_URL, ENV_API_KEY, ENV_BASE_URL
from .._server import RunningServer, serve
from ._output import Output

__all__ = [
    "DEFAULT_STORE",
    "ENV_CLIENT_ID",
    "ENV_CLIENT_SECRET",
    "ENV_SCOPE",
    "ENV_SECURITY_TOKEN",
    "ENV_STORE",
    "ENV_TOKEN_URL",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CommandError",
    "Commands",
    "Parser",
    "Run",
    "add_global_options",
    "add_reconcile_option",
    "callback_path",
    "credentials",
    "env",
    "listening",
    "make_client",
    "non_empty",
    "port",
    "positive_seconds",
    "rate",
    "security_token",
    "until_stopped",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

ENV_SECURITY_TOKEN = "OPENSMS_SECURITY_TOKEN"  # noqa: S105 (a variable name)
ENV_STORE = "OPENSMS_STORE"
ENV_CLIENT_ID = "OPENSMS_CLIENT_ID"
ENV_CLIENT_SECRET = "OPENSMS_CLIENT_SECRET"  # noqa: S105 (a variable name)
ENV_SCOPE = "OPENSMS_SCOPE"
ENV_TOKEN_URL = "OPENSMS_TOKEN_URL"  # noqa: S105 (a variable name)
DEFAULT_STORE = "sqlite:///opensms.db"
"""The CLI's store: a SQLite file in the current folder (the library's default is memory://)."""

Run = Callable[[argparse.Namespace, Output], Awaitable[int]]
"""A command: its parsed arguments and where to print; returns the exit code."""


class CommandError(Exception):
    """A command cannot go on: printed as one ``error: ...`` line; the process exits ``code``."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def env(name: str) -> str | None:
    """An environment variable, None when unset or empty."""
    return os.environ.get(name) or None


# --- the parser ---------------------------------------------------------------------------------


class HelpFormatter(argparse.HelpFormatter):
    """Wraps descriptions paragraph by paragraph (blank lines kept) and shows each option's
    default, unless it has none worth showing or its help names it already."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = text.split("\n\n")
        return "\n\n".join(
            super(HelpFormatter, self)._fill_text(p, width, indent) for p in paragraphs
        )

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" in text
            or "default:" in text
            or default in (None, False, argparse.SUPPRESS)
            or not action.option_strings
        ):
            return text
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, ``error: ...``, and exit code 2."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> Any:  # argparse declares NoReturn
        """Raise the one-line usage error instead of printing the usage and exiting."""
        raise CommandError(f"{message} (see '{self.prog} --help')", EXIT_USAGE)


def add_global_options(parser: argparse.ArgumentParser, *, in_command: bool) -> None:
    """The options every command takes, before or after its name.

    The main parser gives them their defaults; a command's parser leaves unset ones out of the
    namespace (``SUPPRESS``), so a value given before the command is not overwritten.
    """

    def default(value: object) -> object:
        return argparse.SUPPRESS if in_command else value

    group = parser.add_argument_group("global options (before or after the command)")
    group.add_argument(
        "--api-key", default=default(None), help=f"API key (BICS v1/v2; default: env {ENV_API_KEY})"
    )
    group.add_argument(
        "--base-url",
        default=default(None),
        help=f"API base URL (default: env {ENV_BASE_URL}, else {DEFAULT_BASE_URL})",
    )
    group.add_argument(
        "--client-id",
        default=default(None),
        help=f"OAuth client id, for BICS SMS v3 (default: env {ENV_CLIENT_ID})",
    )
    group.add_argument(
        "--client-secret",
        default=default(None),
        help=f"OAuth client secret (default: env {ENV_CLIENT_SECRET})",
    )
    group.add_argument(
        "--scope",
        default=default(None),
        help=f"OAuth product scope, e.g. sms-a2p-business-class (default: env {ENV_SCOPE})",
    )
    group.add_argument(
        "--token-url",
        default=default(None),
        help=f"OAuth token endpoint (default: env {ENV_TOKEN_URL}, else BICS's)",
    )
    group.add_argument(
        "--json", action="store_true", default=default(False), help="print results as JSON"
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default(0),
        help="log more: -v info, -vv debug (logs go to stderr; default: warnings)",
    )
    group.add_argument(
        "--log-level",
        type=str.lower,
        choices=["debug", "info", "warning", "error"],
        default=default(None),
        help="log level (default: warning)",
    )


class Commands:
    """Where command groups add their commands: ``commands.add("send", run=..., help=...)``.

    Every command gets the global options; :meth:`group` makes a command with actions of its
    own (``opensms subscription get``).
    """

    def __init__(self, subparsers: Any) -> None:
        self._sub = subparsers

    def add(self, name: str, *, run: Run, help: str, description: str | None = None) -> Parser:
        """A new command ``name`` that runs ``run``; add its own options to the parser returned."""
        parser: Parser = self._sub.add_parser(name, help=help, description=description or help)
        add_global_options(parser, in_command=True)
        parser.set_defaults(run=run)
        return parser

    def group(self, name: str, *, help: str) -> Commands:
        """A command whose actions are commands of their own."""
        parser: Parser = self._sub.add_parser(name, help=help, description=help)
        add_global_options(parser, in_command=True)
        return Commands(parser.add_subparsers(title="actions", metavar="ACTION", required=True))


def add_reconcile_option(
    parser: argparse.ArgumentParser,
    help: str = "poll a request still not final this long after its send, then less and less often",
) -> None:
    """``--reconcile-after SECONDS``: when a tracked request with no final state is first polled
    (the tracker's ``reconcile_after``, 60 s by default as in the library)."""
    parser.add_argument(
        "--reconcile-after", type=positive_seconds, default=60.0, metavar="SECONDS", help=help
    )


# --- option values ------------------------------------------------------------------------------


def port(text: str) -> int:
    """A TCP port, 0 (any free one) to 65535."""
    if not (text.isascii() and text.isdigit()) or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"a port is a number from 0 to 65535, not {text!r}")
    return int(text)


def rate(text: str) -> float:
    """A share, from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a share from 0 to 1 (0.3 is 30%), not {text!r}")
    return value


def positive_seconds(text: str) -> float:
    """A finite number of seconds above 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"a positive number of seconds, not {text!r}")
    return value


def non_empty(text: str) -> str:
    """Any text but the empty one."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def callback_path(text: str) -> str:
    """A URL path: starts with ``/``."""
    if not text.startswith("/") or any(char.isspace() for char in text):
        raise argparse.ArgumentTypeError(
            f"a path starts with '/' and has no spaces, e.g. /sms/callback, not {text!r}"
        )
    return text


# --- credentials --------------------------------------------------------------------------------


def credentials(args: argparse.Namespace) -> tuple[str | None, OAuthClientCredentials | None]:
    """The API key or the OAuth client credentials the options and the environment give.

    OAuth when a client id is given (option or env), else the API key; both as options is a
    usage error. Neither: ``(None, None)``.
    """
    api_key = _option(args, "api_key", "--api-key")
    client_id = _option(args, "client_id", "--client-id")
    if api_key is not None and client_id is not None:
        raise CommandError("give either --api-key or --client-id, not both", EXIT_USAGE)
    client_id = client_id or (None if api_key else env(ENV_CLIENT_ID))
    if client_id is None:
        return api_key or env(ENV_API_KEY), None
    secret = _option(args, "client_secret", "--client-secret") or env(ENV_CLIENT_SECRET)
    scope = _option(args, "scope", "--scope") or env(ENV_SCOPE)
    if secret is None or scope is None:
        missing = "--client-secret" if secret is None else "--scope"
        variable = ENV_CLIENT_SECRET if secret is None else ENV_SCOPE
        raise CommandError(
            f"OAuth needs {missing} too (or set {variable}) with the client id", EXIT_USAGE
        )
    token_url = _option(args, "token_url", "--token-url") or env(ENV_TOKEN_URL)
    oauth = OAuthClientCredentials(
        client_id, secret, scope, token_url=token_url or DEFAULT_TOKEN_URL
    )
    return None, oauth


def security_token(given: str | None, variable: str) -> str:
    """The security token of ``--token`` (``given``), else of env ``variable``; a usage error
    when neither gives one that is not blank."""
    token = given if given is not None else env(variable)
    if not token or not token.strip():
        raise CommandError(f"give --token or set {variable} (not empty)", EXIT_USAGE)
    return token


def _option(args: argparse.Namespace, name: str, flag: str) -> str | None:
    value: str | None = getattr(args, name, None)
    if value is not None and not value.strip():
        raise CommandError(f"{flag} is empty: give a value or leave the option out", EXIT_USAGE)
    return value


def make_client(args: argparse.Namespace, **options: Any) -> OpenSMSClient:
    """The client the options and environment describe; a usage error without credentials."""
    api_key, oauth = credentials(args)
    if api_key is None and oauth is None:
        raise CommandError(
            f"no credentials: give --api-key or set {ENV_API_KEY} (BICS v3: --client-id, "
            f"--client-secret and --scope, or {ENV_CLIENT_ID}, {ENV_CLIENT_SECRET}, {ENV_SCOPE})",
            EXIT_USAGE,
        )
    return OpenSMSClient(api_key=api_key, oauth=oauth, base_url=args.base_url, **options)


# --- servers and signals ------------------------------------------------------------------------

_BIND_HINTS = {
    errno.EADDRINUSE: "another process listens there: choose another --port, or stop it",
    errno.EACCES: "ports below 1024 need privileges: choose a --port above 1024",
    errno.EADDRNOTAVAIL: "not an address of this machine: try --host 127.0.0.1 or 0.0.0.0",
}


@contextlib.asynccontextmanager
async def listening(app: Any, host: str, port: int, **options: Any) -> AsyncIterator[RunningServer]:
    """:func:`serve` ``app``; a port in use (or any address that cannot be bound) is a one-line
    :class:`CommandError` saying what to change."""
    async with contextlib.AsyncExitStack() as stack:
        try:
            server = await stack.enter_async_context(serve(app, host=host, port=port, **options))
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            hint = _BIND_HINTS.get(exc.errno or 0, "check --host and --port")
            raise CommandError(f"cannot listen on {host}:{port}: {reason} ({hint})") from exc
        yield server


async def until_stopped() -> int:
    """Wait for Ctrl-C (SIGINT) or SIGTERM; the exit code: 130 after Ctrl-C, 0 after SIGTERM.

    SIGTERM (a process manager stopping us) shuts down as cleanly as Ctrl-C. The handlers are
    removed on return, so a second Ctrl-C during the shutdown interrupts it.
    """
    loop = asyncio.get_running_loop()
    stopped: asyncio.Future[int] = loop.create_future()

    def stop(number: int) -> None:
        if not stopped.done():
            stopped.set_result(number)

    installed = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop, sig)
            installed.append(sig)
    try:
        return EXIT_INTERRUPTED if await stopped == signal.SIGINT else EXIT_OK
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
