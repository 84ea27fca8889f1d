"""Online anomaly detection per source: a linear forecaster and a residual-novelty detector.

``AnomalyDetector().score_one(ts, value)`` then ``.learn_one(ts, value)`` per event; the state
round-trips through ``to_dict()`` / ``AnomalyDetector.from_dict()``.
"""

from lakepulse.anomaly.detector import AnomalyDetector, DetectorConfig
from lakepulse.anomaly.forecaster import LinearForecaster

__all__ = ["AnomalyDetector", "DetectorConfig", "LinearForecaster"]
