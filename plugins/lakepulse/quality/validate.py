"""Validate partitions with the checked-in suites; quarantine and record what fails.

:func:`validate_partition` runs one partition through its suites and returns a
:class:`~lakepulse.quality.verdicts.Verdict` naming each failed expectation with sample rows.
:func:`validate_pending` is what the ``data_quality`` DAG runs: every partition the stream has
closed and nobody has judged yet (or the ones asked for), each one atomically: validate, move
out of the way when it failed, record the verdict. Running it again judges nothing twice.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from lakepulse.log import get_logger
from lakepulse.quality import frames, verdicts
from lakepulse.quality.partitions import Partition, closed_partitions
from lakepulse.quality.profile import load_profile
from lakepulse.quality.suites import ROW_INDEX, get_context
from lakepulse.quality.verdicts import Failure, Verdict
from lakepulse.settings import Settings
from lakepulse.streaming_status import read_heartbeat
from lakepulse.webhdfs import WebHdfs

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = get_logger("data_quality")

# The suites each table's partitions go through, and the frame each suite reads.
SUITES = {
    "raw_events": ("raw_events",),
    "events": ("events", "events_by_source"),
    "events_agg_1m": ("events_agg_1m",),
    "events_agg_5m": ("events_agg_5m",),
}


class Validator:
    """Holds what every partition of a run shares: the GX context, the profile, the clock."""

    def __init__(self, spark: SparkSession, settings: Settings, run_id: str,
                 now: dt.datetime | None = None) -> None:  # fmt: skip
        self.spark = spark
        self.settings = settings
        self.run_id = run_id
        self.now = now or dt.datetime.now(dt.UTC)
        self.context = get_context(settings=settings)
        self.profile = frames.profile_frame(
            spark, load_profile(settings.quality.profile_path)
        ).cache()
        fresh_after = self.now - dt.timedelta(hours=settings.quality.freshness_max_age_hours)
        self.parameters = {
            # Spark hands timestamps to GX as naive UTC datetimes: compare like with like.
            "fresh_after": fresh_after.replace(tzinfo=None).isoformat(),
            "max_mean_shift_sigmas": settings.quality.max_mean_shift_sigmas,
        }

    def run_suite(self, suite: str, frame: DataFrame) -> tuple[int, list[Failure]]:
        """(expectations evaluated, failures) of ``frame`` against ``suite``."""
        from great_expectations.core.run_identifier import RunIdentifier

        checkpoint = self.context.checkpoints.get(suite)
        result = checkpoint.run(
            batch_parameters={"dataframe": frame},
            expectation_parameters=self.parameters,
            run_id=RunIdentifier(run_name=f"{self.run_id}", run_time=self.now),
        )
        failures, evaluated = [], 0
        for validation in result.run_results.values():
            for outcome in validation.results:
                evaluated += 1
                if not outcome.success:
                    failures.append(self._failure(suite, outcome, frame))
        return evaluated, failures

    def _failure(self, suite: str, outcome: Any, frame: DataFrame) -> Failure:
        config = outcome.expectation_config
        kwargs = config.kwargs
        column = kwargs.get("column") or (
            f"{kwargs['column_A']} vs {kwargs['column_B']}" if "column_A" in kwargs else None
        ) or (", ".join(kwargs["column_list"]) if "column_list" in kwargs else None)  # fmt: skip
        result = outcome.result or {}
        info = outcome.exception_info or {}
        if info.get("raised_exception"):
            observed: Any = f"could not be evaluated: {str(info.get('exception_message'))[:300]}"
        elif "observed_value" in result:
            observed = result["observed_value"]
        else:
            observed = f"{result.get('unexpected_percent', 0):.3g}% of rows unexpected"
        return Failure(
            suite=suite,
            expectation=config.type,
            column=column,
            observed=_plain(observed),
            unexpected_count=result.get("unexpected_count"),
            samples=self._samples(suite, result, frame),
        )

    def _samples(self, suite: str, result: dict, frame: DataFrame) -> list[dict[str, Any]]:
        """A few of the rows behind a failure, found through the suite's index column."""
        from pyspark.sql import functions as F

        limit = self.settings.quality.sample_rows
        index = ROW_INDEX.get(suite) or (["source"] if "source" in frame.columns else [])
        keys = [entry.get(index[0]) for entry in result.get("partial_unexpected_index_list") or []
                if isinstance(entry, dict)] if index else []  # fmt: skip
        if not keys and suite == "events_by_source":
            return [_plain(row.asDict()) for row in frame.limit(0).collect()]
        if not keys:
            return [
                {"value": _plain(v)} for v in (result.get("partial_unexpected_list") or [])[:limit]
            ]
        column = F.col(index[0])
        wanted = [k for k in keys if k is not None][: limit * 4]
        condition = column.isin(wanted) if wanted else F.lit(False)
        if any(k is None for k in keys):
            condition = condition | column.isNull()
        shown = [c for c in frame.columns if not c.startswith("kafka_")][:10]
        return [
            _plain(row.asDict())
            for row in frame.where(condition).select(*shown).limit(limit).collect()
        ]

    def build_docs(self) -> None:
        """Rebuild Data Docs (every suite and validation result kept so far)."""
        started = time.monotonic()
        self.context.build_data_docs()
        log.info("data docs built", seconds=round(time.monotonic() - started, 1))

    def read(self, partition: Partition) -> DataFrame | None:
        """The partition's rows as stored (a changed schema stays visible), or None if gone."""
        from pyspark.errors import AnalysisException
        from pyspark.sql import functions as F

        from lakepulse.lake import read_table

        column = partition.spec.partition_column
        if not partition.spec.movable:  # the file sink's log says which files belong
            table = read_table(self.spark, self.settings, partition.table)
            return None if table is None else table.where(F.col(column) == F.lit(partition.day))
        try:
            frame = self.spark.read.parquet(partition.path(self.settings))
        except AnalysisException as exc:
            if exc.getCondition() in {"PATH_NOT_FOUND", "UNABLE_TO_INFER_SCHEMA"}:
                return None
            raise
        return frame.withColumn(column, F.lit(partition.day))

    def validate(self, partition: Partition) -> Verdict | None:
        started = time.monotonic()
        frame = self.read(partition)
        if frame is None:
            return None
        frame = frame.cache()
        try:
            rows = frame.count()
            evaluated, failures = 0, []
            for suite in SUITES[partition.table]:
                target = self._frame_for(suite, frame)
                count, found = self.run_suite(suite, target)
                evaluated += count
                failures.extend(found)
        finally:
            frame.unpersist()
        return Verdict(
            partition=partition.key,
            passed=not failures,
            run_id=self.run_id,
            validated_at=self.now.isoformat(timespec="seconds"),
            rows=rows,
            expectations=evaluated,
            seconds=round(time.monotonic() - started, 2),
            failures=failures,
        )

    def _frame_for(self, suite: str, rows: DataFrame) -> DataFrame:
        if suite in ("raw_events", "events"):
            return frames.with_learned_ranges(rows, self.profile)
        if suite == "events_by_source":
            return frames.source_summary(rows, self.profile)
        return rows


def _plain(value: Any) -> Any:
    """JSON-friendly copies of what Spark and GX hand back (datetimes, dates, decimals)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray):
        return value.hex()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def pending_partitions(client: WebHdfs, settings: Settings) -> list[Partition]:
    """Closed partitions without a verdict yet, oldest first."""
    heartbeat = read_heartbeat(client, settings.status_path)
    judged = {
        partition
        for table in ("raw_events", "events", "events_agg_1m", "events_agg_5m")
        for partition in verdicts.verdicts(client, settings, table)
    }
    return [p for p in closed_partitions(client, settings, heartbeat) if p not in judged]


def validate_pending(
    spark: SparkSession,
    settings: Settings,
    run_id: str,
    partitions: Iterable[Partition] | None = None,
    now: dt.datetime | None = None,
) -> list[Verdict]:
    """Validate ``partitions`` (default: the pending ones); quarantine and record each."""
    client = WebHdfs(settings.hdfs)
    todo: Sequence[Partition] = (
        sorted(set(partitions)) if partitions is not None else pending_partitions(client, settings)
    )
    log.info("validating partitions", count=len(todo), partitions=[p.key for p in todo])
    if not todo:
        return []
    validator = Validator(spark, settings, run_id, now)
    judged = []
    for number, partition in enumerate(todo, 1):
        verdict = validator.validate(partition)
        if verdict is None:
            log.warning("partition is gone; nothing to validate", partition=partition.key)
            continue
        if not verdict.passed:
            moved = verdicts.quarantine(client, settings, partition, run_id)
            verdict = Verdict(**{**verdict.__dict__, "quarantined_to": moved})
        verdicts.record(client, settings, verdict)
        log.info(
            "partition validated",
            progress=f"{number}/{len(todo)}",
            partition=partition.key,
            passed=verdict.passed,
            rows=verdict.rows,
            seconds=verdict.seconds,
            failed=[f.describe() for f in verdict.failures],
        )
        judged.append(verdict)
    validator.build_docs()
    return judged


def reconcile_offsets(validator: Validator) -> tuple[bool, list[Failure], list[dict]] | None:
    """Kafka offsets consumed vs rows landed in the raw zone and the quarantine (whole topic).

    None when there is nothing to compare yet (no committed batch or no data).
    """
    from lakepulse.lake import read_table
    from lakepulse.streaming.ingest_job import QUARANTINE_QUERY, RAW_QUERY, checkpoint_path
    from lakepulse.streaming.watchdog import committed_offsets, offset_bounds

    settings, spark = validator.settings, validator.spark
    client = WebHdfs(settings.hdfs)
    topic = settings.kafka.events_topic

    def committed(query: str) -> dict[int, int]:
        return committed_offsets(client, _path(checkpoint_path(settings, query)), topic) or {}

    raw_done, quarantine_done = committed(RAW_QUERY), committed(QUARANTINE_QUERY)
    low = {
        p: bounds[0] for p, bounds in offset_bounds(settings.kafka.bootstrap_servers, topic).items()
    }
    spans = {
        p: (low[p], min(raw_done.get(p, 0), quarantine_done.get(p, 0)))
        for p in low
        if min(raw_done.get(p, 0), quarantine_done.get(p, 0)) > low[p]
    }
    raw = read_table(spark, settings, "raw_events")
    quarantined = read_table(spark, settings, "quarantined_events")
    if not spans or raw is None:
        return None
    if quarantined is None:
        quarantined = spark.createDataFrame(
            [], "kafka_topic string, kafka_partition int, kafka_offset long"
        )
    frame = frames.offset_reconciliation(raw, quarantined, topic, spans).cache()
    try:
        _, failures = validator.run_suite("kafka_reconciliation", frame)
        rows = [_plain(row.asDict()) for row in frame.collect()]
    finally:
        frame.unpersist()
    return not failures, failures, rows


def _path(uri: str) -> str:
    from lakepulse.quality.partitions import _hdfs_path

    return _hdfs_path(uri)
