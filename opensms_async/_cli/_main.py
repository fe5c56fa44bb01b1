"""``main()``: parse, set up logging, run the command, turn every failure into one line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import platform
import sys
from collections.abc import Iterator, Sequence
from types import ModuleType

from .. import __version__
from .._exceptions import OpenSMSError, ValidationError
from . import (
    _completion,
    _convert,
    _doctor,
    _events,
    _inbound,
    _inbox,
    _local,
    _messages,
    _receive,
    _send_many,
    _subscription,
)
from ._base import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    CommandError,
    Commands,
    Parser,
    add_global_options,
)
from ._output import Output

__all__ = ["build_parser", "main"]

logger = logging.getLogger("opensms_async.cli")

GROUPS: tuple[ModuleType, ...] = (
    _messages,
    _send_many,
    _subscription,
    _receive,
    _events,
    _inbound,
    _inbox,
    _convert,
    _local,
    _doctor,
    _completion,
)
"""The command groups, in the order ``--help`` lists them; each has ``register(commands)``."""

_EPILOG = """\
Exit codes: 0 done, 1 failed (network, API, store, a check), 2 invalid input (nothing was done),
130 interrupted (Ctrl-C).

Getting started: `opensms simulate` in one shell, then the lines it prints in another;
`opensms doctor` checks a set-up; `opensms COMMAND --help` tells more."""


def build_parser() -> Parser:
    """The whole ``opensms`` parser: global options, then every group's commands."""
    parser = Parser(prog="opensms", description="BICS OpenSMS from the shell.", epilog=_EPILOG)
    parser.add_argument(
        "--version",
        action="version",
        version=f"opensms {__version__} (Python {platform.python_version()})",
    )
    add_global_options(parser, in_command=False)
    parser.set_defaults(root_parser=parser)  # for completion, which prints the whole parser
    commands = Commands(parser.add_subparsers(title="commands", metavar="COMMAND"))
    for group in GROUPS:
        group.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``opensms``; returns the process exit code."""
    out = Output(json=False)
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not hasattr(args, "run"):
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        out = Output(json=args.json)
        with _logging(args):
            return int(asyncio.run(args.run(args, out)))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _quiet_stdout()  # the reader of a pipe went away (`opensms events | head`)
        return EXIT_FAILED
    except Exception as exc:
        return _failed(out, exc)


def _failed(out: Output, exc: Exception) -> int:
    if isinstance(exc, CommandError):
        code, message = exc.code, str(exc)
    elif isinstance(exc, ValidationError):
        code, message = EXIT_USAGE, str(exc)
    elif isinstance(exc, OpenSMSError):
        code, message = EXIT_FAILED, str(exc)
    else:
        logger.debug("unexpected error", exc_info=exc)
        code = EXIT_FAILED
        message = (
            f"unexpected {type(exc).__name__}: {exc} (please report it; -vv shows the traceback)"
        )
    out.note(f"error: {_one_line(message)}")
    return code


def _one_line(text: str) -> str:
    return " ".join(text.split())


@contextlib.contextmanager
def _logging(args: argparse.Namespace) -> Iterator[None]:
    """Logs to stderr for the command's run: warnings by default (refused callbacks among them),
    more with -v (info) or -vv (debug). The loggers are as they were afterwards."""
    level = _LEVELS.get(args.log_level or "", logging.WARNING)
    if args.log_level is None and args.verbose:
        level = logging.INFO if args.verbose == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root, ours = logging.getLogger(), logging.getLogger("opensms_async")
    saved = root.level, ours.level
    root.addHandler(handler)
    # Other libraries' (httpx, uvicorn) info lines only at debug: they would drown ours.
    root.setLevel(logging.DEBUG if level == logging.DEBUG else logging.WARNING)
    ours.setLevel(level)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        ours.setLevel(saved[1])


_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def _quiet_stdout() -> None:
    # Python flushes stdout at exit and would report the broken pipe again: point it at devnull.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
