"""The ingest streaming job: Kafka events topic -> the lake's zones, exactly once.

Five streaming queries in one driver, each with its own checkpoint:

- ``ingest_events_raw``: Kafka -> valid events -> raw zone (file sink, partitioned by
  ``event_date``/``event_hour``). Each event is stamped with the event-time watermark in force
  when it arrived and a ``late`` flag (:mod:`lakepulse.transforms.lateness`).
- ``ingest_events_quarantine``: Kafka -> malformed records -> quarantine (file sink).
- ``ingest_events_dlq``: the quarantine table as a file stream -> the dead-letter Kafka topic.
  Spark's Kafka sink is at-least-once: after a crash a dead letter may be published twice; the
  quarantine table is the exactly-once record.
- ``ingest_events_curate``: the raw table as a file stream -> on-time events, cleaned,
  deduplicated within the watermark -> ``events`` (sorted by source within each file), and
  late events -> ``late_events``.
- ``ingest_events_aggregate``: the raw table as a file stream -> the same curated stream ->
  per-source windowed statistics -> ``events_agg_1m`` and ``events_agg_5m`` (append mode: a
  window is written once, when the watermark has passed its end).

Spark's file sink commits a batch's files in its ``_spark_metadata`` log together with the
checkpoint, so a replayed batch never shows up twice for readers, and a file stream over that
directory reads each committed batch exactly once: Kafka is read only by the first two queries.
The last two write through ``foreachBatch`` with idempotent per-batch files
(:mod:`lakepulse.streaming.batch_output`) because a streaming file sink can neither sort nor
share its directory with a batch job that rewrites partitions (the aggregates' recomputation).

A :class:`HeartbeatListener` reports progress to HDFS, which is how Airflow's supervisor and
``cluster_health`` know the job is alive. ``spark/ingest_events.py`` is the spark-submit entry.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.streaming import DataStreamWriter, StreamingQuery, StreamingQueryListener

from lakepulse.lake import (
    aggregate_path,
    curated_events_path,
    late_events_path,
    quarantined_events_path,
)
from lakepulse.log import get_logger
from lakepulse.settings import Settings
from lakepulse.spark_session import SparkSetupError, kafka_jars
from lakepulse.streaming.batch_output import ensure_dir, publish_batch, query_run_token
from lakepulse.streaming_status import INGEST_JOB
from lakepulse.streaming_status import heartbeat_path as status_file_path
from lakepulse.transforms.curate import (
    AGGREGATE_PARTITION_COLUMN,
    AGGREGATES,
    EVENTS_PARTITION_COLUMN,
    EVENTS_SORT_COLUMNS,
    LATE_PARTITION_COLUMN,
    aggregate_windows,
    curated_stream,
    late_events,
)
from lakepulse.transforms.ingest import (
    QUARANTINE_PARTITION_COLUMN,
    RAW_PARTITION_COLUMNS,
    dead_letters,
    invalid_events,
    parse_kafka_records,
    valid_events,
)
from lakepulse.transforms.lateness import LATE_COLUMN, stamp_lateness

COMPONENT = INGEST_JOB
# Spark 4.2 still reports a missing Kafka connector under a legacy condition name.
_SOURCE_NOT_FOUND = {"_LEGACY_ERROR_TEMP_1140", "DATA_SOURCE_NOT_FOUND"}
RAW_QUERY = "ingest_events_raw"
QUARANTINE_QUERY = "ingest_events_quarantine"
DLQ_QUERY = "ingest_events_dlq"
CURATE_QUERY = "ingest_events_curate"
AGGREGATE_QUERY = "ingest_events_aggregate"
QUERIES = (RAW_QUERY, QUARANTINE_QUERY, DLQ_QUERY, CURATE_QUERY, AGGREGATE_QUERY)
# Observed metrics (Spark's observe()) the heartbeat adds up.
INGEST_METRICS = "ingest"
QUARANTINE_METRICS = "quarantine"
_TABLE = "_table"
COUNTS = ("ingested", "late", "quarantined", "duplicates_dropped", "dropped_by_watermark")

log = get_logger(COMPONENT)


def heartbeat_path(settings: Settings) -> str:
    """Plain HDFS path of the job's status file (for WebHdfs and the health check)."""
    return status_file_path(settings.status_path, COMPONENT)


def checkpoint_root(settings: Settings) -> str:
    return f"{settings.checkpoints_path}/{COMPONENT}"


def checkpoint_path(settings: Settings, query: str) -> str:
    return f"{checkpoint_root(settings)}/{query}"


def dlq_topic(settings: Settings) -> str:
    """The dead-letter topic: ``kafka.dlq_topic`` when set, else ``<events topic>.dlq``."""
    return getattr(settings.kafka, "dlq_topic", "") or f"{settings.kafka.events_topic}.dlq"


def read_kafka(
    spark: SparkSession, settings: Settings, *, fail_on_data_loss: bool = True
) -> DataFrame:
    """The events topic as a stream with Kafka's columns (key, value, topic, partition, ...)."""
    reader = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", settings.kafka.bootstrap_servers)
        .option("subscribe", settings.kafka.events_topic)
        # Only used on the first start (no checkpoint yet): take everything still retained.
        .option("startingOffsets", "earliest")
        # Offsets gone before they were read (retention, a recreated topic) stop the job
        # instead of silently leaving a hole in the lake; --allow-data-loss accepts it.
        .option("failOnDataLoss", str(fail_on_data_loss).lower())
        .option("maxOffsetsPerTrigger", str(settings.spark.max_offsets_per_trigger))
    )
    try:
        return reader.load()
    except AnalysisException as exc:
        if exc.getCondition() not in _SOURCE_NOT_FOUND:
            raise
        # Under spark-submit the driver JVM is up before this code runs, so spark.jars set
        # by build_spark reaches the executors but not the driver: --jars is needed.
        raise SparkSetupError(
            "Spark's Kafka source is not on the driver's classpath. Submit with "
            f"--jars {','.join(kafka_jars(settings))} "
            "(lakepulse.spark_session.spark_submit_jars)."
        ) from None


def _trigger(writer: DataStreamWriter, settings: Settings, once: bool) -> DataStreamWriter:
    if once:
        return writer.trigger(availableNow=True)
    return writer.trigger(processingTime=f"{settings.spark.trigger_seconds} seconds")


def ingest_frames(records: DataFrame, settings: Settings) -> tuple[DataFrame, DataFrame]:
    """(raw rows stamped with lateness, quarantine rows) of a stream with Kafka's columns."""
    parsed = parse_kafka_records(records)
    raw = stamp_lateness(valid_events(parsed), settings.spark.watermark_delay).observe(
        INGEST_METRICS,
        F.count(F.lit(1)).alias("events"),
        F.count_if(F.col(LATE_COLUMN)).alias("late"),
    )
    quarantine = invalid_events(parsed).observe(
        QUARANTINE_METRICS, F.count(F.lit(1)).alias("quarantined")
    )
    return raw, quarantine


def _file_sink(
    frame: DataFrame, name: str, path: str, partition_by: Sequence[str], settings: Settings
) -> DataStreamWriter:
    return (
        # One task, so one file per partition per batch: HDFS small files are the real cost
        # at this volume. One task parsed and wrote 200k events (the default
        # maxOffsetsPerTrigger) in ~3 s on the loaded 2-core machine, 2 tasks no faster.
        frame.coalesce(1)
        .writeStream.queryName(name)
        .format("parquet")
        .outputMode("append")
        .partitionBy(*partition_by)
        .option("path", path)
        .option("checkpointLocation", checkpoint_path(settings, name))
    )


def _lake_stream(
    spark: SparkSession, path: str, schema: T.StructType, partition_by: Sequence[str]
) -> DataFrame:
    """A file stream over a file sink's directory: committed batches, whole and in order.

    No ``maxFilesPerTrigger``: a batch of this stream must never hold part of a sink batch
    (the no-late-drop guarantee of lakepulse.transforms.lateness depends on it). The empty
    ``_spark_metadata`` folder made here (the sink makes it too, a moment later) tells the
    source to list files from the sink's log, never uncommitted files.

    The partition columns go last in the schema, where Spark puts them when it reads the
    files: a source started on a still empty directory cannot discover them, and a schema in
    another order then fails on the first batch ("Invalid batch" or an optimizer error).
    """
    ensure_dir(spark, f"{path}/_spark_metadata")
    data = [f for f in schema.fields if f.name not in partition_by]
    partitions = [schema[name] for name in partition_by]
    return spark.readStream.schema(T.StructType(data + partitions)).parquet(path)


def _publisher(
    settings: Settings, query: str, tables: dict[str, tuple[str, list[str], list[str], list[str]]]
) -> Callable[[DataFrame, int], None]:
    """foreachBatch function: split the batch by ``_table`` and publish each part idempotently.

    ``tables``: name -> (path, columns, partition columns, sort columns).
    """
    run: dict[str, str] = {}

    def publish(batch: DataFrame, batch_id: int) -> None:
        batch.persist()  # several writes must not run the stateful plan again
        try:
            if batch.isEmpty():
                return
            if "token" not in run:
                run["token"] = query_run_token(batch.sparkSession, checkpoint_path(settings, query))
            for name, (path, columns, partition_by, sort_by) in tables.items():
                rows = batch.where(F.col(_TABLE) == name).select(*columns)
                publish_batch(
                    rows,
                    path,
                    run=run["token"],
                    batch_id=batch_id,
                    partition_by=partition_by,
                    sort_by=sort_by,
                )
        finally:
            batch.unpersist()

    return publish


def start_lake_queries(
    spark: SparkSession,
    settings: Settings,
    raw_schema: T.StructType,
    quarantine_schema: T.StructType,
    *,
    once: bool = False,
    dlq_path: str | None = None,
) -> list[StreamingQuery]:
    """Start the queries that read the lake's raw and quarantine tables (not Kafka).

    ``dlq_path``: write the dead letters as Parquet there instead of to Kafka (tests).
    """
    delay = settings.spark.watermark_delay
    quarantine = _lake_stream(
        spark, quarantined_events_path(settings), quarantine_schema, [QUARANTINE_PARTITION_COLUMN]
    )
    # One source per query, shared by its branches: each micro-batch of the query reads the
    # same raw batches in every branch.
    raw = _lake_stream(spark, settings.raw_events_path, raw_schema, RAW_PARTITION_COLUMNS)
    letters = dead_letters(quarantine).writeStream.queryName(DLQ_QUERY)
    if dlq_path is None:
        letters = (
            letters.format("kafka")
            .option("kafka.bootstrap.servers", settings.kafka.bootstrap_servers)
            .option("kafka.acks", "all")
            .option("topic", dlq_topic(settings))
        )
    else:
        letters = letters.format("parquet").option("path", dlq_path)
    letters = letters.option("checkpointLocation", checkpoint_path(settings, DLQ_QUERY))

    events = curated_stream(raw, delay)
    late = late_events(raw)
    curated = events.withColumn(_TABLE, F.lit("events")).unionByName(
        late.withColumn(_TABLE, F.lit("late_events")), allowMissingColumns=True
    )
    curate = (
        curated.writeStream.queryName(CURATE_QUERY)
        .foreachBatch(
            _publisher(
                settings,
                CURATE_QUERY,
                {
                    "events": (
                        curated_events_path(settings),
                        events.columns,
                        [EVENTS_PARTITION_COLUMN],
                        list(EVENTS_SORT_COLUMNS),
                    ),
                    "late_events": (
                        late_events_path(settings),
                        late.columns,
                        [LATE_PARTITION_COLUMN],
                        ["source", "event_time"],
                    ),
                },
            )
        )
        .option("checkpointLocation", checkpoint_path(settings, CURATE_QUERY))
    )

    windows = {name: aggregate_windows(events, spec) for name, spec in AGGREGATES.items()}
    branches = [frame.withColumn(_TABLE, F.lit(name)) for name, frame in windows.items()]
    aggregates = branches[0]
    for branch in branches[1:]:
        aggregates = aggregates.unionByName(branch)
    aggregate = (
        aggregates.writeStream.queryName(AGGREGATE_QUERY)
        .outputMode("append")
        .foreachBatch(
            _publisher(
                settings,
                AGGREGATE_QUERY,
                {
                    name: (
                        aggregate_path(settings, name),
                        frame.columns,
                        [AGGREGATE_PARTITION_COLUMN],
                        ["source", "window_start"],
                    )
                    for name, frame in windows.items()
                },
            )
        )
        .option("checkpointLocation", checkpoint_path(settings, AGGREGATE_QUERY))
    )
    queries: list[StreamingQuery] = []
    try:
        for writer in (letters, curate, aggregate):
            queries.append(_trigger(writer, settings, once).start())
    except Exception:
        for query in queries:
            query.stop()
        raise
    return queries


def start_queries(
    records: DataFrame,
    settings: Settings,
    *,
    once: bool = False,
    dlq_path: str | None = None,
) -> list[StreamingQuery]:
    """Start every query of the job on a stream with Kafka's columns (see the module doc).

    With ``once`` (availableNow triggers) the Kafka queries run to the end first, so that the
    lake queries then see everything they wrote; the returned queries may already be done.
    ``dlq_path``: write the dead letters as Parquet there instead of to Kafka (tests).
    """
    spark = records.sparkSession
    raw, quarantine = ingest_frames(records, settings)
    queries: list[StreamingQuery] = []
    try:
        for writer in (
            _file_sink(raw, RAW_QUERY, settings.raw_events_path, RAW_PARTITION_COLUMNS, settings),
            _file_sink(
                quarantine,
                QUARANTINE_QUERY,
                quarantined_events_path(settings),
                [QUARANTINE_PARTITION_COLUMN],
                settings,
            ),
        ):
            queries.append(_trigger(writer, settings, once).start())
        if once:
            wait_for(spark, queries, until_all=True)
        queries += start_lake_queries(
            spark, settings, raw.schema, quarantine.schema, once=once, dlq_path=dlq_path
        )
    except Exception:
        for query in queries:
            if query.isActive:
                query.stop()
        raise
    return queries


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class HeartbeatListener(StreamingQueryListener):
    """Writes the job's status JSON on every query event, including idle ones.

    The health check reads ``updated_at``; the top-level batch figures are the primary
    (raw events) query's. ``counts`` adds up, since this driver started: events ingested,
    ``late`` ones (also ``late_events_last_batch``), quarantined records, duplicates the
    curated stream dropped, and ``dropped_by_watermark`` by the lake queries, which must stay
    0 (late events are routed to ``late_events`` before any watermark could drop them; a
    non-zero value means events were lost, e.g. after resetting the raw checkpoint alone).
    A failed write is logged, never raised: HDFS being away for a moment must not stop the
    ingestion.
    """

    def __init__(
        self, spark: SparkSession, write: Callable[[bytes], None], *, primary: str = RAW_QUERY
    ) -> None:
        self._write = write
        self._primary = primary
        self._lock = threading.RLock()  # callbacks and the driver's own beats
        self._failing = False
        self._queries: dict[str, dict[str, Any]] = {}  # by query id
        self._counts = dict.fromkeys(COUNTS, 0)
        self._late_last_batch: int | None = None
        self._base = {
            "job": COMPONENT,
            "app_id": spark.sparkContext.applicationId,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": _utc_now(),
        }

    def _update(self, query_id: Any, event: str, **fields: Any) -> None:
        with self._lock:
            state = self._queries.setdefault(str(query_id), {"id": str(query_id)})
            state.update(fields, status=event, updated_at=_utc_now())
            self.beat(event)

    def beat(self, event: str = "heartbeat") -> None:
        """Write the status file now (also called by the driver at start and stop)."""
        with self._lock:
            self._beat(event)

    def _beat(self, event: str) -> None:
        queries = {
            state.get("name") or query_id: state for query_id, state in self._queries.items()
        }
        primary = queries.get(self._primary, {})
        status = {
            **self._base,
            "event": event,
            "updated_at": _utc_now(),
            "batch_id": primary.get("batch_id"),
            "numInputRows": primary.get("numInputRows"),
            "inputRowsPerSecond": primary.get("inputRowsPerSecond"),
            "processedRowsPerSecond": primary.get("processedRowsPerSecond"),
            "counts": dict(self._counts),
            "late_events_last_batch": self._late_last_batch,
            "queries": queries,
        }
        try:
            self._write(orjson.dumps(status))  # NaN rates become null
        except Exception as exc:
            if not self._failing:
                log.warning("cannot write the heartbeat; will keep trying", error=str(exc))
            self._failing = True
            return
        if self._failing:
            log.info("heartbeat written again")
        self._failing = False

    def onQueryStarted(self, event: Any) -> None:
        self._update(event.id, "started", name=event.name, run_id=str(event.runId))

    def onQueryProgress(self, event: Any) -> None:
        progress = event.progress
        observed = {name: row.asDict() for name, row in (progress.observedMetrics or {}).items()}
        operators = progress.stateOperators or []
        dropped = sum(op.numRowsDroppedByWatermark for op in operators)
        duplicates = sum(
            int((op.customMetrics or {}).get("numDroppedDuplicateRows", 0)) for op in operators
        )
        with self._lock:
            ingest = observed.get(INGEST_METRICS)
            if ingest is not None:
                self._counts["ingested"] += ingest.get("events") or 0
                self._counts["late"] += ingest.get("late") or 0
                self._late_last_batch = ingest.get("late") or 0
            quarantine = observed.get(QUARANTINE_METRICS)
            if quarantine is not None:
                self._counts["quarantined"] += quarantine.get("quarantined") or 0
            self._counts["dropped_by_watermark"] += dropped
            if progress.name == CURATE_QUERY:
                self._counts["duplicates_dropped"] += duplicates
            self._update(
                progress.id,
                "progress",
                name=progress.name,
                run_id=str(progress.runId),
                batch_id=progress.batchId,
                numInputRows=progress.numInputRows,
                inputRowsPerSecond=progress.inputRowsPerSecond,
                processedRowsPerSecond=progress.processedRowsPerSecond,
                progress_at=progress.timestamp,
                observed=observed or None,
                watermark=(progress.eventTime or {}).get("watermark"),
                dropped_by_watermark=dropped,
            )

    def onQueryIdle(self, event: Any) -> None:
        self._update(event.id, "idle", idle_since=event.timestamp)

    def onQueryTerminated(self, event: Any) -> None:
        error = (event.exception or "")[:2000] or None
        self._update(event.id, "failed" if error else "stopped", error=error)


def webhdfs_writer(settings: Settings) -> Callable[[bytes], None]:
    from lakepulse.webhdfs import WebHdfs

    # A short timeout: the listener thread must not hang on a NameNode that is away.
    client = WebHdfs(settings.hdfs, timeout=5.0)
    path = heartbeat_path(settings)
    return lambda data: client.write_bytes(path, data, overwrite=True)


def wait_for(
    spark: SparkSession,
    queries: Sequence[StreamingQuery],
    *,
    until_all: bool,
    max_seconds: float | None = None,
) -> None:
    """Block until one query ends (or all, with ``until_all``); stop the others, raise the
    first failure (StreamingQueryException)."""
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    try:
        while any(query.isActive for query in queries):
            if deadline is None:
                spark.streams.awaitAnyTermination()  # raises if the query failed
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    log.info("time limit reached, stopping", max_seconds=max_seconds)
                    break
                if not spark.streams.awaitAnyTermination(max(int(remaining), 1)):
                    continue
            spark.streams.resetTerminated()
            if not until_all:
                break
    finally:
        for query in queries:
            if query.isActive:
                query.stop()
    for query in queries:
        failure = query.exception()
        if failure is not None:
            raise failure
