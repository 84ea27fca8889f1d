"""A linear forecaster: ``intercept + coefficients . features``, fitted by least squares.

Why linear, and why stored as plain ``coefficients + intercept + feature names``: it is the
model family of Spark MLlib's ``LinearRegression``, the batch baseline fitted over the lake.
Coefficients MLlib learns (in the original feature space, which is what MLlib reports even
when it standardises internally) load here unchanged via :meth:`LinearForecaster.from_dict`,
and a streaming job can score events with them without Spark.

The numpy fit standardises the columns, solves a ridge-regularised least squares (a little
ridge keeps collinear columns such as ``lag_1`` and ``mean_short`` stable), then maps the
solution back to the original feature space. ``robust=True`` refits once without rows whose
residual is far from the rest, so that the anomalies in the history do not bend the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class LinearForecaster:
    feature_names: tuple[str, ...]
    coefficients: list[float] = field(default_factory=list)
    intercept: float = 0.0

    def predict(self, features: Sequence[float]) -> float:
        """Forecast of one row (plain Python: cheaper than numpy for a dozen numbers)."""
        return self.intercept + sum(c * x for c, x in zip(self.coefficients, features, strict=True))

    def predict_many(self, x: np.ndarray) -> np.ndarray:
        return self.intercept + np.asarray(x, dtype=float) @ np.asarray(self.coefficients)

    def fit(
        self, x: np.ndarray, y: np.ndarray, ridge: float = 1e-3, robust: bool = True
    ) -> LinearForecaster:
        """Least squares on ``x`` (rows x features) for ``y``; returns ``self``."""
        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        keep = np.ones(len(y), dtype=bool)
        for _ in range(2 if robust else 1):
            self._solve(x[keep], y[keep], ridge)
            if not robust:
                break
            resid = np.abs(y - self.predict_many(x))
            mad = float(np.median(resid))
            if mad <= 0.0:
                break
            keep = resid <= 10.0 * mad
            if keep.sum() < x.shape[1] + 2:
                break
        return self

    def _solve(self, x: np.ndarray, y: np.ndarray, ridge: float) -> None:
        mean = x.mean(axis=0)
        std = x.std(axis=0)
        std[std == 0.0] = 1.0  # constant column: carried by the intercept
        z = (x - mean) / std
        y_mean = float(y.mean())
        gram = z.T @ z + ridge * len(y) * np.eye(z.shape[1])
        beta = np.linalg.solve(gram, z.T @ (y - y_mean))
        coefficients = beta / std
        self.coefficients = [float(c) for c in coefficients]
        self.intercept = float(y_mean - mean @ coefficients)

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature_names": list(self.feature_names),
            "coefficients": list(self.coefficients),
            "intercept": self.intercept,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LinearForecaster:
        """Load a model, e.g. one fitted by MLlib: ``model.coefficients``, ``model.intercept``."""
        names = tuple(data["feature_names"])
        coefficients = [float(c) for c in data["coefficients"]]
        if len(names) != len(coefficients):
            raise ValueError(f"{len(names)} feature names but {len(coefficients)} coefficients")
        return cls(names, coefficients, float(data["intercept"]))
