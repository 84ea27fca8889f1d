"""Drift: how far each source's recent live data has moved from what the champion learned.

The measure, per source: ``|mean of its last N values - training mean| / training standard
deviation`` (N = ``ml.drift_rows``, a day of 5-minute rows by default), with the champion's
own per-source scale (``source_stats.json`` of its run). The platform's drift is the median
over the sources the champion knows: a typical source that has moved by a whole training
spread (``ml.drift_threshold`` = 1.0) makes the forecasts stale, and ``ml_retrain`` runs.
Each measurement is logged to MLflow (run "drift monitor", metric ``drift`` over time: the
chart is in the MLflow UI) and kept as a row of the ``ml_drift`` table in HDFS.
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def per_source_drift(recent: DataFrame, stats: DataFrame, rows: int) -> dict[str, float]:
    """Each known source's drift over its last ``rows`` values in ``recent`` (curated events)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    latest = Window.partitionBy("source").orderBy(F.col("event_time").desc())
    means = (
        recent.where(F.col("value").isNotNull())
        .withColumn("_n", F.row_number().over(latest))
        .where(F.col("_n") <= rows)
        .groupBy("source")
        .agg(F.avg("value").alias("recent_mean"))
    )
    joined = means.join(F.broadcast(stats), "source")
    found = joined.select(
        "source", (F.abs(F.col("recent_mean") - F.col("mean")) / F.col("std")).alias("drift")
    )
    return {row["source"]: float(row["drift"]) for row in found.collect()}


def platform_drift(per_source: dict[str, float]) -> float | None:
    return statistics.median(per_source.values()) if per_source else None


def summary(per_source: dict[str, float], threshold: float, version: str) -> dict[str, Any]:
    drift = platform_drift(per_source)
    worst = sorted(per_source.items(), key=lambda item: -item[1])[:5]
    return {
        "drift": drift,
        "threshold": threshold,
        "over_threshold": drift is not None and drift > threshold,
        "sources": len(per_source),
        "worst_sources": dict(worst),
        "champion_version": version,
    }
