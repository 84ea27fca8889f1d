"""The streaming pipeline beyond ingestion: lateness, curation, aggregates, dead letters.

Pure functions on small hand-made frames, then the ingest job's query wiring end to end on a
local file:// lake fed by a file stream of Kafka-shaped records. No Kafka, no HDFS.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from lakepulse import lake
from lakepulse.settings import HdfsSettings, PathSettings, Settings, SparkSettings
from lakepulse.spark_session import build_spark
from lakepulse.streaming import batch_output
from lakepulse.streaming.recompute import RecomputeRefused, recompute_to_lake
from lakepulse.transforms.curate import (
    AGGREGATES,
    aggregate_windows,
    clean_events,
    curated_stream,
    deduplicated_events,
    last_window_end,
    recompute_aggregates,
)
from lakepulse.transforms.ingest import dead_letters, invalid_events, parse_kafka_records
from lakepulse.transforms.lateness import (
    batch_watermark_ms,
    judge_batches,
    parse_delay_ms,
    stamp_lateness,
)

pytestmark = pytest.mark.streaming

PROJECT_ROOT = Path(__file__).resolve().parents[1]
LAKE_LAYOUT_DOC = PROJECT_ROOT / "docs" / "lake-layout.md"
KAFKA_SCHEMA = (
    "key binary, value binary, topic string, partition int, offset long, "
    "timestamp timestamp, timestampType int"
)
RAW_DDL = (
    "event_id string, source string, event_time timestamp, value double, is_anomaly boolean, "
    "kafka_topic string, kafka_partition int, kafka_offset bigint, kafka_timestamp timestamp, "
    "ingested_at timestamp, late boolean, watermark timestamp, event_date date, event_hour int"
)
DAY = dt.date(2026, 11, 20)
T0 = dt.datetime(2026, 11, 20, 10, 0, tzinfo=dt.UTC)
MINUTE_MS = 60_000


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def utc(value: dt.datetime) -> dt.datetime:
    """pyspark returns naive local datetimes; make them aware UTC instants."""
    return value.astimezone(dt.UTC)


def local_settings(root: Path, **spark: Any) -> Settings:
    return Settings(
        paths=PathSettings(data_dir=root / "data", jars_dir=root / "no-jars"),
        hdfs=HdfsSettings(fs_uri_override="file://", lake_root=str(root / "lake")),
        spark=SparkSettings(master="local[2]", shuffle_partitions=2, trigger_seconds=1, **spark),
    )


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    # Python workers run the lateness stamp (pandas): they must be this interpreter.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = build_spark(local_settings(tmp_path_factory.mktemp("session")), "test_pipeline")
    yield session
    session.stop()


def raw_frame(spark: Any, rows: list[dict[str, Any]]) -> Any:
    """Raw-zone rows; unspecified columns get defaults (a new Kafka offset per row)."""
    full = []
    for number, row in enumerate(rows):
        when = row["event_time"]
        full.append(
            (
                row["event_id"],
                row.get("source", "a"),
                when,
                row.get("value", 1.0),
                None,
                "events",
                0,
                row.get("offset", number),
                when,
                row.get("ingested_at", dt.datetime(2026, 11, 21, tzinfo=dt.UTC)),
                row.get("late", False),
                None,
                when.date(),
                when.hour,
            )
        )
    return spark.createDataFrame(full, RAW_DDL)


# --- the lateness rule -----------------------------------------------------------------------


def test_delay_parsing_follows_spark_interval_words() -> None:
    assert parse_delay_ms("10 minutes") == 600_000
    assert parse_delay_ms("1 minute") == 60_000
    assert parse_delay_ms("1 hour 30 minutes") == 5_400_000
    assert parse_delay_ms("INTERVAL 90 seconds") == 90_000
    assert parse_delay_ms("2 days") == 172_800_000
    for bad in ("10", "ten minutes", "1 month", "5 minutes later"):
        with pytest.raises(ValueError, match="watermark delay"):
            parse_delay_ms(bad)


def test_late_rule_by_hand() -> None:
    delay = 10 * MINUTE_MS
    assert batch_watermark_ms(None, delay) == 0  # Spark's watermark starts at the epoch
    assert batch_watermark_ms(5 * MINUTE_MS, delay) == 0  # and never goes below it
    minutes = [[0, 30], [5, 20, 21], [45], [34, 35, 36], [30, 60], [], [49, 50, 51]]
    base = int(T0.timestamp() * 1000)
    batches = [[base + m * MINUTE_MS for m in batch] for batch in minutes]
    assert judge_batches(batches, delay) == [
        [False, False],  # first batch: nothing seen before
        [True, True, False],  # watermark 30 - 10 = 20: 5 and 20 (at the watermark) are late
        [False],  # max is still 30: watermark 20
        [True, True, False],  # max 45: watermark 35
        [True, False],  # 30 <= 35
        [],  # an empty batch moves nothing
        [True, True, False],  # max 60: watermark 50
    ]
    assert judge_batches([[0, 1]], delay) == [[True, False]]  # at the epoch: late even at first


def _write_batch(spark: Any, folder: Path, name: str, rows: list[tuple[str, dt.datetime]]) -> None:
    frame = spark.createDataFrame(rows, "event_id string, event_time timestamp")
    frame.coalesce(1).write.parquet(str(folder / name))


def test_stamped_late_rows_are_exactly_what_spark_drops(spark: Any, tmp_path: Path) -> None:
    """The stamp and Spark's own watermark, fed the same batches, agree row for row."""
    source = tmp_path / "source"
    source.mkdir()
    stream = spark.readStream.schema("event_id string, event_time timestamp").parquet(f"{source}/*")

    def to_parquet(frame: Any, name: str) -> Any:
        return (
            frame.writeStream.format("parquet")
            .option("path", str(tmp_path / name))
            .option("checkpointLocation", str(tmp_path / f"ck-{name}"))
            .trigger(availableNow=True)
        )

    stamped = to_parquet(stamp_lateness(stream, "10 minutes"), "stamped")
    sparks_own = to_parquet(
        stream.withWatermark("event_time", "10 minutes").dropDuplicatesWithinWatermark(
            ["event_id"]
        ),
        "kept",
    )
    minutes = [[0, 30], [5, 20, 21], [45, 12], [34, 35, 36]]
    dropped = 0
    for number, batch in enumerate(minutes):  # one batch per run: the same batches for both
        _write_batch(spark, source, f"b{number}", [(f"e{number}-{m}", at(m)) for m in batch])
        queries = [stamped.start(), sparks_own.start()]
        for query in queries:
            query.awaitTermination(120)
        progress = queries[1].recentProgress
        dropped += sum(op.numRowsDroppedByWatermark for p in progress for op in p.stateOperators)
    rows = spark.read.parquet(str(tmp_path / "stamped")).collect()
    kept = {r.event_id for r in spark.read.parquet(str(tmp_path / "kept")).collect()}
    late = {r.event_id for r in rows if r.late}
    assert late == {"e1-5", "e1-20", "e2-12", "e3-34", "e3-35"}
    assert late == {r.event_id for r in rows} - kept
    assert dropped == len(late)
    watermarks = {r.event_id: utc(r.watermark) for r in rows}
    assert watermarks["e1-5"] == at(20)
    assert watermarks["e0-0"] == dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def test_stamping_keeps_every_column_as_it_was(spark: Any, tmp_path: Path) -> None:
    rows = [
        {"event_id": "x", "event_time": at(0.001), "value": None},
        {"event_id": "y", "event_time": dt.datetime(2026, 3, 29, 1, 30, 0, 123000, dt.UTC)},
    ]
    source = tmp_path / "source"
    frame = raw_frame(spark, rows).drop("late", "watermark")
    frame.coalesce(1).write.parquet(str(source / "b0"))
    stream = spark.readStream.schema(frame.schema).parquet(f"{source}/*")
    query = (
        stamp_lateness(stream, "10 minutes")
        .writeStream.format("memory")
        .queryName("fidelity")
        .option("checkpointLocation", str(tmp_path / "ck"))
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination(120)
    stamped = spark.sql("SELECT * FROM fidelity")
    assert stamped.columns == [*frame.columns, "late", "watermark"]
    assert sorted(stamped.drop("late", "watermark").collect()) == sorted(frame.collect())


# --- curation --------------------------------------------------------------------------------


def test_cleaning_keeps_a_missing_value_as_null_and_flags_it(spark: Any) -> None:
    raw = raw_frame(
        spark,
        [
            {"event_id": "a-1", "event_time": at(1), "value": 2.5},
            {"event_id": "a-2", "event_time": dt.datetime(2026, 11, 20, 23, 59, tzinfo=dt.UTC)},
            {"event_id": "a-3", "event_time": at(3), "value": None},
        ],
    )
    cleaned = clean_events(raw)
    assert cleaned.columns == [
        "event_id",
        "source",
        "event_time",
        "value",
        "value_missing",
        "is_anomaly",
        "kafka_topic",
        "kafka_partition",
        "kafka_offset",
        "ingested_at",
        "event_date",
    ]
    by_id = {r.event_id: r for r in cleaned.collect()}
    assert (by_id["a-1"].value, by_id["a-1"].value_missing) == (2.5, False)
    assert (by_id["a-3"].value, by_id["a-3"].value_missing) == (None, True)
    assert by_id["a-2"].event_date == DAY


def test_duplicates_are_dropped_within_the_watermark(spark: Any, tmp_path: Path) -> None:
    """In a batch and across batches, one copy of an event_id is kept: across batches the
    first one to arrive."""
    source = tmp_path / "raw"
    batches = [
        [("a-0", 0, 1), ("a-0", 0, 2), ("a-5", 5, 3)],
        [("a-0", 0, 4), ("a-30", 30, 5), ("a-30", 30, 6)],
        [("a-30", 30, 7), ("a-31", 31, 8)],  # watermark 20: a-30 is on time, still a duplicate
    ]
    schema = raw_frame(spark, []).schema
    stream = spark.readStream.schema(schema).parquet(f"{source}/*")
    writer = (
        curated_stream(stream, "10 minutes")
        .writeStream.format("parquet")
        .option("path", str(tmp_path / "out"))
        .option("checkpointLocation", str(tmp_path / "ck"))
        .trigger(availableNow=True)
    )
    for number, batch in enumerate(batches):
        rows = [{"event_id": e, "event_time": at(m), "offset": o} for e, m, o in batch]
        raw_frame(spark, rows).coalesce(1).write.parquet(str(source / f"b{number}"))
        writer.start().awaitTermination(120)
    kept = dict(
        (r.event_id, r.kafka_offset) for r in spark.read.parquet(str(tmp_path / "out")).collect()
    )
    assert sorted(kept) == ["a-0", "a-30", "a-31", "a-5"]
    assert kept["a-0"] in {1, 2}
    assert kept["a-30"] in {5, 6}


def test_batch_deduplication_keeps_the_first_copy_and_subtracts_late_ones(spark: Any) -> None:
    first = dt.datetime(2026, 11, 21, 0, 0, tzinfo=dt.UTC)
    later = first + dt.timedelta(seconds=10)
    raw = raw_frame(
        spark,
        [
            {"event_id": "a-1", "event_time": at(1), "value": 1.0, "ingested_at": later},
            {"event_id": "a-1", "event_time": at(1), "value": 9.0, "ingested_at": first},
            # A late re-send of a-2: its Kafka coordinates are in late_events, not the original's.
            {"event_id": "a-2", "event_time": at(2), "offset": 10},
            {"event_id": "a-2", "event_time": at(2), "offset": 11, "late": True},
            {"event_id": "a-3", "event_time": at(3), "offset": 12, "late": True},
        ],
    )
    late = raw.where("late")
    rows = {r.event_id: r for r in deduplicated_events(raw, late).collect()}
    assert sorted(rows) == ["a-1", "a-2"]
    assert rows["a-1"].value == 9.0  # the copy ingested first
    assert rows["a-2"].kafka_offset == 10


# --- aggregates ------------------------------------------------------------------------------


def _events(spark: Any, rows: list[tuple[str, dt.datetime, float | None]]) -> Any:
    return clean_events(
        raw_frame(
            spark,
            [
                {"event_id": f"{s}-{n}", "source": s, "event_time": t, "value": v}
                for n, (s, t, v) in enumerate(rows)
            ],
        )
    )


def _by_window(frame: Any) -> dict[tuple[dt.datetime, str], Any]:
    return {(utc(r.window_start), r.source): r for r in frame.collect()}


def test_window_statistics_by_hand(spark: Any) -> None:
    seconds = dt.timedelta(seconds=1)
    events = _events(
        spark,
        [
            ("a", T0 + 10 * seconds, 1.0),
            ("a", T0 + 20 * seconds, 2.0),
            ("a", T0 + 30 * seconds, 3.0),
            ("a", T0 + 40 * seconds, 4.0),
            ("a", T0 + 50 * seconds, None),
            ("a", T0 + 90 * seconds, 10.0),
            ("b", T0 + 5 * seconds, 5.0),
        ],
    )
    one = _by_window(aggregate_windows(events, AGGREGATES["events_agg_1m"]))
    assert sorted(one) == [(at(0), "a"), (at(0), "b"), (at(1), "a")]
    first = one[(at(0), "a")]
    assert utc(first.window_end) == at(1)
    assert (first["count"], first.missing, first.min, first.max) == (5, 1, 1.0, 4.0)
    assert first.mean == pytest.approx(2.5)
    assert first.stddev == pytest.approx(math.sqrt(5 / 3))  # sample stddev of 1, 2, 3, 4
    assert (first.p50, first.p95) == (2.0, 4.0)
    assert first.window_date == DAY
    single = one[(at(1), "a")]
    assert (single["count"], single.mean, single.stddev, single.p50, single.p95) == (
        1,
        10.0,
        None,
        10.0,
        10.0,
    )

    five = _by_window(aggregate_windows(events, AGGREGATES["events_agg_5m"]))
    # Every event is in 5 windows of 5 minutes sliding by 1: a's start at 9:56 ... 10:01.
    assert sorted(start for start, source in five if source == "a") == [at(m) for m in range(-4, 2)]
    everything = five[(at(-3), "a")]  # 9:57-10:02 holds all six of a's events
    assert utc(everything.window_end) == at(2)
    assert (everything["count"], everything.missing, everything.min, everything.max) == (
        6,
        1,
        1.0,
        10.0,
    )
    assert everything.mean == pytest.approx(4.0)
    assert everything.stddev == pytest.approx(math.sqrt(12.5))
    assert (everything.p50, everything.p95) == (3.0, 10.0)
    assert five[(at(1), "a")]["count"] == 1
    assert five[(at(-4), "a")]["count"] == 5
    assert five[(at(-4), "a")].window_date == DAY


def test_recompute_covers_the_windows_that_start_in_the_range(spark: Any) -> None:
    midnight = dt.datetime(2026, 11, 21, tzinfo=dt.UTC)
    raw = raw_frame(
        spark,
        [
            {"event_id": "a-1", "event_time": midnight - dt.timedelta(seconds=90), "value": 1.0},
            {"event_id": "a-2", "event_time": midnight + dt.timedelta(seconds=30), "value": 2.0},
            {"event_id": "a-3", "event_time": midnight + dt.timedelta(seconds=210), "value": 3.0},
            {"event_id": "a-2", "event_time": midnight + dt.timedelta(seconds=30), "offset": 7},
            {"event_id": "a-0", "event_time": midnight - dt.timedelta(hours=25), "value": 5.0},
        ],
    )
    late = raw_frame(spark, []).where("false")
    result = recompute_aggregates(raw, late, DAY, DAY)
    one = _by_window(result["events_agg_1m"])
    assert sorted(one) == [(midnight - dt.timedelta(minutes=2), "a")]
    five = _by_window(result["events_agg_5m"])
    starts = sorted(start for start, _ in five)
    assert starts == [midnight - dt.timedelta(minutes=m) for m in (6, 5, 4, 3, 2, 1)]
    # 23:58-00:03 holds a-1 and a-2 (the duplicate of a-2 counted once); 23:59-00:04 a-2, a-3.
    assert five[(midnight - dt.timedelta(minutes=2), "a")]["count"] == 2
    assert five[(midnight - dt.timedelta(minutes=1), "a")].mean == pytest.approx(2.5)
    with pytest.raises(ValueError, match="before start"):
        recompute_aggregates(raw, late, DAY, DAY - dt.timedelta(days=1))
    assert last_window_end(AGGREGATES["events_agg_5m"], DAY) == midnight + dt.timedelta(minutes=4)
    assert last_window_end(AGGREGATES["events_agg_1m"], DAY) == midnight


# --- dead letters ----------------------------------------------------------------------------


def test_dead_letters_are_json_keyed_by_the_original_key(spark: Any) -> None:
    kafka_time = dt.datetime(2026, 11, 20, 10, 0, 0, 250000, dt.UTC)
    records = spark.createDataFrame(
        [
            (b"\xffkey", b"not json", "events", 2, 41, kafka_time, 0),
            (None, None, "events", 1, 42, kafka_time, 0),
        ],
        KAFKA_SCHEMA,
    )
    letters = dead_letters(invalid_events(parse_kafka_records(records))).collect()
    assert len(letters) == 2
    by_offset = {json.loads(r.value)["offset"]: r for r in letters}
    first = json.loads(by_offset[41].value)
    assert bytes(by_offset[41].key) == b"\xffkey"
    assert first == {
        "reason": "not valid JSON",
        "topic": "events",
        "partition": 2,
        "offset": 41,
        "kafka_timestamp": "2026-11-20T10:00:00.250Z",
        "value_base64": base64.b64encode(b"not json").decode(),
    }
    second = json.loads(by_offset[42].value)
    assert by_offset[42].key is None
    assert (second["reason"], second["value_base64"]) == ("empty message", None)


# --- idempotent batch output -----------------------------------------------------------------


def _files(table: Path) -> list[str]:
    return sorted(
        str(p.relative_to(table)) for p in table.rglob("*.parquet") if "_staging" not in p.parts
    )


def test_a_replayed_batch_replaces_its_own_files(spark: Any, tmp_path: Path) -> None:
    table = tmp_path / "table"
    uri = f"file://{table}"

    def publish(rows: list[tuple[str, str]], batch_id: int, run: str = "run1") -> int:
        frame = spark.createDataFrame(rows, "source string, day string")
        return batch_output.publish_batch(
            frame, uri, run=run, batch_id=batch_id, partition_by=["day"], sort_by=["source"]
        )

    assert publish([("b", "d1"), ("a", "d1"), ("c", "d2")], 7) == 2
    assert publish([("x", "d1")], 8) == 1
    # Batch 7 again (a crash before its commit): different rows replace, never add to, its own.
    assert publish([("z", "d2"), ("y", "d2")], 7) == 1
    assert publish([("n", "d1")], 7, run="run2") == 1  # another checkpoint's batch 7
    assert _files(table) == [
        "day=d1/batch-run1-000000000008-0000.parquet",
        "day=d1/batch-run2-000000000007-0000.parquet",
        "day=d2/batch-run1-000000000007-0000.parquet",
    ]
    rows = spark.read.parquet(uri).orderBy("day", "source").collect()
    assert [(r.source, r.day) for r in rows] == [
        ("n", "d1"),
        ("x", "d1"),
        ("y", "d2"),
        ("z", "d2"),
    ]
    assert not list((table / "_staging").iterdir())


# --- the job's queries, end to end on a local lake -------------------------------------------


@pytest.fixture(scope="module")
def job() -> ModuleType:
    from lakepulse.streaming import ingest_job

    return ingest_job


def event_message(source: str, minute: int, *, event_id: str = "", missing: bool = False) -> str:
    """An event whose value is its minute (or null), id ``<source>-<minute>`` by default."""
    return json.dumps(
        {
            "schema_version": 1,
            "event_id": event_id or f"{source}-{minute}",
            "source": source,
            "event_time": at(minute).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "value": None if missing else float(minute),
        }
    )


class KafkaFeed:
    """Kafka-shaped records written as Parquet files: a file stream stands in for the topic."""

    def __init__(self, spark: Any, folder: Path) -> None:
        self.spark, self.folder, self.offset, self.files = spark, folder, 0, 0

    def send(self, messages: list[str | bytes]) -> None:
        rows = [
            (
                b"key",
                message.encode() if isinstance(message, str) else message,
                "events",
                0,
                self.offset + n,
                dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC),
                0,
            )
            for n, message in enumerate(messages)
        ]
        self.offset += len(rows)
        frame = self.spark.createDataFrame(rows, KAFKA_SCHEMA)
        frame.coalesce(1).write.parquet(str(self.folder / f"f{self.files:03d}"))
        self.files += 1


def run_job(spark: Any, job: ModuleType, settings: Settings, feed: KafkaFeed) -> list[Any]:
    records = spark.readStream.schema(KAFKA_SCHEMA).parquet(f"{feed.folder}/*")
    queries = job.start_queries(records, settings, once=True, dlq_path=dlq_path(settings))
    job.wait_for(spark, queries, until_all=True, max_seconds=300)
    return queries


def dlq_path(settings: Settings) -> str:
    return settings.hdfs.lake_path("_test_dlq")


def table(spark: Any, settings: Settings, name: str) -> Any:
    frame = lake.read_table(spark, settings, name)
    assert frame is not None, f"{name} has no data"
    return frame


def snapshot(spark: Any, settings: Settings) -> dict[str, list[Any]]:
    return {
        name: sorted(map(tuple, table(spark, settings, name).collect()), key=repr)
        for name in ("events", "late_events", "events_agg_1m", "events_agg_5m")
    }


def replay_last_data_batch(checkpoint: Path) -> int:
    """Make Spark run a query's last batch with data again, as after a crash between writing
    its output and committing it: forget that commit and the empty batches after it."""
    offsets = checkpoint / "offsets"
    batches = sorted(int(p.name) for p in offsets.iterdir() if p.name.isdigit())
    # An offsets file: "v1", the batch's metadata, then the source's end offset.
    ends = {b: (offsets / str(b)).read_text().splitlines()[2:] for b in batches}
    with_data = max(b for b in batches if b == 0 or ends[b] != ends[b - 1])
    for batch in batches:
        if batch >= with_data:
            for folder in ("commits", "offsets") if batch > with_data else ("commits",):
                for name in (str(batch), f".{batch}.crc"):
                    (checkpoint / folder / name).unlink(missing_ok=True)
    return with_data


def settled_counts(beats: list[dict[str, Any]], **expected: int) -> dict[str, int]:
    """The heartbeat's counts once they reach ``expected`` (listener events are async)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if beats and all(beats[-1]["counts"][k] >= v for k, v in expected.items()):
            break
        time.sleep(0.5)
    return beats[-1]["counts"]


def assert_rows_match(stream_rows: list[Any], batch_rows: list[Any]) -> None:
    def key(row: Any) -> tuple:
        return (utc(row.window_start), row.source)

    streamed = {key(r): r for r in stream_rows}
    recomputed = {key(r): r for r in batch_rows}
    assert streamed.keys() == recomputed.keys()
    for window, row in streamed.items():
        other = recomputed[window]
        assert (row["count"], row.missing, row.min, row.max, row.p50, row.p95) == (
            other["count"],
            other.missing,
            other.min,
            other.max,
            other.p50,
            other.p95,
        ), window
        for name in ("mean", "stddev"):
            a, b = getattr(row, name), getattr(other, name)
            assert (a is None and b is None) or math.isclose(a, b, rel_tol=1e-9), (window, name)


def test_the_job_lands_every_event_once_and_keeps_late_ones(
    spark: Any, job: ModuleType, tmp_path: Path
) -> None:
    settings = local_settings(tmp_path)
    feed = KafkaFeed(spark, tmp_path / "kafka")
    beats: list[dict[str, Any]] = []
    listener = job.HeartbeatListener(spark, lambda data: beats.append(json.loads(data)))
    spark.streams.addListener(listener)
    try:
        # 1. Minutes 0-29 for sources a and b; b's value at minute 7 is missing; 2 malformed.
        first = [event_message(s, m) for m in range(30) for s in "ab" if (s, m) != ("b", 7)]
        first.append(event_message("b", 7, event_id="missing", missing=True))
        feed.send([*first, "not json", event_message("a", 3).replace("Z", "+02:00")])
        run_job(spark, job, settings, feed)
        assert table(spark, settings, "events").count() == 60

        # 2. The same events again (a replay: new offsets), minutes 30-44, one new event far
        #    behind the watermark, a duplicate inside the batch, one more malformed record.
        feed.send(
            [
                *first,
                *[event_message(s, m) for m in range(30, 45) for s in "ab"],
                event_message("a", 5, event_id="a-late"),
                event_message("a", 40),
                b"\xff",
            ]
        )
        queries = run_job(spark, job, settings, feed)
        after_second = snapshot(spark, settings)
        counts = settled_counts(beats, late=41, duplicates_dropped=21)
        # 3. A restart after a crash between the lake queries' writing their last batch and
        #    committing it: the batch runs again and replaces its own files.
        checkpoints = Path(job.checkpoint_root(settings).removeprefix("file://"))
        for name in (job.CURATE_QUERY, job.AGGREGATE_QUERY):
            assert replay_last_data_batch(checkpoints / name) > 0
        run_job(spark, job, settings, feed)
        assert snapshot(spark, settings) == after_second
    finally:
        spark.streams.removeListener(listener)

    # Every valid event exactly once in `events`; late copies only in late_events.
    events = table(spark, settings, "events").collect()
    expected = {f"{s}-{m}" for m in range(45) for s in "ab"} - {"b-7"} | {"missing"}
    assert sorted(r.event_id for r in events) == sorted(expected)
    late = table(spark, settings, "late_events").collect()
    replayed_late = {f"{s}-{m}" for m in range(20) for s in "ab"} - {"b-7"} | {"missing"}
    assert sorted(r.event_id for r in late) == sorted([*replayed_late, "a-late"])
    assert "a-late" not in {r.event_id for r in events}
    assert all(utc(r.watermark) == at(19) for r in late)  # max of the first batch - 10 min
    raw = table(spark, settings, "raw_events")
    assert raw.count() == 60 + 60 + 30 + 2
    assert raw.where("late").count() == len(late)
    assert {r.value_missing for r in events if r.event_id == "missing"} == {True}

    # Quarantine and dead letters: the same three records.
    quarantined = table(spark, settings, "quarantined_events").collect()
    assert sorted(r.reason for r in quarantined) == [
        "event_time is not an ISO-8601 timestamp",
        "not valid JSON",
        "not valid UTF-8",
    ]
    letters = spark.read.parquet(dlq_path(settings)).collect()
    assert sorted(json.loads(r.value)["offset"] for r in letters) == sorted(
        r.kafka_offset for r in quarantined
    )
    assert {base64.b64decode(json.loads(r.value)["value_base64"]) for r in letters} >= {b"\xff"}

    # Aggregates equal the batch recomputation over the raw zone, for the closed windows.
    watermark = next(q for q in queries if q.name == job.AGGREGATE_QUERY).lastProgress
    closed = dt.datetime.fromisoformat(watermark["eventTime"]["watermark"].replace("Z", "+00:00"))
    assert closed == at(34)  # on-time max 44 - 10 minutes
    recomputed = recompute_aggregates(raw, table(spark, settings, "late_events"), DAY, DAY)
    for name in AGGREGATES:
        streamed = table(spark, settings, name).collect()
        assert streamed and all(utc(r.window_end) <= closed for r in streamed)
        expected_rows = [r for r in recomputed[name].collect() if utc(r.window_end) <= closed]
        assert_rows_match(streamed, expected_rows)
    one_minute = _by_window(table(spark, settings, "events_agg_1m"))
    assert len(one_minute) == 2 * 34
    assert (one_minute[(at(7), "b")]["count"], one_minute[(at(7), "b")].missing) == (1, 1)

    # The heartbeat counted the late events, and no query dropped anything by watermark.
    assert counts["late"] == len(late)
    assert counts["quarantined"] == 3
    assert counts["dropped_by_watermark"] == 0
    assert counts["duplicates_dropped"] == 2 * 10 + 1  # minutes 20-29 replayed, a-40 twice
    # Every table the job writes is registered (the others come from data_quality and scoring).
    written_by_the_job = set(lake.TABLES) - {"quality_results", "predictions", "ml_drift"}
    assert set(lake.register_tables(spark, settings)) == written_by_the_job


def test_recomputation_overwrites_exactly_its_dates(spark: Any, tmp_path: Path) -> None:
    settings = local_settings(tmp_path)
    day2 = DAY + dt.timedelta(days=1)
    rows = [
        {"event_id": f"a-{d}-{m}", "event_time": T0.replace(day=d) + dt.timedelta(minutes=m)}
        for d in (20, 21)
        for m in range(3)
    ]
    raw_frame(spark, rows).write.partitionBy("event_date", "event_hour").parquet(
        settings.raw_events_path
    )
    with pytest.raises(RecomputeRefused, match="no window yet"):
        recompute_to_lake(spark, settings, DAY, DAY)
    written = recompute_to_lake(spark, settings, DAY, day2, force=True)
    assert written == {
        "events_agg_1m": {"2026-11-20": 3, "2026-11-21": 3},
        "events_agg_5m": {"2026-11-20": 7, "2026-11-21": 7},
    }
    # The stream has closed windows up to 10:02 on day 2: day 1 is safe, day 2 is not.
    assert recompute_to_lake(spark, settings, DAY, DAY) == {
        "events_agg_1m": {"2026-11-20": 3},
        "events_agg_5m": {"2026-11-20": 7},
    }
    with pytest.raises(RecomputeRefused, match="may still write windows of 2026-11-21"):
        recompute_to_lake(spark, settings, day2, day2)
    path = lake.aggregate_path(settings, "events_agg_1m")
    before = spark.read.parquet(path).where(f"window_date = '{day2}'").collect()
    # Day 1's raw events go away: its aggregate partitions go too, day 2's stay as they were.
    shutil.rmtree(Path(settings.raw_events_path.removeprefix("file://")) / f"event_date={DAY}")
    assert recompute_to_lake(spark, settings, DAY, DAY) == {
        "events_agg_1m": {},
        "events_agg_5m": {},
    }
    assert spark.read.parquet(path).where(f"window_date = '{DAY}'").count() == 0
    assert spark.read.parquet(path).where(f"window_date = '{day2}'").collect() == before


# --- the documented layout -------------------------------------------------------------------


def documented_query() -> str:
    text = LAKE_LAYOUT_DOC.read_text()
    match = re.search(r"<!-- example-query -->\s*```sql\n(.*?)```", text, re.S)
    assert match, "docs/lake-layout.md lost its example query block"
    return match.group(1).strip()


def test_the_documented_query_prunes_partitions_and_pushes_the_source_filter(
    spark: Any, tmp_path: Path
) -> None:
    settings = local_settings(tmp_path)
    query = documented_query()
    day = re.search(r"event_date = DATE'(\d{4}-\d{2}-\d{2})'", query)
    source = re.search(r"source = '([^']+)'", query)
    assert day and source, query
    when = dt.datetime.fromisoformat(day.group(1)).replace(hour=12, tzinfo=dt.UTC)
    rows = [
        {"event_id": f"{s}-{d}", "source": s, "event_time": when + dt.timedelta(days=d)}
        for s in (source.group(1), "other/series")
        for d in (-1, 0, 1)
    ]
    events = clean_events(raw_frame(spark, rows))
    events.write.partitionBy("event_date").parquet(lake.curated_events_path(settings))
    lake.register_tables(spark, settings)
    plan = spark.sql(query)._jdf.queryExecution().executedPlan().toString()
    assert re.search(r"PartitionFilters: \[[^\]]*event_date", plan), plan
    assert re.search(r"PushedFilters: \[[^\]]*EqualTo\(source,", plan), plan
    assert spark.sql(query).collect()[0]["events"] == 1
