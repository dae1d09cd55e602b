"""The web app's rate limits (`limits`' moving window, in memory)."""

from __future__ import annotations

from parcours.web.throttle import Throttle


def test_a_key_goes_over_its_limit_and_other_keys_do_not_notice() -> None:
    throttle = Throttle("3 per minute")
    assert [throttle.hit("a") for _ in range(4)] == [True, True, True, False]
    assert not throttle.allows("a")
    assert 55 <= throttle.retry_after("a") <= 60
    assert throttle.allows("b") and throttle.retry_after("b") == 0


def test_every_limit_of_several_counts_each_event() -> None:
    throttle = Throttle("2 per minute;3 per hour")
    assert [throttle.hit("a") for _ in range(3)] == [True, True, False]
    # The hour counted the refused one too: it is full, so the wait is the hour's.
    assert not throttle.allows("a")
    assert 3_500 <= throttle.retry_after("a") <= 3_600
