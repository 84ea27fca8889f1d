"""Spark reading a pre-filled topic into the no-op sink, with and without the job's parsing.

Runs in its own process (``python -m bench.spark_noop --topic T``) so that its JVM is gone
before the pipeline is measured; prints one JSON object on stdout. Same master, memory and
``maxOffsetsPerTrigger`` as the ingest job (from the settings), ``availableNow`` trigger,
checkpoint in HDFS like the job's. Two rates per read: over its batches alone (the steady
state, which the pipeline's sustained rate compares with) and over the whole query. The
unparsed read runs first, the parsed one second (in a JVM warmed up by the first): the parsed
figure is the reference, the unparsed one shows what the Kafka source alone costs.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from lakepulse.settings import Settings, load_settings
from lakepulse.spark_session import build_spark
from lakepulse.transforms.ingest import parse_kafka_records

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def _kafka_stream(spark: SparkSession, settings: Settings, topic: str) -> DataFrame:
    return (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", settings.kafka.bootstrap_servers)
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .option("maxOffsetsPerTrigger", str(settings.spark.max_offsets_per_trigger))
        .load()
    )


def timed_noop_read(
    spark: SparkSession,
    settings: Settings,
    topic: str,
    transform: Callable[[DataFrame], DataFrame],
) -> dict[str, Any]:
    """Read the whole topic once (availableNow) through ``transform`` into the noop sink."""
    checkpoint = settings.hdfs.lake_path("_checkpoints", f"bench-noop-{uuid.uuid4().hex[:8]}")
    started = time.monotonic()
    query = (
        transform(_kafka_stream(spark, settings, topic))
        .writeStream.format("noop")
        .trigger(availableNow=True)
        .option("checkpointLocation", checkpoint)
        .start()
    )
    query.awaitTermination()
    seconds = time.monotonic() - started
    with_rows = [p for p in query.recentProgress if int(p.numInputRows) > 0]
    rows = sum(int(p.numInputRows) for p in with_rows)
    batch_seconds = sum(int(p.durationMs.get("triggerExecution", 0)) for p in with_rows) / 1000
    return {
        "rows": rows,
        "seconds": round(seconds, 3),
        "rows_per_s": round(rows / seconds, 1) if seconds > 0 else 0.0,
        "batches": len(with_rows),
        "batch_seconds": round(batch_seconds, 3),
        # Steady state: the batches alone, without the query's start and the idle trigger.
        "batch_rows_per_s": round(rows / batch_seconds, 1) if batch_seconds > 0 else 0.0,
    }


def run(settings: Settings, topic: str) -> dict[str, Any]:
    started = time.monotonic()
    spark = build_spark(settings, "bench-spark-noop", with_kafka=True)
    startup = time.monotonic() - started
    try:
        unparsed = timed_noop_read(spark, settings, topic, lambda frame: frame)
        parsed = timed_noop_read(spark, settings, topic, parse_kafka_records)
    finally:
        spark.stop()
    return {"session_start_s": round(startup, 1), "unparsed": unparsed, "parsed": parsed}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topic", required=True)
    args = parser.parse_args(argv)
    logging.getLogger("py4j").setLevel(logging.WARNING)
    print(json.dumps(run(load_settings(), args.topic)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
