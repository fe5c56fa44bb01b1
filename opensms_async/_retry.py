"""The retry policy, free of I/O: what to retry, how long to wait before trying again, and the
pause a poller holds after 429s (:class:`RateLimitPause`, the state of both pollers' rule)."""

from __future__ import annotations

import email.utils
import math
from collections.abc import Callable

from ._constants import INITIAL_RETRY_DELAY, MAX_RETRY_AFTER, MAX_RETRY_DELAY

__all__ = [
    "RATE_LIMIT_PAUSE",
    "RateLimitPause",
    "parse_retry_after",
    "rate_limit_pause",
    "retry_delay",
    "should_retry_status",
]

RATE_LIMIT_PAUSE = 1.0
"""Seconds a poller waits after a 429 without ``Retry-After``; doubled at each further 429 in a
row, up to ``MAX_RETRY_AFTER``."""


def should_retry_status(status_code: int) -> bool:
    """True for statuses worth another try: 408, 429 and every 5xx."""
    return status_code in (408, 429) or 500 <= status_code <= 599


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP-date), else None.

    ``now`` is the current Unix time, used to turn a date into a delay. Negative delays clamp to 0.
    The result is always finite: ``inf``, ``1e999`` or ``nan`` are no number of seconds (RFC 9110
    wants digits), so they count as no header at all rather than as a wait without end.
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, moment.timestamp() - now)


def retry_delay(
    attempt: int,
    retry_after: float | None,
    random: Callable[[], float],
    *,
    initial: float = INITIAL_RETRY_DELAY,
    maximum: float = MAX_RETRY_DELAY,
    max_retry_after: float = MAX_RETRY_AFTER,
) -> float | None:
    """How long to sleep before retry number ``attempt`` (0-based), or None to give up.

    A server's ``Retry-After`` is honoured as given when it is at most ``max_retry_after``; a
    longer one means giving up now rather than blocking the caller. Otherwise: exponential backoff
    with full jitter, ``uniform(0, min(maximum, initial * 2**attempt))``.
    """
    if retry_after is not None:
        return retry_after if retry_after <= max_retry_after else None
    ceiling = min(maximum, initial * 2.0**attempt)
    return random() * ceiling


def rate_limit_pause(
    retry_after: float | None, streak: int, *, maximum: float = MAX_RETRY_AFTER
) -> float:
    """Seconds a poller holds every poll after the ``streak``-th 429 in a row (counting from 1).

    A 429 says the account is over its quota, so it holds the whole poller, not one request: for
    ``Retry-After`` as given, or longer once the backoff of a streak of 429s (1, 2, 4... seconds)
    has passed it, so a server answering "0" is not hammered; never beyond ``maximum``, so a huge
    ``Retry-After`` cannot stop polling for good. The rule of both pollers (delivery and
    inbound).
    """
    backoff = RATE_LIMIT_PAUSE * 2.0 ** min(max(streak, 1) - 1, 30)
    wanted = backoff
    if retry_after is not None and retry_after >= 0:  # NaN is no hint either
        wanted = max(retry_after, backoff)
    return min(wanted, maximum)


class RateLimitPause:
    """A poller's hold after 429s: :attr:`until` when no poll is sent, and the :attr:`streak`
    of pauses that sets how long the next one lasts (:func:`rate_limit_pause`)."""

    __slots__ = ("streak", "until")

    def __init__(self) -> None:
        self.until = 0.0
        """Clock time before which no poll is sent (0: none held)."""
        self.streak = 0
        """429 pauses in a row, since the last poll that went through (which resets it to 0)."""

    def rate_limited(self, now: float, retry_after: float | None) -> bool:
        """Hold every poll after a 429 answered at ``now``; True when it starts a new pause,
        False for another answer of the same round, which extends the pause, not escalates it."""
        new = now >= self.until
        if new:
            self.streak += 1
        self.until = max(self.until, now + rate_limit_pause(retry_after, self.streak))
        return new
