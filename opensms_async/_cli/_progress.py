"""Progress of a long command on stderr: a bar with an ETA on a terminal, plain lines otherwise.

The bar is rich's when rich is installed (``pip install 'opensms-async[cli]'``); without it, one
line rewritten in place. Not on a terminal (a log file, CI), a plain line every tenth of the way
or every ``_LINE_EVERY`` seconds, whichever comes first.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol, TextIO

__all__ = ["Progress", "eta_text", "make_progress"]

_LINE_EVERY = 10.0


class Progress(Protocol):
    """What a command tells its progress display."""

    def advance(self, ok: bool) -> None:
        """One more item done (``ok``: it succeeded)."""

    def close(self) -> None:
        """The end (idempotent): leave the last state on screen."""


def make_progress(
    err: TextIO, total: int, *, enabled: bool, clock: Callable[[], float] = time.monotonic
) -> Progress:
    """The progress display that suits ``err``: a bar on a terminal, lines otherwise."""
    if not enabled or total <= 0:
        return _Silent()
    if _is_terminal(err):
        try:
            return _RichBar(err, total)
        except ImportError:
            return _Lines(err, total, clock, in_place=True)
    return _Lines(err, total, clock, in_place=False)


def _is_terminal(err: TextIO) -> bool:
    isatty = getattr(err, "isatty", None)
    return bool(isatty and isatty())


def eta_text(done: int, total: int, elapsed: float) -> str:
    """``0:01:23`` left at the pace so far, or ``?`` before there is a pace."""
    if done <= 0 or elapsed <= 0:
        return "?"
    left = round((total - done) * elapsed / done)
    hours, rest = divmod(left, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


class _Silent:
    def advance(self, ok: bool) -> None:
        pass

    def close(self) -> None:
        pass


class _Lines:
    """``sent 10/40 (25%), 0 failed, 4.1/s, ETA 0:00:07``: now and then, or in place."""

    def __init__(
        self, err: TextIO, total: int, clock: Callable[[], float], *, in_place: bool
    ) -> None:
        self._err, self._total, self._clock, self._in_place = err, total, clock, in_place
        self._started = self._last = clock()
        self._done = self._failed = 0
        self._next_share = 0.1
        self._closed = False

    def advance(self, ok: bool) -> None:
        self._done += 1
        self._failed += not ok
        now = self._clock()
        share = self._done / self._total
        if self._in_place or share >= self._next_share or now - self._last >= _LINE_EVERY:
            self._show(now)
            self._next_share = (int(share * 10) + 1) / 10

    def _show(self, now: float) -> None:
        self._last = now
        elapsed = now - self._started
        pace = f"{self._done / elapsed:.1f}/s" if elapsed > 0 else "-"
        text = (
            f"sent {self._done}/{self._total} ({self._done / self._total:.0%}), "
            f"{self._failed} failed, {pace}, ETA {eta_text(self._done, self._total, elapsed)}"
        )
        end = "" if self._in_place else "\n"
        print(f"\r{text}\x1b[K" if self._in_place else text, end=end, file=self._err, flush=True)

    def close(self) -> None:
        if not self._closed and self._in_place and self._done:
            print(file=self._err, flush=True)
        self._closed = True


class _RichBar:
    """rich's progress bar, with the failures counted beside it."""

    def __init__(self, err: TextIO, total: int) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(
            TextColumn("sending"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[failed]} failed"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(file=err),
        )
        self._task: Any = self._bar.add_task("sending", total=total, failed=0)
        self._failed = 0
        self._bar.start()
        self._closed = False

    def advance(self, ok: bool) -> None:
        self._failed += not ok
        self._bar.update(self._task, advance=1, failed=self._failed)

    def close(self) -> None:
        if not self._closed:
            self._bar.stop()
        self._closed = True
