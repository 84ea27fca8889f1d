"""The watchdog's verdicts on hand-made observations (committed offsets vs Kafka's end)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lakepulse.streaming.watchdog import Observation, assess

pytestmark = pytest.mark.streaming

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
LIMITS = {"stall_after_s": 120, "max_lag": 1000, "growth_window_s": 300}


def series(*points: tuple[int, int, int]) -> list[Observation]:
    """(seconds after T0, committed, end) -> observations."""
    return [Observation(T0 + timedelta(seconds=s), committed, end) for s, committed, end in points]


def test_a_job_keeping_up_is_healthy():
    verdict = assess(series((0, 100, 150), (60, 200, 260), (120, 300, 310)), **LIMITS)
    assert verdict.healthy
    assert "lag 10" in verdict.reason


def test_an_idle_job_with_nothing_to_read_is_not_stalled():
    verdict = assess(series((0, 500, 500), (100, 500, 500), (400, 500, 500)), **LIMITS)
    assert verdict.healthy


def test_data_waiting_and_no_commit_for_the_limit_is_a_stall():
    verdict = assess(series((0, 500, 520), (60, 500, 600), (130, 500, 700)), **LIMITS)
    assert not verdict.healthy
    assert verdict.reason.startswith("stalled: 200 events waiting")
    assert "130s" in verdict.reason


def test_no_commit_for_less_than_the_limit_is_not_yet_a_stall():
    verdict = assess(series((0, 400, 420), (60, 500, 600), (130, 500, 700)), **LIMITS)
    assert verdict.healthy  # committed moved 70 s ago, the limit is 120 s


def test_a_growing_lag_over_the_limit_is_falling_behind():
    points = [(s, 1000 * i, 1000 * i + 1100 + 400 * i) for i, s in enumerate(range(0, 301, 60))]
    verdict = assess(series(*points), **LIMITS)
    assert not verdict.healthy
    assert verdict.reason.startswith("lagging: 3100 events behind")


def test_a_large_but_shrinking_lag_is_a_job_catching_up():
    points = [(s, 1000 * i, 1000 * i + 5000 - 500 * i) for i, s in enumerate(range(0, 301, 60))]
    assert assess(series(*points), **LIMITS).healthy


def test_a_growing_lag_seen_for_less_than_the_window_is_not_judged_yet():
    points = [(s, 1000 * i, 1000 * i + 1100 + 400 * i) for i, s in enumerate(range(0, 121, 60))]
    assert assess(series(*points), **LIMITS).healthy
