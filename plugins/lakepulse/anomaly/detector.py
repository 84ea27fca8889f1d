"""Online, causal, per-source anomaly detector: one score in [0, 1] per event.

Per event, River-style: ``score_one(timestamp, value)`` first (uses only the rows learned so
far plus this one, changes nothing), then ``learn_one(timestamp, value)``. ``to_dict`` /
``from_dict`` carry the whole state as JSON-friendly data, so a streaming job can keep one
detector per source in its state store and resume it anywhere.

How a score is made, and why:

1. A :class:`LinearForecaster` predicts the value from the previous rows
   (:mod:`lakepulse.anomaly.features`). It is fitted at the end of the ``warmup`` rows and
   refitted every ``refit_every`` rows on the recent history (least squares, robust to
   outliers).
2. The residual is divided by a robust spread (1.4826 x median absolute out-of-sample
   residual, at least ``mean_floor`` x their mean): ``z``. A median, not a standard
   deviation, so that the series' own anomalies do not inflate the spread and hide the next.
3. Novelty, not size, makes an anomaly: a series with regular spikes or steps produces large
   ``z`` every day. ``z`` is compared with a slowly decaying maximum of the ``z`` seen before
   (``peak``, seeded from the warm-up): only what exceeds the worst of the recent past scores
   high. The same for a short window's mean ``z`` (capped per row): a burst of moderate
   surprises that no single row reveals.
4. After a high residual score, those scores are damped for ``suppress_rows`` rows: one
   incident is reported once (in NAB only the first detection in a window counts and every
   other one costs).
5. Next to the residuals, :class:`PatternNovelty` remembers the shapes of the recent
   downsampled series and reports a shape unlike any seen (a burst, a new level, waves gone
   flat). The score is the larger of the two novelties, each mapped by ``u^2 / (1 + u^2)``
   (0.5 where a novelty reaches 1).

Missing values (``None`` or NaN): the score is 0.0 (no evidence either way), and learning
feeds the forecast in place of the value to the lag features (so that rows stay aligned with
the clock) without updating the spread, the novelty statistics or the shape memory, and
without counting it towards the warm-up or a refit.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any

import numpy as np

from lakepulse.anomaly.features import (
    DAY,
    FEATURE_NAMES,
    WEEK,
    feature_matrix,
    feature_row,
    rows_needed,
)
from lakepulse.anomaly.forecaster import LinearForecaster
from lakepulse.anomaly.patterns import PatternNovelty

Timestamp = datetime | str | float | int
CALENDAR = ("hour_sin", "hour_cos", "dow_sin", "dow_cos")


@dataclass(frozen=True)
class DetectorConfig:
    """Tuning knobs; the defaults were tuned on the NAB development split only."""

    warmup: int = 300  # rows before the first fit; scores are 0 until then
    refit_every: int = 288  # rows between refits (a day of 5-minute rows)
    fit_rows: int = 2016  # rows of history a fit uses (a week of 5-minute rows)
    ridge: float = 1e-3
    peak_half_life: float = 2000.0  # rows for the remembered worst surprise to halve
    z_min: float = 5.0  # a surprise below this many spreads is never novel
    window: int = 12  # rows in the windowed mean surprise
    z_cap: float = 6.0  # per-row cap inside the window mean
    window_min: float = 2.0  # a window mean below this is never novel
    window_weight: float = 1.0
    suppress_level: float = 0.8  # a score at or above this starts a suppression
    suppress_rows: int = 200
    suppress_factor: float = 0.2
    mean_floor: float = 0.1  # the spread is at least this share of the mean |residual|
    pattern_weight: float = 1.0  # weight of the shape novelty (0: off)
    pattern_window: int = 5
    pattern_steps_per_warmup: int = 30
    pattern_quantile: float = 0.95
    pattern_vigilance: float = 3.0
    pattern_mask_steps: int = 60
    pattern_mask_ratio: float = 1.6
    max_period: int = 2016  # upper bound on the seasonal lag in rows


def epoch_seconds(ts: Timestamp) -> float:
    """Seconds since the epoch; naive datetimes and strings are taken as UTC."""
    if isinstance(ts, int | float):
        return float(ts)
    if isinstance(ts, str):
        ts = datetime.fromisoformat(ts)
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.timestamp()


def _missing(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


class AnomalyDetector:
    """One source's detector. See the module docstring for the method."""

    def __init__(self, config: DetectorConfig | None = None) -> None:
        self.config = config or DetectorConfig()
        self.n = 0
        self.values: list[float] = []
        self.epochs: list[float] = []
        self.day_rows: int | None = None  # rows per day, from the first rows' spacing
        self.period: int | None = None  # seasonal lag of the current model, in rows
        self.model: LinearForecaster | None = None
        self.since_fit = 0
        self.scale = 1.0
        self.peak = 0.0
        self.peak_window = 0.0
        self.recent_z: list[float] = []
        self.residuals: list[float] = []  # recent out-of-sample |residual|: the spread's basis
        self.suppress_left = 0
        self.patterns = (
            PatternNovelty.for_warmup(
                self.config.warmup,
                window=self.config.pattern_window,
                steps_per_warmup=self.config.pattern_steps_per_warmup,
                quantile=self.config.pattern_quantile,
                vigilance_factor=self.config.pattern_vigilance,
                mask_steps=self.config.pattern_mask_steps,
                mask_ratio=self.config.pattern_mask_ratio,
            )
            if self.config.pattern_weight > 0.0
            else None
        )
        self._cache: tuple[float, float, tuple[float, float, float, float, bool]] | None = None

    # -- scoring -------------------------------------------------------------------------------

    def _forecast(self, epoch: float) -> float | None:
        if self.model is None or self.period is None:
            return None
        if len(self.values) < rows_needed(self.period):
            return None
        return self.model.predict(feature_row(self.values, epoch, self.period))

    def _evaluate(self, epoch: float, value: float) -> tuple[float, float, float, float, bool]:
        """(score, residual score before suppression, z, window mean of capped z, forecast made),
        from the state before the row."""
        cached = self._cache
        if cached is not None and cached[0] == epoch and cached[1] == value:
            return cached[2]
        forecast = self._forecast(epoch)
        if forecast is None:
            result = (0.0, 0.0, 0.0, 0.0, False)
        else:
            c = self.config
            z = abs(value - forecast) / self.scale
            z_capped = min(z, c.z_cap)
            u_row = z / max(self.peak, c.z_min)
            tail = self.recent_z[-(c.window - 1) :] if c.window > 1 else []
            window_mean = (sum(tail) + z_capped) / c.window
            u_window = window_mean / max(self.peak_window, c.window_min)
            u = max(u_row, c.window_weight * u_window)
            raw = u * u / (1.0 + u * u)
            score = raw * c.suppress_factor if self.suppress_left > 0 else raw
            result = (score, raw, z, window_mean, True)
        if self.patterns is not None:
            u_pattern = self.config.pattern_weight * self.patterns.novelty(value)
            pattern_score = u_pattern * u_pattern / (1.0 + u_pattern * u_pattern)
            if pattern_score > result[0]:
                result = (pattern_score, *result[1:])
        self._cache = (epoch, value, result)
        return result

    def score_one(self, timestamp: Timestamp, value: float | None) -> float:
        """Anomaly score in [0, 1] of this row given the rows learned before it."""
        if _missing(value):
            return 0.0
        return self._evaluate(epoch_seconds(timestamp), float(value))[0]

    # -- learning ------------------------------------------------------------------------------

    def learn_one(self, timestamp: Timestamp, value: float | None) -> None:
        """Take the row into the state (call after ``score_one`` of the same row)."""
        epoch = epoch_seconds(timestamp)
        c = self.config
        if _missing(value):
            self._cache = None
            forecast = self._forecast(epoch)
            if forecast is None and not self.values:
                return  # nothing to stand in for it yet
            self._append(epoch, forecast if forecast is not None else self.values[-1])
            return
        value = float(value)
        _, raw, z, window_mean, forecast_made = self._evaluate(epoch, value)
        if forecast_made:
            decay = 0.5 ** (1.0 / c.peak_half_life)
            self.peak = max(self.peak * decay, z)
            self.peak_window = max(self.peak_window * decay, window_mean)
            self.recent_z.append(min(z, c.z_cap))
            del self.recent_z[: -c.window]
            self.residuals.append(z * self.scale)
            if len(self.residuals) > c.fit_rows + 256:  # trim in chunks: cheaper
                del self.residuals[: -c.fit_rows]
        self._cache = None  # the state changes: a repeated (timestamp, value) scores anew
        if self.suppress_left > 0:
            self.suppress_left -= 1
        elif raw >= c.suppress_level:
            self.suppress_left = c.suppress_rows
        if self.patterns is not None:
            self.patterns.learn(value)
        self._append(epoch, value)
        self.n += 1
        self.since_fit += 1
        if self.patterns is not None and self.n == c.warmup:
            self.patterns.calibrate(self.values[: c.warmup])
        if (self.model is None and self.n >= c.warmup) or (
            self.model is not None and self.since_fit >= c.refit_every
        ):
            self._refit()

    def _append(self, epoch: float, value: float) -> None:
        self.values.append(value)
        self.epochs.append(epoch)
        keep = self.config.fit_rows + rows_needed(self.day_rows or self.config.max_period)
        if len(self.values) > keep + 256:  # trim in chunks: cheaper than every row
            del self.values[:-keep]
            del self.epochs[:-keep]

    def _refit(self) -> None:
        c = self.config
        if self.day_rows is None:
            steps = np.diff(np.asarray(self.epochs, dtype=float))
            steps = steps[steps > 0]
            step = float(np.median(steps)) if steps.size else 86_400.0
            self.day_rows = int(min(max(round(86_400.0 / step), 1), c.max_period))
        # The seasonal lag needs a day of rows before the first training row: until there is
        # that much history, "the previous row" stands in for "this time yesterday".
        seasonal = len(self.values) >= rows_needed(self.day_rows) + 4 * len(FEATURE_NAMES)
        self.period = self.day_rows if seasonal else 1
        need = rows_needed(self.period)
        history = slice(-(c.fit_rows + need), None)
        x, y = feature_matrix(
            np.asarray(self.values[history]), np.asarray(self.epochs[history]), self.period
        )
        if len(y) < len(FEATURE_NAMES) + 2:
            return  # too little history (e.g. a long seasonal lag): try again later
        # A calendar cycle seen fewer than twice is a trend in disguise: fitted, it would
        # extrapolate. Its columns are zeroed, so their coefficients are 0 until it has been.
        span = self.epochs[-1] - self.epochs[history][0]
        for cycle, names in ((DAY, CALENDAR[:2]), (WEEK, CALENDAR[2:])):
            if span < 2 * cycle:
                x[:, [FEATURE_NAMES.index(n) for n in names]] = 0.0
        first = self.model is None
        if first:
            # Honest spread for the first fit: fit on the older two thirds, measure on the rest
            # (in-sample residuals of a fresh fit are too small, and every score would be high).
            cut = max(len(y) * 2 // 3, len(FEATURE_NAMES) + 2)
            trial = LinearForecaster(FEATURE_NAMES).fit(x[:cut], y[:cut], ridge=c.ridge)
            signed = y[cut:] - trial.predict_many(x[cut:])
            if signed.size < 10:
                signed = y - trial.predict_many(x)
            resid = np.abs(signed)
        else:
            resid = np.asarray(self.residuals[-c.fit_rows :])
        model = LinearForecaster(FEATURE_NAMES).fit(x, y, ridge=c.ridge)
        level = float(np.mean(np.abs(y)))
        # Mostly-constant series (a disk idle but for bursts) have a median residual of 0: the
        # mean residual bounds the spread from below, so that z stays a meaningful size.
        scale = max(
            1.4826 * float(np.median(resid)),
            c.mean_floor * float(np.mean(resid)) if resid.size else 0.0,
            1e-9 * (1.0 + level),
            1e-12,
        )
        if first:
            self._bootstrap(model, x, y, signed, scale)
        else:
            ratio = self.scale / scale
            # The remembered surprises were in units of the old spread.
            self.peak *= ratio
            self.peak_window *= ratio
            self.recent_z = [min(v * ratio, c.z_cap) for v in self.recent_z]
        self.model = model
        self.scale = scale
        self.since_fit = 0
        self._cache = None

    def _bootstrap(
        self,
        model: LinearForecaster,
        x: np.ndarray,
        y: np.ndarray,
        signed: np.ndarray,
        scale: float,
    ) -> None:
        """Novelty statistics from the training rows, so that scoring starts informed.

        What the training period already showed (a daily spike, a step pattern) must not
        score as new right after it. In-sample residuals serve (the robust fit leaves outliers
        their full residual).
        """
        c = self.config
        resid = np.abs(signed)
        surprises = [resid / scale, np.abs(y - model.predict_many(x)) / scale]
        self.peak = max(float(z.max()) for z in surprises if z.size)
        kernel = np.ones(c.window) / c.window
        self.peak_window = max(
            (
                float(np.convolve(np.minimum(z, c.z_cap), kernel, mode="valid").max())
                for z in surprises
                if z.size >= c.window
            ),
            default=0.0,
        )
        self.recent_z = [float(v) for v in np.minimum(resid / scale, c.z_cap)[-c.window :]]
        self.residuals = [float(v) for v in resid]

    # -- state ---------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The whole state, JSON-friendly (floats, ints, lists, dicts)."""
        return {
            "config": asdict(self.config),
            "n": self.n,
            "values": list(self.values),
            "epochs": list(self.epochs),
            "day_rows": self.day_rows,
            "period": self.period,
            "model": self.model.to_dict() if self.model is not None else None,
            "since_fit": self.since_fit,
            "scale": self.scale,
            "peak": self.peak,
            "peak_window": self.peak_window,
            "recent_z": list(self.recent_z),
            "residuals": list(self.residuals),
            "suppress_left": self.suppress_left,
            "patterns": self.patterns.to_dict() if self.patterns is not None else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnomalyDetector:
        known = {f.name for f in fields(DetectorConfig)}
        config = DetectorConfig(**{k: v for k, v in data["config"].items() if k in known})
        det = cls(config)
        det.n = int(data["n"])
        det.values = [float(v) for v in data["values"]]
        det.epochs = [float(v) for v in data["epochs"]]
        det.day_rows = data["day_rows"]
        det.period = data["period"]
        det.model = LinearForecaster.from_dict(data["model"]) if data["model"] else None
        det.since_fit = int(data["since_fit"])
        det.scale = float(data["scale"])
        det.peak = float(data["peak"])
        det.peak_window = float(data["peak_window"])
        det.recent_z = [float(v) for v in data["recent_z"]]
        det.residuals = [float(v) for v in data["residuals"]]
        det.suppress_left = int(data["suppress_left"])
        det.patterns = PatternNovelty.from_dict(data["patterns"]) if data["patterns"] else None
        return det
