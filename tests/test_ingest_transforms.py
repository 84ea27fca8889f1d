"""The ingest transforms, the ingest job's sinks and the lake's SQL, on a local Spark.

No Kafka and no HDFS: frames with Kafka's columns are made by hand, and the lake is a local
directory (file://).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from lakepulse import lake
from lakepulse.events import FIELD_NAMES, Event
from lakepulse.settings import HdfsSettings, PathSettings, Settings, SparkSettings
from lakepulse.spark_session import SparkSetupError, build_spark, spark_submit_conf
from lakepulse.spark_session import spark_submit_jars as submit_jars
from lakepulse.transforms.ingest import (
    event_schema,
    invalid_events,
    parse_kafka_records,
    valid_events,
)

pytestmark = pytest.mark.streaming

PROJECT_ROOT = Path(__file__).resolve().parents[1]
KAFKA_SCHEMA = (
    "key binary, value binary, topic string, partition int, offset long, "
    "timestamp timestamp, timestampType int"
)
KAFKA_TIME = dt.datetime(2024, 5, 1, 12, 0, 0)


def local_settings(root: Path) -> Settings:
    return Settings(
        paths=PathSettings(data_dir=root / "data", jars_dir=root / "no-jars"),
        hdfs=HdfsSettings(fs_uri_override="file://", lake_root=str(root / "lake")),
        spark=SparkSettings(master="local[2]", shuffle_partitions=2, trigger_seconds=1),
    )


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    # Python workers (the raw query's lateness stamp runs pandas) use this interpreter, as
    # spark-submit's spark.pyspark.python does; otherwise Spark starts "python3" from PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    settings = local_settings(tmp_path_factory.mktemp("session"))
    session = build_spark(settings, "test_ingest_transforms")  # local[2], 2 partitions, UTC
    assert session.conf.get("spark.ui.enabled") == "false"
    yield session
    session.stop()


DROP = object()  # marks a field to leave out of event_json


def event_json(**overrides: Any) -> str:
    payload: dict[str, Any] = {
        "schema_version": 1,
        "event_id": "e-1",
        "source": "machine_temp",
        "event_time": "2014-04-10T00:02:00Z",
        "value": 71.5,
    }
    payload.update(overrides)
    return json.dumps({k: v for k, v in payload.items() if v is not DROP})


def kafka_rows(values: list[bytes | str | None], start_offset: int = 0) -> list[tuple]:
    return [
        (
            b"machine_temp",
            value.encode() if isinstance(value, str) else value,
            "events",
            offset % 3,
            offset,
            KAFKA_TIME,
            0,
        )
        for offset, value in enumerate(values, start=start_offset)
    ]


def kafka_frame(spark: Any, values: list[bytes | str | None]) -> Any:
    return spark.createDataFrame(kafka_rows(values), KAFKA_SCHEMA)


# --- pure transforms -------------------------------------------------------------------------


def test_event_schema_follows_the_contract() -> None:
    schema = event_schema()
    assert tuple(schema.fieldNames()) == FIELD_NAMES
    assert {f.name: f.dataType.simpleString() for f in schema.fields} == {
        "schema_version": "int",
        "event_id": "string",
        "source": "string",
        "event_time": "string",  # validated and converted by parse_kafka_records
        "value": "double",
        "is_anomaly": "boolean",
        "source_time": "string",  # the replayed series' own time, kept as given
    }


def test_valid_events_have_the_raw_table_types_and_a_utc_event_date(spark: Any) -> None:
    produced = Event.create(
        "nyc_taxi", dt.datetime(2014, 4, 10, 23, 59, 59, 500_000, tzinfo=dt.UTC), 12.5
    )
    values = [
        produced.to_json_bytes(),
        event_json(event_id="e-2", value=None, is_anomaly=True),
        event_json(event_id="e-3", event_time="2014-04-11T00:00:00.001Z", extra_field="ignored"),
    ]
    # Late on 10 April UTC is 11 April in Tokyo: the partition must not follow the session.
    spark.conf.set("spark.sql.session.timeZone", "Asia/Tokyo")
    try:
        rows = valid_events(parse_kafka_records(kafka_frame(spark, values))).collect()
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")
    schema = valid_events(parse_kafka_records(kafka_frame(spark, values))).schema
    assert {f.name: f.dataType.simpleString() for f in schema.fields} == {
        "event_id": "string",
        "source": "string",
        "event_time": "timestamp",
        "value": "double",
        "is_anomaly": "boolean",
        "schema_version": "int",
        "kafka_topic": "string",
        "kafka_partition": "int",
        "kafka_offset": "bigint",
        "kafka_timestamp": "timestamp",
        "ingested_at": "timestamp",
        "event_date": "date",
        "event_hour": "int",
        **({"source_time": "timestamp"} if "source_time" in FIELD_NAMES else {}),
    }
    by_id = {row.event_id: row for row in rows}
    assert len(by_id) == 3
    first = by_id[produced.event_id]
    assert first.source == "nyc_taxi"
    assert first.value == 12.5
    assert first.is_anomaly is None
    assert first.event_date == dt.date(2014, 4, 10)
    assert first.event_hour == 23  # UTC, not the session's Tokyo hour (8)
    assert first.kafka_offset == 0
    assert first.kafka_topic == "events"
    assert by_id["e-2"].value is None
    assert by_id["e-2"].is_anomaly is True
    assert by_id["e-3"].event_date == dt.date(2014, 4, 11)


def test_valid_event_time_is_the_utc_instant(spark: Any) -> None:
    row = valid_events(parse_kafka_records(kafka_frame(spark, [event_json()]))).first()
    # Python renders the timestamp in local time; compare instants.
    assert row.event_time.astimezone(dt.UTC) == dt.datetime(2014, 4, 10, 0, 2, tzinfo=dt.UTC)


MALFORMED: dict[str, bytes | str | None] = {
    "empty message": b"",
    "not valid UTF-8": b'{"event_id": "\xff\xfe"}',
    "not valid JSON": '{"schema_version": 1, "event_id": ',
    "not a JSON object": '[{"schema_version": 1}]',
    "missing schema_version": event_json(schema_version=DROP),
    "schema_version is not an integer": event_json(schema_version="1"),
    "unsupported schema_version 2": event_json(schema_version=2),
    "missing event_id": event_json(event_id=DROP),
    "missing source": event_json(source=""),
    "missing event_time": event_json(event_time=None),
    "event_time is not an ISO-8601 timestamp": event_json(event_time="10/04/2014 00:02"),
    "value is not a number": event_json(value="71.5"),
    "missing value": event_json(value=DROP),
    "value is not a finite number": event_json(value=float("nan")),
    "is_anomaly is not a boolean": event_json(is_anomaly="yes"),
}
if "source_time" in FIELD_NAMES:
    MALFORMED["source_time is not an ISO-8601 timestamp"] = event_json(source_time="yesterday")
NOT_UTC_OR_IMPOSSIBLE = [
    event_json(event_time="2014-04-10T02:02:00+02:00"),  # ISO-8601, but not the contract's UTC
    event_json(event_time="2014-02-30T00:00:00Z"),
    event_json(event_time="2014-04-10"),
    event_json(event_time=1397088120),
]


def test_each_malformed_kind_gets_its_reason(spark: Any) -> None:
    values = [*MALFORMED.values(), None, *NOT_UTC_OR_IMPOSSIBLE]
    expected = [*MALFORMED, "empty message"] + ["event_time is not an ISO-8601 timestamp"] * 4
    rows = invalid_events(parse_kafka_records(kafka_frame(spark, values))).collect()
    got = {row.kafka_offset: row.reason for row in rows}
    assert [got.get(offset) for offset in range(len(values))] == expected


def test_nothing_is_lost_and_the_original_bytes_are_kept(spark: Any) -> None:
    values = [event_json(event_id=f"e-{i}") for i in range(5)] + list(MALFORMED.values())
    parsed = parse_kafka_records(kafka_frame(spark, values)).cache()
    try:
        valid = valid_events(parsed).collect()
        invalid = invalid_events(parsed).collect()
    finally:
        parsed.unpersist()
    assert len(valid) == 5
    assert len(valid) + len(invalid) == len(values)
    assert {r.kafka_offset for r in valid} | {r.kafka_offset for r in invalid} == set(
        range(len(values))
    )
    for row in invalid:
        original = values[row.kafka_offset]
        original = original.encode() if isinstance(original, str) else original
        assert bytes(row.raw_bytes) == original
        assert row.kafka_key == "machine_temp"
        assert bytes(row.raw_key) == b"machine_temp"
        # Python hands timestamps back as naive local times.
        assert row.quarantine_date == row.quarantined_at.astimezone(dt.UTC).date()
    broken_utf8 = next(r for r in invalid if r.reason == "not valid UTF-8")
    assert broken_utf8.raw_value == '{"event_id": "\ufffd\ufffd"}'


# --- the ingest job's sinks, on a local lake ---------------------------------------------------


@pytest.fixture(scope="module")
def job() -> ModuleType:
    from lakepulse.streaming import ingest_job

    return ingest_job


def write_kafka_batch(spark: Any, folder: Path, name: str, values: list[Any], start: int) -> None:
    """One Parquet file of Kafka-shaped records, as the stand-in source's next arrival."""
    frame = spark.createDataFrame(kafka_rows(values, start_offset=start), KAFKA_SCHEMA)
    frame.coalesce(1).write.parquet(str(folder / name))


def run_once(spark: Any, job: ModuleType, settings: Settings, source: Path) -> None:
    records = spark.readStream.schema(KAFKA_SCHEMA).parquet(f"{source}/*")
    # No Kafka here: the dead letters go to a Parquet folder instead of the DLQ topic.
    dlq = settings.hdfs.lake_path("_test_dlq")
    queries = job.start_queries(records, settings, once=True, dlq_path=dlq)
    assert [q.name for q in queries] == list(job.QUERIES)
    job.wait_for(spark, queries, until_all=True, max_seconds=120)


def test_ingest_sinks_write_the_lake_exactly_once(
    spark: Any, job: ModuleType, tmp_path: Path
) -> None:
    settings = local_settings(tmp_path)
    source = tmp_path / "kafka"
    beats: list[dict[str, Any]] = []
    listener = job.HeartbeatListener(spark, lambda data: beats.append(json.loads(data)))
    spark.streams.addListener(listener)
    try:
        good = [event_json(event_id=f"e-{i}", value=float(i)) for i in range(6)]
        write_kafka_batch(spark, source, "b0", [*good, "not json", None], start=0)
        run_once(spark, job, settings, source)
        # A restart with nothing new must not add rows (the checkpoint remembers the files).
        run_once(spark, job, settings, source)
        write_kafka_batch(spark, source, "b1", [event_json(event_id="e-new")], start=8)
        run_once(spark, job, settings, source)

        # A file the sink never committed (a crashed batch's leftover) must stay invisible.
        raw_root = Path(settings.raw_events_path.removeprefix("file://"))
        partition = raw_root / "event_date=2014-04-10" / "event_hour=0"
        stray = spark.createDataFrame([("stray",)], "event_id string")
        stray.coalesce(1).write.mode("append").parquet(str(partition))
        assert spark.read.parquet(str(partition)).where("event_id = 'stray'").count() == 1

        columns, rows = lake.run_sql(
            settings,
            "SELECT event_id, value, event_date, event_time FROM raw_events ORDER BY kafka_offset",
            spark=spark,
        )
        assert columns == ["event_id", "value", "event_date", "event_time"]
        assert [r[0] for r in rows] == [f"e-{i}" for i in range(6)] + ["e-new"]
        assert rows[0][2] == dt.date(2014, 4, 10)
        assert rows[0][3] == dt.datetime(2014, 4, 10, 0, 2, tzinfo=dt.UTC)  # aware, UTC

        _, quarantined = lake.run_sql(
            settings,
            "SELECT reason, CAST(raw_bytes AS STRING), kafka_offset FROM quarantined_events "
            "ORDER BY kafka_offset",
            spark=spark,
        )
        assert quarantined == [("not valid JSON", "not json", 6), ("empty message", None, 7)]

        # Nothing late, no window closed yet (every event is at 00:02): no data in those.
        assert lake.register_tables(spark, settings) == [
            "raw_events",
            "quarantined_events",
            "events",
        ]

        # Listener events arrive asynchronously.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(b["numInputRows"] for b in beats):
            time.sleep(0.5)
    finally:
        spark.streams.removeListener(listener)
    beat = next(b for b in reversed(beats) if b["numInputRows"])
    assert beat["job"] == "ingest_events"
    assert beat["app_id"] == spark.sparkContext.applicationId
    assert beat["updated_at"].endswith("Z")
    assert {"pid", "host", "started_at", "batch_id", "inputRowsPerSecond"} <= beat.keys()
    assert job.RAW_QUERY in beat["queries"]


def test_heartbeat_survives_a_failing_filesystem(spark: Any, job: ModuleType) -> None:
    def unavailable(data: bytes) -> None:
        raise ConnectionError("NameNode is away")

    listener = job.HeartbeatListener(spark, unavailable)
    listener.beat("progress")  # logs, does not raise
    listener.beat("idle")


def test_heartbeat_and_checkpoints_live_in_the_lake(job: ModuleType) -> None:
    settings = Settings()
    assert job.heartbeat_path(settings) == "/lakepulse/_status/ingest_events.json"
    assert job.checkpoint_root(settings) == (
        "hdfs://127.0.0.1:8020/lakepulse/_checkpoints/ingest_events"
    )


# --- lake SQL ---------------------------------------------------------------------------------


def test_missing_table_lists_the_tables_that_exist(spark: Any, tmp_path: Path) -> None:
    settings = local_settings(tmp_path)
    events = valid_events(parse_kafka_records(kafka_frame(spark, [event_json()])))
    events.write.partitionBy("event_date").parquet(settings.raw_events_path)
    with pytest.raises(lake.LakeError) as caught:
        lake.run_sql(settings, "SELECT * FROM raw_event", spark=spark)
    message = str(caught.value)
    assert "raw_event" in message
    assert "Tables in the lake: raw_events" in message
    assert "not written yet: quarantined_events" in message


def test_sql_command_prints_a_table_and_an_exit_code(
    spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    settings = local_settings(tmp_path)
    events = valid_events(parse_kafka_records(kafka_frame(spark, [event_json()])))
    events.write.partitionBy("event_date").parquet(settings.raw_events_path)
    # sql_command starts (and stops) its own session; lend it the shared one.
    monkeypatch.setattr("lakepulse.spark_session.build_spark", lambda *a, **k: spark)
    monkeypatch.setattr(spark, "stop", lambda: None)

    output = io.StringIO()
    query = "SELECT source, count(*) AS n FROM raw_events GROUP BY source"
    assert lake.sql_command(settings, query, output) == 0
    assert output.getvalue().splitlines() == [
        "source       | n",
        "-------------+--",
        "machine_temp | 1",
        "(1 row)",
    ]
    assert lake.sql_command(settings, "SELECT * FROM nope", io.StringIO()) == 1
    assert "table `nope` does not exist" in capsys.readouterr().err


def test_format_table_aligns_columns() -> None:
    at = dt.datetime(2014, 4, 10, 0, 2, tzinfo=dt.UTC)
    text = lake.format_table(
        ["source", "value", "raw", "at"],
        [("a", 1.5, b"\x00\x01", at), ("longer_name", None, None, None), ("b", 10, b"", at)],
    )
    assert text.splitlines() == [
        "source      | value | raw    | at",
        "------------+-------+--------+---------------------",
        "a           |   1.5 | 0x0001 | 2014-04-10 00:02:00Z",
        "longer_name |  NULL | NULL   | NULL",
        "b           |    10 | 0x     | 2014-04-10 00:02:00Z",
    ]


# --- spark-submit configuration ---------------------------------------------------------------


def test_spark_submit_conf_matches_the_settings(tmp_path: Path) -> None:
    settings = Settings()
    conf = spark_submit_conf(settings)
    assert conf["spark.sql.shuffle.partitions"] == str(settings.spark.shuffle_partitions)
    assert conf["spark.sql.session.timeZone"] == "UTC"
    assert conf["spark.hadoop.fs.defaultFS"] == "hdfs://127.0.0.1:8020/"
    assert conf["spark.driver.memory"] == settings.spark.driver_memory
    assert "-DHADOOP_USER_NAME=lakepulse" in conf["spark.driver.extraJavaOptions"]
    assert conf["spark.ui.enabled"] == "false"


def test_missing_kafka_jars_say_how_to_get_them(tmp_path: Path) -> None:
    settings = local_settings(tmp_path)
    with pytest.raises(SparkSetupError, match="make jars"):
        build_spark(settings, "never-started", with_kafka=True)
    assert submit_jars(settings, required=False) == []
    jars = tmp_path / "no-jars" / "spark-kafka"
    jars.mkdir(parents=True)
    (jars / "spark-sql-kafka-0-10_2.13-4.2.0.jar").touch()
    (jars / "README.txt").touch()
    assert submit_jars(settings) == [str(jars / "spark-sql-kafka-0-10_2.13-4.2.0.jar")]
