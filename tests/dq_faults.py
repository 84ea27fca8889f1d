"""Partitions of curated events for the data-quality tests: one clean day of a real NAB series,
and each kind of bad data the suites must catch, injected into a copy of it."""

from __future__ import annotations

import csv
import datetime as dt
import uuid
from pathlib import Path
from typing import Any

from lakepulse.quality.profile import load_profile
from lakepulse.settings import Settings

SOURCE = "realAWSCloudwatch/ec2_cpu_utilization_5f5533"
EVENTS_SCHEMA = (
    "event_id string, source string, event_time timestamp, value double, "
    "value_missing boolean, is_anomaly boolean, kafka_topic string, kafka_partition int, "
    "kafka_offset long, ingested_at timestamp"
)
FAULTS = (
    "null_keys",
    "out_of_range",
    "duplicate_ids",
    "schema_change",
    "stale",
    "distribution_shift",
)
# The expectation that must name each fault (others may fail too, this one must).
EXPECTED_REASON = {
    "null_keys": "expect_column_values_to_not_be_null",
    "out_of_range": "expect_column_pair_values_a_to_be_greater_than_b",
    "duplicate_ids": "expect_column_values_to_be_unique",
    "schema_change": "expect_column_values_to_be_of_type",
    "stale": "expect_column_max_to_be_between",
    "distribution_shift": "expect_column_values_to_be_between",
}


def nab_day(settings: Settings, day_index: int = 3) -> list[tuple[dt.datetime, float]]:
    """The rows of one whole UTC day of the series (its ``day_index``-th date)."""
    category, series = SOURCE.split("/")
    path = Path(settings.paths.nab_dir) / "data" / category / f"{series}.csv"
    with path.open() as handle:
        rows = [
            (dt.datetime.fromisoformat(r["timestamp"]).replace(tzinfo=dt.UTC), float(r["value"]))
            for r in csv.DictReader(handle)
        ]
    days = sorted({t.date() for t, _ in rows})
    wanted = days[day_index]
    return [(t, v) for t, v in rows if t.date() == wanted]


def clean_rows(settings: Settings, day_index: int = 3) -> list[tuple[Any, ...]]:
    now = dt.datetime.now(dt.UTC)
    return [
        (str(uuid.uuid4()), SOURCE, t, v, False, False, "events", 0, 1_000_000 + n, now)
        for n, (t, v) in enumerate(nab_day(settings, day_index))
    ]


def faulty_frame(
    spark: Any, settings: Settings, fault: str | None, day_index: int = 3, shift_days: int = 0
) -> Any:
    """A partition's rows (without its partition column) with ``fault`` injected; event times
    moved ``shift_days`` back (whole days: each row stays on one date)."""
    from pyspark.sql import functions as F

    rows = clean_rows(settings, day_index)
    frame = spark.createDataFrame(rows, EVENTS_SCHEMA)
    if shift_days:
        shifted = F.col("event_time") - F.expr(f"INTERVAL {shift_days} DAYS")
        frame = frame.withColumn("event_time", shifted)
    if fault is None:
        return frame
    if fault == "null_keys":  # a few events lost their id and their source
        broken = F.col("kafka_offset") % 50 == 0
        return frame.withColumn(
            "event_id", F.when(broken, F.lit(None)).otherwise(F.col("event_id"))
        ).withColumn("source", F.when(broken, F.lit(None)).otherwise(F.col("source")))
    if fault == "out_of_range":  # a sensor gone mad: 2% of readings at 1e6
        return frame.withColumn(
            "value", F.when(F.col("kafka_offset") % 50 == 1, F.lit(1e6)).otherwise(F.col("value"))
        )
    if fault == "duplicate_ids":  # a replay wrote 10 events a second time
        return frame.unionByName(frame.orderBy("kafka_offset").limit(10))
    if fault == "schema_change":  # an upstream change turned the value into text
        return frame.withColumn("value", F.format_number("value", 3))
    if fault == "stale":  # everything arrived three days ago
        return frame.withColumn("ingested_at", F.col("ingested_at") - F.expr("INTERVAL 3 DAYS"))
    if fault == "distribution_shift":  # the level moved 6 sigmas up (most still within range)
        history = load_profile(settings.quality.profile_path)["sources"][SOURCE]
        return frame.withColumn("value", F.col("value") + 6 * history["std"])
    raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
