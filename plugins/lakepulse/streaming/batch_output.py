"""Idempotent per-batch Parquet output for foreachBatch, and partition overwrites for batch jobs.

Spark's streaming file sink is exactly-once but cannot sort rows (sorting a stream is refused)
and its ``_spark_metadata`` log does not allow a batch job to rewrite partitions. The tables
that need either (``events`` sorted by source; the aggregates, which ``recompute_aggregates``
overwrites; ``late_events``, written with ``events``) are written from ``foreachBatch`` instead:

1. the batch's rows go to ``<table>/_staging/<run>-<batch>/`` (hidden from readers: a leading
   underscore), one sorted file per partition;
2. files a previous attempt of the same batch published are deleted: their names say which
   query run (the checkpoint's query id) and which batch wrote them;
3. the new files are renamed into the partitions as ``batch-<run>-<batch>-<n>.parquet``.

A replayed batch (Spark re-runs the last uncommitted batch after a crash, with the same data
and state) therefore replaces its own files and never adds a second copy. A reader racing a
batch may see part of it for a moment, never a duplicate. A new checkpoint (new query id) never
deletes files of an earlier run. File system calls go through Hadoop's FileSystem API, so the
same code serves hdfs:// and file://.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

STAGING_DIR = "_staging"


def _fs(spark: SparkSession, path: str) -> tuple[Any, Any]:
    jvm = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    return hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hadoop_path


def ensure_dir(spark: SparkSession, path: str) -> None:
    fs, hadoop_path = _fs(spark, path)
    fs.mkdirs(hadoop_path)


def exists(spark: SparkSession, path: str) -> bool:
    fs, hadoop_path = _fs(spark, path)
    return bool(fs.exists(hadoop_path))


def delete(spark: SparkSession, path: str) -> bool:
    fs, hadoop_path = _fs(spark, path)
    return bool(fs.delete(hadoop_path, True))


def _glob(spark: SparkSession, pattern: str) -> list[str]:
    fs, hadoop_path = _fs(spark, pattern)
    statuses = fs.globStatus(hadoop_path)
    return sorted(str(status.getPath().toString()) for status in statuses or [])


def query_run_token(spark: SparkSession, checkpoint: str) -> str:
    """A short id of a checkpoint's query (stable across restarts, new for a new checkpoint)."""
    fs, hadoop_path = _fs(spark, f"{checkpoint}/metadata")
    stream = fs.open(hadoop_path)
    try:
        reader = spark.sparkContext._jvm.java.io.BufferedReader(
            spark.sparkContext._jvm.java.io.InputStreamReader(stream, "UTF-8")
        )
        text = reader.readLine()
    finally:
        stream.close()
    return str(json.loads(text)["id"]).replace("-", "")[:12]


def _batch_prefix(run: str, batch_id: int) -> str:
    return f"batch-{run}-{batch_id:012d}-"


def publish_batch(
    frame: DataFrame,
    table: str,
    *,
    run: str,
    batch_id: int,
    partition_by: Sequence[str],
    sort_by: Sequence[str] = (),
) -> int:
    """Write one micro-batch's rows into ``table`` idempotently; returns the files published.

    One file per partition value (the batch's rows are few; HDFS small files are the cost),
    rows sorted by ``sort_by`` within it.
    """
    spark = frame.sparkSession
    staging = f"{table}/{STAGING_DIR}/{run}-{batch_id}"
    (
        frame.coalesce(1)
        .sortWithinPartitions(*partition_by, *sort_by)
        .write.mode("overwrite")
        .partitionBy(*partition_by)
        .parquet(staging)
    )
    depth = "/".join("*" for _ in partition_by)
    prefix = _batch_prefix(run, batch_id)
    for earlier in _glob(spark, f"{table}/{depth}/{prefix}*.parquet"):
        delete(spark, earlier)
    fs, _ = _fs(spark, table)
    jvm = spark.sparkContext._jvm
    staged = _glob(spark, f"{staging}/{depth}/part-*.parquet")
    staging_uri = str(fs.makeQualified(jvm.org.apache.hadoop.fs.Path(staging)).toString())
    table_uri = str(fs.makeQualified(jvm.org.apache.hadoop.fs.Path(table)).toString())
    for number, source in enumerate(staged):
        partition = source[len(staging_uri) + 1 :].rsplit("/", 1)[0]
        target_dir = jvm.org.apache.hadoop.fs.Path(f"{table_uri}/{partition}")
        fs.mkdirs(target_dir)
        target = jvm.org.apache.hadoop.fs.Path(target_dir, f"{prefix}{number:04d}.parquet")
        if not fs.rename(jvm.org.apache.hadoop.fs.Path(source), target):
            raise OSError(f"cannot move {source} to {target.toString()}")
    delete(spark, staging)
    return len(staged)


def overwrite_partitions(frame: DataFrame, table: str, partition_by: Sequence[str]) -> None:
    """Batch write: replace exactly the partitions present in ``frame`` (dynamic overwrite)."""
    (
        frame.write.mode("overwrite")
        .option("partitionOverwriteMode", "dynamic")
        .partitionBy(*partition_by)
        .parquet(table)
    )


def delete_partitions(
    spark: SparkSession, table: str, column: str, values: Iterable[object]
) -> list[str]:
    """Delete ``<table>/<column>=<value>`` directories that exist; returns those deleted."""
    deleted = []
    for value in values:
        path = f"{table}/{column}={value}"
        if exists(spark, path) and delete(spark, path):
            deleted.append(path)
    return deleted
