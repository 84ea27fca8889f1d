"""Recompute the aggregate tables for a range of dates from the raw zone (batch, idempotent).

``recompute_to_lake`` reads ``raw_events`` and ``late_events``, computes both aggregate
tables with :func:`lakepulse.transforms.curate.recompute_aggregates` (the stream's own
aggregation) and replaces exactly the ``window_date`` partitions of the range: Spark's dynamic
partition overwrite for the dates that have windows, a delete for those that no longer do.
Running it twice gives the same tables.

The streaming job writes a window once, when its watermark has passed the window's end. A date
is only rewritten once the stream has written windows ending at or after that date's last
window: before that, the stream would later add windows the recomputation already wrote (or
write into a partition being replaced). ``force`` skips this check, for when the streaming job
is stopped or has never covered those dates.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from lakepulse.lake import aggregate_path, read_table
from lakepulse.settings import Settings
from lakepulse.streaming.batch_output import delete_partitions, overwrite_partitions
from lakepulse.transforms.curate import (
    AGGREGATE_PARTITION_COLUMN,
    AGGREGATES,
    last_window_end,
    recompute_aggregates,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# What recompute_aggregates needs from late_events when that table has no data yet.
_EMPTY_LATE = "kafka_topic string, kafka_partition int, kafka_offset bigint, event_date date"


class RecomputeRefused(RuntimeError):
    """The range cannot be recomputed safely now (see the module doc)."""


def written_until(spark: SparkSession, path: str) -> int | None:
    """The latest ``window_end`` (microseconds since the epoch) in an aggregate table."""
    from pyspark.errors import AnalysisException
    from pyspark.sql import functions as F

    try:
        frame = spark.read.parquet(path)
    except AnalysisException as exc:
        if exc.getCondition() in {"PATH_NOT_FOUND", "UNABLE_TO_INFER_SCHEMA"}:
            return None
        raise
    return frame.agg(F.max(F.unix_micros("window_end"))).first()[0]


def _micros(moment: dt.datetime) -> int:
    return (moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)


def _days(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=n) for n in range((end - start).days + 1)]


def check_closed(spark: SparkSession, settings: Settings, end: dt.date) -> None:
    """Raise :class:`RecomputeRefused` when the stream may still write windows of ``end``."""
    for name, spec in AGGREGATES.items():
        needed = last_window_end(spec, end)
        until = written_until(spark, aggregate_path(settings, name))
        if until is None or until < _micros(needed):
            seen = (
                "no window yet"
                if until is None
                else f"windows ending up to {dt.datetime.fromtimestamp(until / 1e6, dt.UTC)}"
            )
            raise RecomputeRefused(
                f"{name}: the streaming job may still write windows of {end} (it has written "
                f"{seen}; the last window of {end} ends at {needed}). Recompute a range that "
                "ends earlier, wait, or pass --force when the streaming job is stopped."
            )


def recompute_to_lake(
    spark: SparkSession,
    settings: Settings,
    start: dt.date,
    end: dt.date,
    *,
    force: bool = False,
) -> dict[str, dict[str, int]]:
    """Rewrite both aggregate tables for windows starting on ``start``..``end``.

    Returns, per table, the rows written per date (ISO string); dates without windows are
    removed from the table.
    """
    if end < start:
        raise ValueError(f"end date {end} is before start date {start}")
    raw = read_table(spark, settings, "raw_events")
    if raw is None:
        raise RecomputeRefused("the raw zone has no data yet")
    late = read_table(spark, settings, "late_events")
    if late is None:
        late = spark.createDataFrame([], _EMPTY_LATE)
    if not force:
        check_closed(spark, settings, end)

    written: dict[str, dict[str, int]] = {}
    for name, frame in recompute_aggregates(raw, late, start, end).items():
        path = aggregate_path(settings, name)
        frame = frame.persist()
        try:
            counts = {
                row[0].isoformat(): row[1]
                for row in frame.groupBy(AGGREGATE_PARTITION_COLUMN).count().collect()
            }
            if counts:
                overwrite_partitions(frame, path, [AGGREGATE_PARTITION_COLUMN])
        finally:
            frame.unpersist()
        empty = [day for day in _days(start, end) if day.isoformat() not in counts]
        delete_partitions(spark, path, AGGREGATE_PARTITION_COLUMN, empty)
        written[name] = dict(sorted(counts.items()))
    return written
