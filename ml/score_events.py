"""spark-submit entry point: score live events with the champion (scoring_supervisor DAG).

    spark-submit ml/score_events.py [--once] [--max-seconds N]

A streaming query over the raw zone (on-time events, deduplicated within the watermark, as in
the curated table) whose micro-batches lakepulse.ml.scoring.BatchScorer scores: forecasts and
anomaly scores to the ``predictions`` table, anomalies to the Kafka topic ``anomalies``, each
with the model version. Heartbeat: ``<lake>/_status/score_events.json``. ``--once`` scores
what has landed and stops (tests, backfills).
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

from lakepulse.log import get_logger
from lakepulse.ml.scoring import SCORE_QUERY, SCORING_JOB, BatchScorer, predictions_path
from lakepulse.settings import get_settings
from lakepulse.spark_session import build_spark
from lakepulse.streaming.batch_output import ensure_dir, query_run_token
from lakepulse.streaming.ingest_job import (
    HeartbeatListener,
    _lake_stream,
    _trigger,
    checkpoint_root,
    wait_for,
)
from lakepulse.streaming_status import heartbeat_path
from lakepulse.transforms.curate import curated_stream
from lakepulse.transforms.ingest import RAW_PARTITION_COLUMNS
from lakepulse.webhdfs import WebHdfs

COMPONENT = "score_events"
log = get_logger(COMPONENT)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--once", action="store_true", help="score what has landed, then stop")
    parser.add_argument("--max-seconds", type=float, help="stop after this long")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = get_settings()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = build_spark(settings, COMPONENT)
    client = WebHdfs(settings.hdfs, timeout=5.0)
    path = heartbeat_path(settings.status_path, SCORING_JOB)
    heartbeat = HeartbeatListener(spark, lambda data: client.write_bytes(path, data),
                                  primary=SCORE_QUERY)  # fmt: skip
    spark.streams.addListener(heartbeat)
    heartbeat.beat("starting")
    outcome = "stopped"
    try:
        raw_schema = spark.read.parquet(settings.raw_events_path).schema
        raw = _lake_stream(spark, settings.raw_events_path, raw_schema, RAW_PARTITION_COLUMNS)
        events = curated_stream(raw, settings.spark.watermark_delay)
        checkpoint = f"{checkpoint_root(settings).rsplit('/', 1)[0]}/{COMPONENT}/{SCORE_QUERY}"
        ensure_dir(spark, predictions_path(settings))
        writer = (
            events.writeStream.queryName(SCORE_QUERY)
            .option("checkpointLocation", checkpoint)
            .foreachBatch(_scorer(spark, settings, checkpoint))
        )
        query = _trigger(writer, settings, args.once).start()
        log.info("started", predictions=predictions_path(settings), checkpoint=checkpoint,
                 model=settings.ml.registered_model)  # fmt: skip
        wait_for(spark, [query], until_all=args.once, max_seconds=args.max_seconds)
    except Exception as exc:
        outcome = "failed"
        log.error("scoring failed", error=str(exc)[:4000])
        return 1
    finally:
        heartbeat.beat(outcome)
        spark.stop()
    return 0


def _scorer(spark, settings, checkpoint: str):
    """The batch function; its run token (for idempotent file names) is read once started."""
    state: dict = {}

    def score(batch, batch_id: int) -> None:
        if "scorer" not in state:
            state["scorer"] = BatchScorer(spark, settings, query_run_token(spark, checkpoint))
        state["scorer"](batch, batch_id)

    return score


if __name__ == "__main__":
    sys.exit(main())
