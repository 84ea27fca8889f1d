"""The online anomaly detector (lakepulse.anomaly) on small synthetic series.

Series are 5-minute rows with a daily sine wave (288 rows a day) and seeded noise, so every
outcome is deterministic; the detector warms up on the first 300 rows.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from lakepulse.anomaly import AnomalyDetector, DetectorConfig, LinearForecaster
from lakepulse.anomaly.features import FEATURE_NAMES, feature_matrix, feature_row, rows_needed

pytestmark = pytest.mark.ml

CONFIG = DetectorConfig(warmup=300)
T0 = 1_400_000_000  # 2014-05-13T16:53:20Z


def wave(n: int = 2000, seed: int = 0) -> tuple[list[float], list[float]]:
    rng = np.random.default_rng(seed)
    values = 50 + 10 * np.sin(2 * np.pi * np.arange(n) / 288) + rng.normal(0, 1, n)
    return [T0 + 300.0 * i for i in range(n)], [float(v) for v in values]


def run(timestamps, values, detector: AnomalyDetector | None = None) -> list[float]:
    detector = detector or AnomalyDetector(CONFIG)
    scores = []
    for ts, value in zip(timestamps, values, strict=True):
        scores.append(detector.score_one(ts, value))
        detector.learn_one(ts, value)
    return scores


def test_a_spike_scores_high_and_above_every_other_row():
    ts, values = wave()
    values[1500] += 15.0  # 15 noise standard deviations
    scores = np.array(run(ts, values))
    assert scores[1500] >= 0.85
    assert scores[1500] > np.delete(scores, 1500).max()
    assert scores[:300].max() == 0.0  # the warm-up scores nothing
    assert ((scores >= 0.0) & (scores <= 1.0)).all()


def test_plain_noise_and_flat_or_periodic_series_score_low():
    ts, values = wave()
    assert max(run(ts, values)) < 0.6
    assert max(run(ts, [45.0] * len(ts))) == 0.0  # a flat line: nothing is ever new
    square = [80.0 if i % 288 < 144 else 20.0 for i in range(2000)]  # daily steps
    assert max(run(ts, square)) < 0.6


def test_scores_are_causal():
    ts, values = wave()
    noise = np.random.default_rng(1).normal(0, 30, 800)
    changed = values[:1200] + [float(v) for v in np.asarray(values[1200:]) + noise]
    original, altered = run(ts, values), run(ts, changed)
    # Rows up to 1199 are the same in both series: so must their scores be.
    assert original[:1200] == altered[:1200]
    assert original[1200:] != altered[1200:]


@pytest.mark.parametrize("split", [150, 301, 1001, 1777])
def test_state_round_trips_through_json(split):
    ts, values = wave()
    values[1500] += 15.0
    first = AnomalyDetector(CONFIG)
    run(ts[:split], values[:split], first)
    # The state is JSON-friendly, and a detector rebuilt from it carries on identically.
    restored = AnomalyDetector.from_dict(json.loads(json.dumps(first.to_dict())))
    assert run(ts[split:], values[split:], restored) == run(ts[split:], values[split:], first)


def test_missing_values_score_zero_and_do_not_break_the_stream():
    ts, values = wave(1200)
    holes: list[float | None] = list(values)
    holes[700] = None
    holes[701] = math.nan
    scores = run(ts, holes)
    assert scores[700] == scores[701] == 0.0
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert max(scores[702:]) < 0.6  # the gap itself is no anomaly


def test_timestamps_may_be_strings_datetimes_or_epochs():
    detector = AnomalyDetector(CONFIG)
    for i, value in enumerate(wave(320)[1]):
        ts = "2014-05-13 16:53:20" if i == 0 else T0 + 300.0 * i
        detector.score_one(ts, value)
        detector.learn_one(ts, value)
    assert detector.model is not None and detector.day_rows == 288


def test_one_feature_row_matches_the_training_matrix():
    rng = np.random.default_rng(2)
    values = rng.random(400)
    epochs = T0 + 300.0 * np.arange(400)
    for period in (1, 24, 288):
        x, y = feature_matrix(values, epochs, period)
        start = rows_needed(period)
        for k in (0, len(y) - 1):
            row = feature_row(list(values[: start + k]), float(epochs[start + k]), period)
            assert np.allclose(row, x[k])
            assert y[k] == values[start + k]


def test_forecaster_fits_least_squares_and_loads_coefficients_from_elsewhere():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(500, len(FEATURE_NAMES)))
    truth = np.arange(len(FEATURE_NAMES), dtype=float) / 10
    y = 2.0 + x @ truth
    model = LinearForecaster(FEATURE_NAMES).fit(x, y, ridge=0.0)
    assert np.allclose(model.coefficients, truth) and model.intercept == pytest.approx(2.0)
    # As Spark MLlib's LinearRegressionModel reports them: coefficients, intercept.
    loaded = LinearForecaster.from_dict(
        {"feature_names": FEATURE_NAMES, "coefficients": list(truth), "intercept": 2.0}
    )
    assert loaded.predict(list(x[0])) == pytest.approx(y[0])
    with pytest.raises(ValueError):
        LinearForecaster.from_dict({"feature_names": ["a"], "coefficients": [], "intercept": 0})
