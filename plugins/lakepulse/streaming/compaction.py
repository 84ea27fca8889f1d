"""Compaction of the curated and aggregate tables: many small per-batch files -> one file per
date partition, sorted, so that Parquet's min/max statistics let a query for one source skip
most of the data.

Only closed dates are compacted: dates at least ``older_than_days`` before today (UTC). The
stream no longer writes there (anything that old is late and goes to ``late_events`` of its
own date, itself closed), and a batch Spark replays after a crash only touches the files it
wrote itself, which live in recent dates. The raw zone is not compacted: its files are listed
in the file sink's ``_spark_metadata`` log, which a rewrite would break.

A partition is swapped with two renames: the compacted copy is written beside the table
(``_compaction/``), then the old folder is moved aside and the new one into place. A reader
racing the swap may find the date missing for that moment, never duplicated.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from lakepulse.lake import aggregate_path, curated_events_path, late_events_path
from lakepulse.log import get_logger
from lakepulse.settings import Settings
from lakepulse.streaming.batch_output import _fs, delete, exists

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = get_logger("compaction")

WORK_DIR = "_compaction"


class CompactedTable(NamedTuple):
    path: str
    partition_column: str
    sort_columns: tuple[str, ...]


def compacted_tables(settings: Settings) -> dict[str, CompactedTable]:
    return {
        "events": CompactedTable(curated_events_path(settings), "event_date",
                                 ("source", "event_time")),
        "late_events": CompactedTable(late_events_path(settings), "event_date",
                                      ("source", "event_time")),
        "events_agg_1m": CompactedTable(aggregate_path(settings, "events_agg_1m"), "window_date",
                                        ("source", "window_start")),
        "events_agg_5m": CompactedTable(aggregate_path(settings, "events_agg_5m"), "window_date",
                                        ("source", "window_start")),
    }  # fmt: skip


def _data_files(spark: SparkSession, folder: str) -> list[str]:
    fs, path = _fs(spark, folder)
    if not fs.exists(path):
        return []
    return [
        status.getPath().getName()
        for status in fs.listStatus(path)
        if status.isFile() and status.getPath().getName().endswith(".parquet")
    ]


def closed_partitions(
    spark: SparkSession, table: CompactedTable, before: dt.date, min_files: int
) -> list[tuple[dt.date, int]]:
    """(date, file count) of the partitions dated before ``before`` with >= ``min_files``."""
    fs, path = _fs(spark, table.path)
    if not fs.exists(path):
        return []
    found = []
    prefix = f"{table.partition_column}="
    for status in fs.listStatus(path):
        name = status.getPath().getName()
        if not (status.isDirectory() and name.startswith(prefix)):
            continue
        day = dt.date.fromisoformat(name[len(prefix) :])
        files = len(_data_files(spark, f"{table.path}/{name}"))
        if day < before and files >= min_files:
            found.append((day, files))
    return sorted(found)


def compact_partition(spark: SparkSession, table: CompactedTable, day: dt.date) -> int:
    """Rewrite one date partition as a single sorted file; returns the rows written."""
    name = f"{table.partition_column}={day.isoformat()}"
    source = f"{table.path}/{name}"
    staged = f"{table.path}/{WORK_DIR}/{name}"
    aside = f"{table.path}/{WORK_DIR}/replaced-{name}"
    for leftover in (staged, aside):
        if exists(spark, leftover):
            delete(spark, leftover)
    frame = spark.read.parquet(source)
    rows = frame.count()
    frame.coalesce(1).sortWithinPartitions(*table.sort_columns).write.parquet(staged)
    if spark.read.parquet(staged).count() != rows:
        raise RuntimeError(f"compaction of {source} wrote a different row count; left as it was")
    fs, _ = _fs(spark, table.path)
    jvm_path = spark.sparkContext._jvm.org.apache.hadoop.fs.Path
    if not fs.rename(jvm_path(source), jvm_path(aside)):
        raise OSError(f"cannot move {source} aside to {aside}")
    if not fs.rename(jvm_path(staged), jvm_path(source)):
        fs.rename(jvm_path(aside), jvm_path(source))  # put the original back
        raise OSError(f"cannot move the compacted {staged} to {source}; original restored")
    delete(spark, aside)
    return rows


def compact_lake(
    spark: SparkSession,
    settings: Settings,
    *,
    older_than_days: int = 2,
    min_files: int = 4,
    tables: Sequence[str] | None = None,
    today: dt.date | None = None,
) -> dict[str, list[dict]]:
    """Compact every closed partition of the compacted tables; returns what was done."""
    if older_than_days < 1:
        raise ValueError("older_than_days must be at least 1: today's partitions are still open")
    before = (today or dt.datetime.now(dt.UTC).date()) - dt.timedelta(days=older_than_days - 1)
    done: dict[str, list[dict]] = {}
    for name, table in compacted_tables(settings).items():
        if tables and name not in tables:
            continue
        done[name] = []
        for day, files in closed_partitions(spark, table, before, min_files):
            rows = compact_partition(spark, table, day)
            log.info("compacted", table=name, date=day.isoformat(), files_before=files, rows=rows)
            done[name].append({"date": day.isoformat(), "files_before": files, "rows": rows})
    return done
