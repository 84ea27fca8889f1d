"""Forecasting features: lags, a one-day seasonal lag, rolling statistics, calendar.

Why these: most NAB-like metrics are "like a moment ago" (lags), "like this time yesterday"
(``P`` rows a day; the seasonal lags, means over the rows around ``t - P`` and ``t - P - 1``,
let a linear model learn ``y[t-1] + y[t-P] - y[t-P-1]``, which forecasts a daily step pattern,
so regular steps leave little residual), drift slowly (rolling means)
and follow the clock (hour-of-day and day-of-week as sine/cosine pairs, which a linear model
can use without one-hot columns). Every feature is built only from rows before the forecast
one, so a forecast never sees its own target.

Two implementations that must agree (a test checks it): ``feature_matrix`` builds the training
matrix from a whole history at once (numpy, for refits), ``feature_row`` builds one row from the
recent values (plain Python, for the per-event hot loop).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

SHORT = 12  # rows in the short rolling window (an hour of 5-minute data)
# Seasonal lags are means over 2 * HALO + 1 rows around "this time yesterday": daily events
# recur a row or two early or late, and an exact lag would forecast them at the wrong row.
HALO = 1
DAY = 86_400.0
WEEK = 7 * DAY
# 1970-01-01 was a Thursday: shift so that day-of-week 0 is Monday.
_EPOCH_WEEKDAY = 3 * DAY

FEATURE_NAMES: tuple[str, ...] = (
    "lag_1",
    "lag_2",
    "lag_3",
    "lag_period",
    "lag_period_plus_1",
    "mean_short",
    "std_short",
    "mean_period",
    "hour_sin",
    "hour_cos",
    "dow_sin",
    "dow_cos",
)


def rows_needed(period: int) -> int:
    """Previous rows a feature row needs: the seasonal lags ``P + 1 + HALO`` and the windows."""
    return max(period + 1 + HALO, SHORT, 3)


def _around(previous: Sequence[float], lag: int) -> float:
    """Mean of the values ``lag - HALO .. lag + HALO`` rows back (never the current row)."""
    lo = max(lag - HALO, 1)
    hi = lag + HALO
    return sum(previous[-k] for k in range(lo, hi + 1)) / (hi - lo + 1)


def calendar(epoch: float) -> tuple[float, float, float, float]:
    """Hour-of-day and day-of-week on the unit circle (UTC)."""
    day_angle = 2.0 * math.pi * (epoch % DAY) / DAY
    week_angle = 2.0 * math.pi * ((epoch + _EPOCH_WEEKDAY) % WEEK) / WEEK
    return math.sin(day_angle), math.cos(day_angle), math.sin(week_angle), math.cos(week_angle)


def feature_row(previous: Sequence[float], epoch: float, period: int) -> list[float]:
    """Features forecasting the row at ``epoch`` from ``previous`` (oldest first).

    ``previous`` holds at least ``rows_needed(period)`` values.
    """
    short = previous[-SHORT:]
    mean_s = sum(short) / SHORT
    var_s = sum((v - mean_s) ** 2 for v in short) / SHORT
    day = previous[-period:]
    return [
        previous[-1],
        previous[-2],
        previous[-3],
        _around(previous, period),
        _around(previous, period + 1),
        mean_s,
        math.sqrt(var_s),
        sum(day) / period,
        *calendar(epoch),
    ]


def feature_matrix(
    values: np.ndarray, epochs: np.ndarray, period: int
) -> tuple[np.ndarray, np.ndarray]:
    """Training matrix over a history: ``(X, y)`` for every row with enough rows before it."""
    values = np.asarray(values, dtype=float)
    epochs = np.asarray(epochs, dtype=float)
    start = rows_needed(period)
    n = len(values)
    if n <= start:
        return np.empty((0, len(FEATURE_NAMES))), np.empty(0)
    t = np.arange(start, n)
    cs = np.concatenate([[0.0], np.cumsum(values)])
    cs2 = np.concatenate([[0.0], np.cumsum(values**2)])
    mean_s = (cs[t] - cs[t - SHORT]) / SHORT
    var_s = np.maximum((cs2[t] - cs2[t - SHORT]) / SHORT - mean_s**2, 0.0)
    mean_p = (cs[t] - cs[t - period]) / period

    def around(lag: int) -> np.ndarray:
        lo = max(lag - HALO, 1)
        hi = lag + HALO
        return (cs[t - lo + 1] - cs[t - hi]) / (hi - lo + 1)

    ep = epochs[t]
    day_angle = 2.0 * np.pi * (ep % DAY) / DAY
    week_angle = 2.0 * np.pi * ((ep + _EPOCH_WEEKDAY) % WEEK) / WEEK
    x = np.column_stack(
        [
            values[t - 1],
            values[t - 2],
            values[t - 3],
            around(period),
            around(period + 1),
            mean_s,
            np.sqrt(var_s),
            mean_p,
            np.sin(day_angle),
            np.cos(day_angle),
            np.sin(week_angle),
            np.cos(week_angle),
        ]
    )
    return x, values[t]
