"""``RateLimitPause``: the hold both pollers (delivery, inbound) keep after 429s."""

from __future__ import annotations

from opensms_async._retry import RATE_LIMIT_PAUSE, RateLimitPause, rate_limit_pause


def test_a_first_429_starts_a_pause_of_retry_after() -> None:
    """The first 429 holds every poll for its Retry-After (or the base pause without one)."""
    pause = RateLimitPause()
    assert pause.rate_limited(100.0, 5.0) is True
    assert (pause.streak, pause.until) == (1, 105.0)
    other = RateLimitPause()
    assert other.rate_limited(100.0, None) is True
    assert other.until == 100.0 + RATE_LIMIT_PAUSE


def test_answers_of_the_same_round_extend_the_pause_without_escalating() -> None:
    """429s answered while the pause holds (polls already in flight) extend it to their own
    Retry-After at most, and do not count as a new pause in the streak."""
    pause = RateLimitPause()
    pause.rate_limited(100.0, 5.0)
    assert pause.rate_limited(101.0, 1.0) is False  # ends before 105: changes nothing
    assert (pause.streak, pause.until) == (1, 105.0)
    assert pause.rate_limited(102.0, 10.0) is False
    assert (pause.streak, pause.until) == (1, 112.0)


def test_a_streak_of_pauses_doubles_and_a_poll_that_went_through_resets_it() -> None:
    """Each new pause in a row lasts at least twice the last (a server answering "0" is not
    hammered); a poll that went through (streak set to 0) starts over from the base pause."""
    pause = RateLimitPause()
    now = 0.0
    for streak in range(1, 5):
        now = pause.until
        assert pause.rate_limited(now, 0.0) is True
        assert pause.streak == streak
        assert pause.until == now + rate_limit_pause(0.0, streak)
    assert pause.until - now == RATE_LIMIT_PAUSE * 8
    pause.streak = 0
    now = pause.until
    pause.rate_limited(now, 0.0)
    assert pause.until == now + RATE_LIMIT_PAUSE
