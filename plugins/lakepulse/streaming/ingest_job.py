"""The ingest streaming job: Kafka events topic -> raw events and quarantine, exactly once.

Two streaming queries read the topic, each with its own file sink and checkpoint: valid events
to the raw table, broken records to the quarantine. Spark's file sink commits a batch's files
in its ``_spark_metadata`` log together with the checkpoint, so a replayed batch never shows
up twice for readers (foreachBatch would need its own idempotence). The price is reading and
parsing each record twice, which is small next to the Parquet writes at this volume.

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
from pyspark.sql.streaming import StreamingQuery, StreamingQueryListener

from lakepulse.lake import quarantined_events_path
from lakepulse.log import get_logger
from lakepulse.settings import Settings
from lakepulse.spark_session import SparkSetupError, kafka_jars
from lakepulse.streaming_status import INGEST_JOB
from lakepulse.streaming_status import heartbeat_path as status_file_path
from lakepulse.transforms.ingest import (
    QUARANTINE_PARTITION_COLUMN,
    RAW_PARTITION_COLUMN,
    invalid_events,
    parse_kafka_records,
    valid_events,
)

COMPONENT = INGEST_JOB
# Spark 4.2 still reports a missing Kafka connector under a legacy condition name.
_SOURCE_NOT_FOUND = {"_LEGACY_ERROR_TEMP_1140", "DATA_SOURCE_NOT_FOUND"}
RAW_QUERY = "ingest_events_raw"
QUARANTINE_QUERY = "ingest_events_quarantine"

log = get_logger(COMPONENT)


def heartbeat_path(settings: Settings) -> str:
    """Plain HDFS path of the job's status file (for WebHdfs and the health check)."""
    return status_file_path(settings.status_path, COMPONENT)


def checkpoint_root(settings: Settings) -> str:
    return f"{settings.checkpoints_path}/{COMPONENT}"


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


def start_queries(
    records: DataFrame, settings: Settings, *, once: bool = False
) -> list[StreamingQuery]:
    """Start the raw and quarantine file sinks on a stream with Kafka's columns."""
    parsed = parse_kafka_records(records)
    sinks = [
        (RAW_QUERY, valid_events(parsed), settings.raw_events_path, RAW_PARTITION_COLUMN),
        (
            QUARANTINE_QUERY,
            invalid_events(parsed),
            quarantined_events_path(settings),
            QUARANTINE_PARTITION_COLUMN,
        ),
    ]
    queries: list[StreamingQuery] = []
    try:
        for name, frame, path, partition_column in sinks:
            writer = (
                # One task, so one file per date per batch: HDFS small files are the real
                # cost at this volume. One task parsed and wrote 200k events (the default
                # maxOffsetsPerTrigger) in ~3 s on the loaded 2-core machine, 2 tasks no faster.
                frame.coalesce(1)
                .writeStream.queryName(name)
                .format("parquet")
                .outputMode("append")
                .partitionBy(partition_column)
                .option("path", path)
                .option("checkpointLocation", f"{checkpoint_root(settings)}/{name}")
            )
            if once:
                writer = writer.trigger(availableNow=True)
            else:
                writer = writer.trigger(processingTime=f"{settings.spark.trigger_seconds} seconds")
            queries.append(writer.start())
    except Exception:
        for query in queries:
            query.stop()
        raise
    return queries


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class HeartbeatListener(StreamingQueryListener):
    """Writes the job's status JSON on every query event, including idle ones.

    The health check reads ``updated_at``; the top-level batch figures are the primary
    (raw events) query's. A failed write is logged, never raised: HDFS being away for a
    moment must not stop the ingestion.
    """

    def __init__(
        self, spark: SparkSession, write: Callable[[bytes], None], *, primary: str = RAW_QUERY
    ) -> None:
        self._write = write
        self._primary = primary
        self._lock = threading.RLock()  # callbacks and the driver's own beats
        self._failing = False
        self._queries: dict[str, dict[str, Any]] = {}  # by query id
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
