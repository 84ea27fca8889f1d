"""spark-submit entry point of the ingest streaming job (see lakepulse.streaming.ingest_job).

    spark-submit spark/ingest_events.py [--once] [--max-seconds N] [--allow-data-loss]

One driver runs the job's five queries: Kafka -> raw and quarantine, quarantine -> dead-letter
topic, raw -> events and late_events, raw -> events_agg_1m and events_agg_5m.

Settings come from the environment (``LAKEPULSE__...``) or lakepulse.toml.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

try:
    import lakepulse  # noqa: F401  (pip-installed, editable)
except ModuleNotFoundError:  # fall back to the source tree next to this file
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))

from lakepulse.lake import curated_events_path, late_events_path, quarantined_events_path
from lakepulse.settings import get_settings
from lakepulse.spark_session import SparkSetupError, build_spark
from lakepulse.streaming.ingest_job import (
    COMPONENT,
    HeartbeatListener,
    checkpoint_root,
    dlq_topic,
    heartbeat_path,
    log,
    read_kafka,
    start_queries,
    wait_for,
    webhdfs_writer,
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--once",
        action="store_true",
        help="process what the topic holds now through every table, then exit (availableNow)",
    )
    parser.add_argument(
        "--max-seconds", type=float, default=None, help="stop the queries after this long"
    )
    parser.add_argument(
        "--allow-data-loss",
        action="store_true",
        help="continue when offsets were deleted before they were read (failOnDataLoss=false)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = get_settings()
    # The raw query runs a pandas function on Python workers. spark-submit starts them with
    # spark.pyspark.python; a driver started with plain `python` must say it here, or Spark
    # runs whatever "python3" is on PATH, without pandas and pyarrow.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    try:
        spark = build_spark(settings, COMPONENT, with_kafka=True)
    except SparkSetupError as exc:
        log.error(str(exc))
        return 2

    heartbeat = HeartbeatListener(spark, webhdfs_writer(settings))
    spark.streams.addListener(heartbeat)
    heartbeat.beat("starting")
    outcome = "stopped"
    try:
        records = read_kafka(spark, settings, fail_on_data_loss=not args.allow_data_loss)
        queries = start_queries(records, settings, once=args.once)
        log.info(
            "started",
            app_id=spark.sparkContext.applicationId,
            topic=settings.kafka.events_topic,
            raw=settings.raw_events_path,
            quarantine=quarantined_events_path(settings),
            dlq_topic=dlq_topic(settings),
            events=curated_events_path(settings),
            late_events=late_events_path(settings),
            watermark_delay=settings.spark.watermark_delay,
            checkpoints=checkpoint_root(settings),
            heartbeat=heartbeat_path(settings),
            once=args.once,
        )
        wait_for(spark, queries, until_all=args.once, max_seconds=args.max_seconds)
    except Exception as exc:  # StreamingQueryException, Spark's analysis and py4j errors alike
        outcome = "failed"
        log.error("ingestion failed", error=str(exc)[:4000])
        return 1
    finally:
        heartbeat.beat(outcome)
        spark.stop()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
