"""Benchmark: validating one partition of curated events with the data-quality suites.

    .venv/bin/python -m bench.quality [--events 1000000] [--repeat 3]

Builds one ``events`` partition of N events (the 58 NAB sources of the reviewed profile, values
drawn around each source's history) in a local lake under ``bench/out/quality`` and times, in
the same Spark session (local[2], as the DAG's job runs by default):

- the reference: one Spark pass over the partition computing what the suites compute by hand
  (row count, null counts of the keys, distinct event ids, per-source mean and spread, the
  range check against the profile);
- Lakepulse's validation: ``Validator.validate`` (both suites, Data Docs built), as the
  ``data_quality`` DAG runs it on each partition.

Prints a JSON report and writes ``bench/RESULTS-quality.md`` with the command and machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

from bench.report import machine
from lakepulse.quality.partitions import Partition
from lakepulse.quality.profile import load_profile
from lakepulse.settings import HdfsSettings, PathSettings, Settings, SparkSettings

OUT = Path(__file__).resolve().parent / "out" / "quality"
RESULTS = Path(__file__).resolve().parent / "RESULTS-quality.md"
DAY = dt.date(2026, 11, 1)


def bench_settings() -> Settings:
    return Settings(
        paths=PathSettings(data_dir=OUT / "data"),
        hdfs=HdfsSettings(fs_uri_override="file://", lake_root=str(OUT / "lake")),
        spark=SparkSettings(master="local[2]", shuffle_partitions=4),
    )


def build_partition(spark, settings: Settings, events: int) -> Partition:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from lakepulse.quality.frames import profile_frame

    profile = profile_frame(spark, load_profile(settings.quality.profile_path))
    sources = profile.withColumn("n", F.row_number().over(Window.orderBy("source")) - 1)
    count = sources.count()
    start = dt.datetime.combine(DAY, dt.time(), dt.UTC)
    rows = (
        spark.range(events)
        .withColumn("n", F.col("id") % count)
        .join(F.broadcast(sources), "n")
        .select(
            F.expr("uuid()").alias("event_id"),
            "source",
            (F.lit(start) + F.make_interval(secs=F.col("id") * 86_399 / events)).alias(
                "event_time"
            ),
            (F.col("history_mean") + F.randn(3) * F.col("history_std") * 0.5).alias("value"),
            F.lit(False).alias("value_missing"),
            F.lit(False).alias("is_anomaly"),
            F.lit("events").alias("kafka_topic"),
            (F.col("id") % 3).cast("int").alias("kafka_partition"),
            F.col("id").alias("kafka_offset"),
            F.current_timestamp().alias("ingested_at"),
        )
    )
    partition = Partition("events", DAY)
    rows.write.mode("overwrite").parquet(partition.path(settings))
    return partition


def reference_pass(spark, settings: Settings, partition: Partition) -> int:
    """What the suites compute, written by hand in one Spark pass (plus a per-source pass)."""
    from pyspark.sql import functions as F

    from lakepulse.quality.frames import profile_frame, source_summary, with_learned_ranges

    profile = profile_frame(spark, load_profile(settings.quality.profile_path))
    rows = with_learned_ranges(spark.read.parquet(partition.path(settings)), profile)
    keys = ["event_id", "source", "event_time", "kafka_topic", "kafka_partition", "kafka_offset"]
    rows.agg(
        F.count(F.lit(1)),
        *(F.count_if(F.col(k).isNull()) for k in keys),
        F.count_distinct("event_id"),
        F.max("ingested_at"),
        F.count_if(F.col("value") < F.col("value_low")),
        F.count_if(F.col("value") > F.col("value_high")),
    ).collect()
    return len(source_summary(rows, profile).collect())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each (median)")
    args = parser.parse_args(argv)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

    from lakepulse.quality.validate import Validator
    from lakepulse.spark_session import build_spark

    settings = bench_settings()
    spark = build_spark(settings, "bench_quality")
    started = time.monotonic()
    partition = build_partition(spark, settings, args.events)
    print(f"built a partition of {args.events:,} events in {time.monotonic() - started:.1f}s",
          flush=True)  # fmt: skip
    validator = Validator(spark, settings, "bench")
    validator.validate(partition)  # warm-up: GX's first run loads its renderers
    reference, validation, verdict = [], [], None
    for attempt in range(args.repeat):
        t0 = time.monotonic()
        reference_pass(spark, settings, partition)
        reference.append(time.monotonic() - t0)
        t0 = time.monotonic()
        verdict = validator.validate(partition)
        validator.build_docs()
        validation.append(time.monotonic() - t0)
        print(f"run {attempt + 1}/{args.repeat}: reference {reference[-1]:.1f}s, "
              f"validation {validation[-1]:.1f}s", flush=True)  # fmt: skip
    spark.stop()
    report = {
        "events": args.events,
        "validation_seconds_median": round(statistics.median(validation), 2),
        "reference_seconds_median": round(statistics.median(reference), 2),
        "ratio": round(statistics.median(validation) / statistics.median(reference), 2),
        "validation_seconds": [round(s, 2) for s in validation],
        "reference_seconds": [round(s, 2) for s in reference],
        "expectations": verdict.expectations,
        "passed": verdict.passed,
        "failures": [f.describe() for f in verdict.failures],
        "machine": machine(),
    }
    print(json.dumps(report, indent=2))
    command = ".venv/bin/python -m bench.quality " + shlex.join(argv or sys.argv[1:])
    RESULTS.write_text(
        "# Benchmark: validating one partition\n\n"
        f"Run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} (UTC), produced by:\n\n"
        f"```bash\n{command.strip()}\n```\n\n"
        f"**Machine**: {report['machine']['nproc']} CPUs ({report['machine']['cpu_model']}), "
        f"{report['machine']['memory_gib']} GiB; load average at start "
        f"{report['machine']['load_average_at_start'][0]}. Spark local[2], 4 shuffle partitions, "
        "a local-disk lake.\n\n"
        f"| one `events` partition of {args.events:,} events, 58 sources | median s | runs s |\n"
        "| --- | ---: | --- |\n"
        f"| Lakepulse validation: {verdict.expectations} expectations in 2 suites, Data Docs built "
        f"| {report['validation_seconds_median']} | {report['validation_seconds']} |\n"
        f"| Reference: the same checks by hand in Spark (2 passes) "
        f"| {report['reference_seconds_median']} | {report['reference_seconds']} |\n\n"
        f"Validation takes {report['ratio']}x the hand-written pass: Great Expectations computes "
        "each expectation's metrics in Spark jobs of its own, and renders the results.\n"
    )
    return 0 if verdict.passed else 1


if __name__ == "__main__":
    sys.exit(main())
