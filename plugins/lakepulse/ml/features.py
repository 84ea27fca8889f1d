"""Forecasting features over the lake's curated events, per source (Spark).

Each source's rows are taken in time order and turned into features by
:func:`lakepulse.anomaly.features.feature_matrix`, the very function the online detector uses,
so a model trained here sees what the live scorer computes (lags, "this time yesterday",
rolling statistics, hour of day and day of week). It runs per source inside Spark
(``applyInPandas``).

Missing values policy: rows without a value are dropped before features are built (a lag is
"the previous value seen", not "the value one interval ago"); a source needs more than a day
of rows (plus a little) before it yields any feature row. Values are scaled per source with
the mean and standard deviation of its training rows (``value_z``), so one model serves
sources of any unit; a forecast is turned back with the same numbers.

Splits are by time, never shuffled: each source's last ``test_fraction`` of rows is the test
split.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from lakepulse.anomaly.features import FEATURE_NAMES, feature_matrix

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

MAX_PERIOD = 2016  # rows: the seasonal lag is at most a week of 5-minute rows
# Features in the value's unit (scaled like it); the rest are unitless or a spread.
LEVEL_FEATURES = tuple(n for n in FEATURE_NAMES if n.startswith(("lag_", "mean_")))
SPREAD_FEATURES = ("std_short",)
Z_FEATURES = tuple(f"{name}_z" if name in LEVEL_FEATURES + SPREAD_FEATURES else name
                   for name in FEATURE_NAMES)  # fmt: skip

_FEATURE_SCHEMA = ", ".join(
    [
        "source string",
        "event_time timestamp",
        "value double",
        "row_index long",
        "period int",
        "seasonal_naive double",
        *(f"{name} double" for name in FEATURE_NAMES),
    ]
)


def period_rows(epochs: np.ndarray) -> int:
    """Rows per day from the median spacing (the seasonal lag), as the detector computes it."""
    steps = np.diff(np.asarray(epochs, dtype=float))
    steps = steps[steps > 0]
    step = float(np.median(steps)) if steps.size else 86_400.0
    return int(min(max(round(86_400.0 / step), 1), MAX_PERIOD))


def _source_features(frame: Any) -> Any:
    """pandas: one source's rows (source, event_time, value) -> its feature rows."""
    import pandas as pd

    frame = frame.dropna(subset=["value"]).sort_values("event_time")
    times = pd.to_datetime(frame["event_time"], utc=True)
    epochs = (times.astype("int64") // 10**3).to_numpy() / 1e6
    values = frame["value"].to_numpy(dtype=float)
    period = period_rows(epochs)
    x, y = feature_matrix(values, epochs, period)
    if len(y) == 0:
        return pd.DataFrame(columns=[c.split()[0] for c in _FEATURE_SCHEMA.split(", ")])
    start = len(values) - len(y)
    rows = np.arange(start, len(values))
    out = pd.DataFrame(x, columns=list(FEATURE_NAMES))
    out.insert(0, "seasonal_naive", values[rows - period])
    out.insert(0, "period", period)
    out.insert(0, "row_index", rows)
    out.insert(0, "value", y)
    out.insert(0, "event_time", frame["event_time"].to_numpy()[rows])
    out.insert(0, "source", frame["source"].iloc[0])
    return out


def build_features(events: DataFrame) -> DataFrame:
    """Feature rows of every source with enough history (columns: see the module doc)."""
    return (
        events.select("source", "event_time", "value")
        .groupBy("source")
        .applyInPandas(_source_features, _FEATURE_SCHEMA)
    )


def split_by_time(features: DataFrame, test_fraction: float = 0.2) -> DataFrame:
    """Adds ``split`` ("train" / "test"): each source's last ``test_fraction`` rows are test."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1, not {test_fraction}")
    by_source = Window.partitionBy("source")
    rank = F.percent_rank().over(by_source.orderBy("event_time"))
    return features.withColumn(
        "split", F.when(rank >= 1 - test_fraction, "test").otherwise("train")
    )


def source_stats(split: DataFrame) -> DataFrame:
    """Per source: mean and standard deviation of its training values (the scale)."""
    from pyspark.sql import functions as F

    return (
        split.where(F.col("split") == "train")
        .groupBy("source")
        .agg(F.avg("value").alias("mean"), F.stddev_pop("value").alias("std"))
        .withColumn("std", F.when(F.col("std") > 0, F.col("std")).otherwise(F.lit(1.0)))
    )


def scale(features: DataFrame, stats: DataFrame) -> DataFrame:
    """``value_z``, ``seasonal_naive_z`` and the ``*_z`` features, with each source's scale."""
    from pyspark.sql import functions as F

    joined = features.join(F.broadcast(stats), "source")
    # Live rows have no value or seasonal-naive yet: scale what is there.
    level = [c for c in ("value", "seasonal_naive", *LEVEL_FEATURES) if c in features.columns]
    for name in level:
        joined = joined.withColumn(f"{name}_z", (F.col(name) - F.col("mean")) / F.col("std"))
    for name in SPREAD_FEATURES:
        joined = joined.withColumn(f"{name}_z", F.col(name) / F.col("std"))
    return joined


def stats_as_dict(stats: DataFrame) -> dict[str, dict[str, float]]:
    return {row["source"]: {"mean": row["mean"], "std": row["std"]} for row in stats.collect()}
