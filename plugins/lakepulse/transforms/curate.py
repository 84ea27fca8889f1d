"""Raw events -> curated ``events`` (silver), ``late_events`` and windowed aggregates (gold).

Pure DataFrame functions, no I/O. The same functions build the streaming queries and the batch
recomputation, which is what makes "the aggregates equal a batch recomputation over the raw
zone" checkable (:func:`recompute_aggregates`).

Cleaning policy (``docs/lake-layout.md`` has the long form):

- types are the contract's, enforced at ingestion: anything else was quarantined there;
- ``value`` NaN or +-infinity never reaches the raw zone (quarantined as "value is not a finite
  number"); a null ``value`` is a valid event ("the measurement is missing") and is kept as
  null with ``value_missing = true``: the gap is information (a silent sensor). Statistics
  skip it; ``count`` counts it and ``missing`` says how many there were;
- no unit conversion: the contract has no unit field, so values are kept as the source sent
  them (a per-source unit would be declared and converted here);
- one row per ``event_id`` (dropDuplicatesWithinWatermark): ids are derived from the source and
  the event time, so a re-sent event has the same id and the same event time; the first copy
  to arrive is kept (copies that arrive in the same micro-batch are assumed identical, as a
  re-send is);
- late events (``late`` stamped at ingestion, see :mod:`lakepulse.transforms.lateness`) are
  not curated: they are kept, all copies, in ``late_events``.
"""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from lakepulse.transforms.ingest import utc_date
from lakepulse.transforms.lateness import LATE_COLUMN, WATERMARK_COLUMN, parse_delay_ms

EVENTS_PARTITION_COLUMN = "event_date"
LATE_PARTITION_COLUMN = "event_date"
AGGREGATE_PARTITION_COLUMN = "window_date"
# Within each file of `events`, rows are sorted by these: Parquet's min/max statistics on
# `source` then let a query for one source skip row groups and pages.
EVENTS_SORT_COLUMNS = ("source", "event_time")
KAFKA_KEY_COLUMNS = ("kafka_topic", "kafka_partition", "kafka_offset")
# percentile_approx's accuracy: exact up to 1/accuracy relative rank error, and exact outright
# while a window holds fewer values than its sketch keeps (about 10000 here).
PERCENTILE_ACCURACY = 10_000

_OPTIONAL = ("source_time",)


class WindowSpec(NamedTuple):
    size: str
    slide: str | None = None  # None: tumbling

    @property
    def slide_or_size(self) -> str:
        return self.slide or self.size


AGGREGATES: dict[str, WindowSpec] = {
    "events_agg_1m": WindowSpec("1 minute"),
    "events_agg_5m": WindowSpec("5 minutes", "1 minute"),
}


def _optional(frame: DataFrame) -> list[str]:
    return [c for c in _OPTIONAL if c in frame.columns]


def on_time(raw: DataFrame) -> DataFrame:
    return raw.where(~F.col(LATE_COLUMN))


def late_events(raw: DataFrame) -> DataFrame:
    """Rows of ``late_events``: every late copy, with the watermark it arrived behind."""
    return raw.where(F.col(LATE_COLUMN)).select(
        "event_id",
        "source",
        "event_time",
        "value",
        "is_anomaly",
        *_optional(raw),
        *KAFKA_KEY_COLUMNS,
        "kafka_timestamp",
        "ingested_at",
        WATERMARK_COLUMN,
        ((F.unix_micros(WATERMARK_COLUMN) - F.unix_micros("event_time")) / 1e6).alias(
            "behind_watermark_seconds"
        ),
        utc_date(F.col("event_time")).alias(LATE_PARTITION_COLUMN),
    )


def clean_events(raw: DataFrame) -> DataFrame:
    """Raw rows (on time) -> curated columns; stateless, so usable in batch and streaming."""
    return raw.select(
        "event_id",
        "source",
        "event_time",
        "value",
        F.col("value").isNull().alias("value_missing"),
        "is_anomaly",
        *_optional(raw),
        *KAFKA_KEY_COLUMNS,
        "ingested_at",
        utc_date(F.col("event_time")).alias(EVENTS_PARTITION_COLUMN),
    )


def curated_stream(raw_stream: DataFrame, delay: str) -> DataFrame:
    """The curated events of a raw stream: on time, cleaned, one row per event_id."""
    return (
        clean_events(on_time(raw_stream))
        .withWatermark("event_time", delay)
        .dropDuplicatesWithinWatermark(["event_id"])
    )


def aggregate_windows(events: DataFrame, spec: WindowSpec) -> DataFrame:
    """Per source and event-time window: count, missing, min, max, mean, stddev, p50, p95.

    ``count`` counts events (a missing value included), the statistics use the values that
    are there (null when none is). ``stddev`` is the sample standard deviation (null for one
    value). With a watermark on ``event_time`` this is an append-mode streaming aggregation.
    """
    value = F.col("value")
    quantiles = F.percentile_approx(value, F.array(F.lit(0.5), F.lit(0.95)), PERCENTILE_ACCURACY)
    window = F.window("event_time", spec.size, spec.slide)
    stats = events.groupBy(window.alias("window"), F.col("source")).agg(
        F.count(F.lit(1)).alias("count"),
        F.count_if(value.isNull()).alias("missing"),
        F.min(value).alias("min"),
        F.max(value).alias("max"),
        F.avg(value).alias("mean"),
        F.stddev_samp(value).alias("stddev"),
        quantiles.alias("_quantiles"),
    )
    return stats.select(
        F.col("window.start").alias("window_start"),
        F.col("window.end").alias("window_end"),
        "source",
        "count",
        "missing",
        "min",
        "max",
        "mean",
        "stddev",
        F.col("_quantiles")[0].alias("p50"),
        F.col("_quantiles")[1].alias("p95"),
        utc_date(F.col("window.start")).alias(AGGREGATE_PARTITION_COLUMN),
    )


def deduplicated_events(raw: DataFrame, late: DataFrame) -> DataFrame:
    """Batch: raw minus late (by Kafka coordinates), one row per event_id, cleaned.

    The copy kept is the first to arrive (ingestion batch, then Kafka partition and offset),
    as in the stream. The late rows are subtracted by their Kafka coordinates, not their id: a
    late re-send of an event that was on time the first time must not remove the original.
    """
    keys = list(KAFKA_KEY_COLUMNS)
    kept = raw.join(late.select(*keys), on=keys, how="left_anti")
    first = Window.partitionBy("event_id").orderBy(
        "ingested_at", "kafka_topic", "kafka_partition", "kafka_offset"
    )
    return clean_events(
        kept.withColumn("_copy", F.row_number().over(first)).where("_copy = 1").drop("_copy")
    )


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def _events_needed(spec: WindowSpec, start: dt.date, end: dt.date) -> tuple[Column, dt.date]:
    """Event-time filter and last event date that windows starting in [start, end] need."""
    reach = dt.timedelta(
        milliseconds=parse_delay_ms(spec.size) - parse_delay_ms(spec.slide_or_size)
    )
    upper = _midnight(end + dt.timedelta(days=1)) + reach  # exclusive
    lower = _midnight(start)
    time = F.col("event_time")
    return (time >= F.lit(lower)) & (time < F.lit(upper)), (
        upper - dt.timedelta(microseconds=1)
    ).date()


def recompute_aggregates(
    raw_df: DataFrame, late_df: DataFrame, start_date: dt.date, end_date: dt.date
) -> dict[str, DataFrame]:
    """Every aggregate table's rows for windows starting on ``start_date``..``end_date`` (UTC),
    from the raw zone alone: raw minus late, deduplicated by event_id, then the aggregation
    the stream uses. Keyed by table name (:data:`AGGREGATES`)."""
    if end_date < start_date:
        raise ValueError(f"end date {end_date} is before start date {start_date}")
    results = {}
    for name, spec in AGGREGATES.items():
        needed, last_date = _events_needed(spec, start_date, end_date)
        dates = F.col(EVENTS_PARTITION_COLUMN).between(F.lit(start_date), F.lit(last_date))
        events = deduplicated_events(raw_df.where(dates), late_df.where(dates)).where(needed)
        # On window_start, not window_date: Spark 4.2 pushes a filter on a function of the
        # window below the aggregation and fails to compile its code (then runs it slower).
        starts = F.col("window_start")
        in_range = (starts >= F.lit(_midnight(start_date))) & (
            starts < F.lit(_midnight(end_date + dt.timedelta(days=1)))
        )
        results[name] = aggregate_windows(events, spec).where(in_range)
    return results


def last_window_end(spec: WindowSpec, day: dt.date) -> dt.datetime:
    """The end of the last window that starts on ``day`` (UTC)."""
    reach = dt.timedelta(milliseconds=parse_delay_ms(spec.size))
    slide = dt.timedelta(milliseconds=parse_delay_ms(spec.slide_or_size))
    return _midnight(day + dt.timedelta(days=1)) - slide + reach
