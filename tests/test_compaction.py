"""Compaction rewrites closed date partitions as one sorted file and leaves open ones alone."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from lakepulse.settings import HdfsSettings, PathSettings, Settings, SparkSettings
from lakepulse.spark_session import build_spark
from lakepulse.streaming.compaction import compact_lake, compacted_tables

pytestmark = pytest.mark.streaming

TODAY = dt.date(2026, 11, 26)
OLD, RECENT = dt.date(2026, 11, 20), dt.date(2026, 11, 25)


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("lake")
    settings = Settings(
        paths=PathSettings(data_dir=root / "data", jars_dir=root / "no-jars"),
        hdfs=HdfsSettings(fs_uri_override="file://", lake_root=str(root / "lake")),
        spark=SparkSettings(master="local[2]", shuffle_partitions=2),
    )
    spark = build_spark(settings, "test_compaction")
    yield spark, settings
    spark.stop()


SCHEMA = "source string, event_time timestamp, value double, event_id string"


def _write_small_files(spark, folder: str, day: dt.date, files: int) -> list[tuple]:
    """``files`` Parquet files of 3 rows each in one date partition, sources interleaved."""
    midnight = dt.datetime(day.year, day.month, day.day)
    rows = [
        (f"source-{(f * 7 + i) % 5}", midnight + dt.timedelta(minutes=i, seconds=f),
         float(f * 10 + i), f"e-{day}-{f}-{i}")
        for f in range(files)
        for i in range(3)
    ]  # fmt: skip
    for f in range(files):
        frame = spark.createDataFrame(rows[f * 3 : f * 3 + 3], SCHEMA)
        frame.coalesce(1).write.mode("append").parquet(f"{folder}/event_date={day.isoformat()}")
    return rows


def _parquet_files(folder: str) -> list[Path]:
    return sorted(Path(folder.removeprefix("file://")).glob("*.parquet"))


def test_closed_partitions_become_one_sorted_file_with_the_same_rows(lake):
    spark, settings = lake
    events = compacted_tables(settings)["events"].path
    old_rows = _write_small_files(spark, events, OLD, files=6)
    _write_small_files(spark, events, RECENT, files=6)

    done = compact_lake(spark, settings, older_than_days=2, min_files=4, today=TODAY)

    assert done["events"] == [{"date": OLD.isoformat(), "files_before": 6, "rows": len(old_rows)}]
    old_folder = f"{events}/event_date={OLD.isoformat()}"
    assert len(_parquet_files(old_folder)) == 1
    assert len(_parquet_files(f"{events}/event_date={RECENT.isoformat()}")) == 6  # still open
    compacted = spark.read.parquet(old_folder).select("source", "event_time", "value", "event_id")
    assert sorted(map(tuple, compacted.collect())) == sorted(old_rows)
    sources = [row.source for row in spark.read.parquet(old_folder).collect()]
    assert sources == sorted(sources)  # sorted by source: min/max statistics skip by source
    table = spark.read.parquet(events)  # partition discovery ignores the _compaction folder
    assert table.count() == 2 * len(old_rows)

    again = compact_lake(spark, settings, older_than_days=2, min_files=4, today=TODAY)
    assert again["events"] == []  # one file is below min_files: nothing to do


def test_today_is_never_compacted(lake):
    spark, settings = lake
    with pytest.raises(ValueError, match="today's partitions are still open"):
        compact_lake(spark, settings, older_than_days=0, today=TODAY)
