"""The pipeline at increasing offered rates: one step per rate, stopping at the first failure.

A step runs Lakepulse's own producer (``lakepulse produce --synthetic --rate R``, a process of
its own) for a bounded time, watches the lake while it runs, then waits for the step's last
events to become visible (or for the drain limit). Its figures come from the rows themselves
(see :mod:`bench.analysis`); the job's heartbeat is snapshotted for the record.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from confluent_kafka import Consumer, TopicPartition

from bench import analysis
from bench.cpu import cores_used
from bench.deployment import job_failure, job_queries
from bench.lake_watch import CURATED, RAW, LakeWatch
from lakepulse.settings import Settings

_TICK_S = 0.5
_PROGRESS_EVERY_S = 10.0
_JOB_CHECK_EVERY_S = 2.0


class JobDied(RuntimeError):
    """The ingest job ended while it was being measured."""


class TopicEnds:
    """End offsets of a topic (partition -> next offset), asked of the broker each time."""

    def __init__(self, bootstrap_servers: str, topic: str) -> None:
        self.topic = topic
        self.consumer = Consumer(
            {"bootstrap.servers": bootstrap_servers, "group.id": "bench-ends",
             "enable.auto.commit": False}
        )  # fmt: skip
        metadata = self.consumer.list_topics(topic, timeout=10)
        self.partitions = sorted(metadata.topics[topic].partitions)

    def __call__(self) -> dict[int, int]:
        return {
            p: self.consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10)[1]
            for p in self.partitions
        }

    def close(self) -> None:
        self.consumer.close()


@dataclass
class StepContext:
    settings: Settings
    watch: LakeWatch
    ends: TopicEnds
    logs_dir: Path
    sources: int
    say: Callable[[str], None]
    cpu: Callable[[], dict[str, float]] = dict
    primary: str = RAW
    lag_after_batches: list[tuple[float, int]] = field(default_factory=list)
    _job_checked: float = 0.0

    def tick(self) -> int:
        """Read what became visible; after a batch of the primary table, sample the lag.

        Raises JobDied when the job is gone (checked every few seconds).
        """
        if time.monotonic() - self._job_checked > _JOB_CHECK_EVERY_S:
            self._job_checked = time.monotonic()
            if (failure := job_failure(self.settings)) is not None:
                raise JobDied(failure)
        before = self.watch.tables[self.primary].count
        self.watch.absorb()
        visible = self.watch.tables[self.primary].count
        lag = sum(self.ends().values()) - visible
        if visible > before:
            self.lag_after_batches.append((time.time(), lag))
        return lag


def producer_command(
    settings: Settings, rate: float, limit: int, seed: int, sources: int
) -> list[str]:
    return [
        str(Path(sys.executable).parent / "lakepulse"), "produce", "--synthetic",
        "--rate", f"{rate:g}", "--limit", str(limit), "--seed", str(seed),
        "--sources-count", str(sources), "--topic", settings.kafka.events_topic, "--no-progress",
    ]  # fmt: skip


def _start_producer(ctx: StepContext, rate: float, seconds: float, seed: int) -> subprocess.Popen:
    command = producer_command(ctx.settings, rate, int(rate * seconds), seed, ctx.sources)
    # The child keeps its own copy of the log's descriptor.
    with open(ctx.logs_dir / f"producer-{rate:g}.log", "ab") as log:
        return subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL
        )


def _run_producer(
    ctx: StepContext, rate: float, seconds: float, seed: int, label: str
) -> dict[str, Any]:
    """Produce for ``seconds`` at ``rate``, watching the lake; returns the producer's report."""
    producer = _start_producer(ctx, rate, seconds, seed)
    started = time.monotonic()
    hard_stop = started + seconds * 1.5 + 15
    abort_lag = rate * max(60.0, 6 * ctx.settings.spark.trigger_seconds)
    next_progress = started + _PROGRESS_EVERY_S
    stopped_because = None
    while producer.poll() is None:
        try:
            lag = ctx.tick()
        except JobDied:
            producer.kill()
            producer.wait()
            raise
        now = time.monotonic()
        if stopped_because is None and (now > hard_stop or lag > abort_lag):
            stopped_because = "time limit" if now > hard_stop else f"lag {lag:,} > {abort_lag:,.0f}"
            producer.send_signal(signal.SIGTERM)  # the producer flushes and reports
        if now >= next_progress:
            _progress(ctx, label, now - started, lag)
            next_progress = now + _PROGRESS_EVERY_S
        time.sleep(_TICK_S)
    output, _ = producer.communicate(timeout=120)
    try:
        report = json.loads(output or b"{}")
    except json.JSONDecodeError:
        report = {}
    report.pop("per_source", None)  # 58 counts: not worth keeping
    report["exit_code"] = producer.returncode
    report["stopped_because"] = stopped_because
    return report


def _progress(ctx: StepContext, label: str, elapsed: float, lag: int) -> None:
    tables = ", ".join(f"{name} {rows.count:,}" for name, rows in ctx.watch.tables.items())
    ctx.say(f"  [{label}] {elapsed:5.0f}s  visible: {tables}  lag ({ctx.primary}): {lag:,}")


def _drain(ctx: StepContext, ends: Mapping[int, int], limit_s: float, label: str) -> None:
    """Wait until the primary table shows rows up to the end offsets ``ends``, or ``limit_s``."""
    started = time.monotonic()
    next_progress = started + _PROGRESS_EVERY_S
    table = ctx.watch.tables[ctx.primary]
    while time.monotonic() < started + limit_s:
        lag = ctx.tick()
        if table.reached(ends):
            return
        if time.monotonic() >= next_progress:
            _progress(ctx, f"{label}, draining", time.monotonic() - started, lag)
            next_progress += _PROGRESS_EVERY_S
        time.sleep(_TICK_S)


def table_figures(watch: LakeWatch, table: str, ranges: analysis.Ranges) -> dict[str, Any]:
    """Rows of the step seen in ``table``: how many, latency, visible rate, last sighting."""
    partition, offset, seen, produced = watch.tables[table].arrays()
    rows = analysis.in_ranges(partition, offset, ranges)
    if table != RAW:
        raw_partition, raw_offset, _raw_seen, raw_produced = watch.tables[RAW].arrays()
        produced = analysis.lookup_produced(
            partition, offset, raw_partition, raw_offset, raw_produced, ranges
        )
    latency = seen[rows] - produced[rows]
    return {
        "rows": int(rows.sum()),
        "visible_rate": analysis.visible_rate(seen[rows]),
        "latency": analysis.latency_stats(latency),
        "first_produced_at": _nan_to_none(np.nanmin(produced[rows])) if rows.any() else None,
        "last_seen_at": float(seen[rows].max()) if rows.any() else None,
    }


def _nan_to_none(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def drain_limit(settings: Settings) -> float:
    """How long after the producer ends the last events may take: two triggers per hop."""
    return 4.0 * settings.spark.trigger_seconds + 20.0


def run_step(
    ctx: StepContext, rate: float, seconds: float, seed: int, label: str
) -> dict[str, Any]:
    ctx.say(f"step {label}: {rate:,.0f} events/s for {seconds:.0f}s")
    ctx.lag_after_batches = []
    before = ctx.ends()
    started_at = time.time()
    cpu_before = ctx.cpu()
    report = _run_producer(ctx, rate, seconds, seed, label)
    produced_until = time.time()
    after = ctx.ends()
    ranges = analysis.step_ranges(before, after)
    batches_during_production = list(ctx.lag_after_batches)
    limit = drain_limit(ctx.settings)
    _drain(ctx, after, limit, label)
    cpu = cores_used(cpu_before, ctx.cpu(), time.time() - started_at)
    figures = {name: table_figures(ctx.watch, name, ranges) for name in ctx.watch.tables}
    ctx.watch.forget()  # the next step starts from the topic's end: these rows are done
    primary = figures[ctx.primary]
    expected = analysis.range_size(ranges)
    producer_rate = float(report.get("events_per_s") or 0.0)
    drain_s = None if primary["last_seen_at"] is None else primary["last_seen_at"] - produced_until
    verdict, why = analysis.classify(
        offered=rate,
        producer_rate=producer_rate,
        expected_rows=expected,
        visible_rows=primary["rows"],
        drain_s=drain_s,
        drain_limit_s=limit,
        growth=analysis.lag_growth(batches_during_production),
        growth_limit=int(rate * ctx.settings.spark.trigger_seconds),
    )
    result = {
        "label": label,
        "offered_rate": rate,
        "seconds": seconds,
        "started_at": started_at,
        "produced": expected,
        "producer_rate": round(producer_rate, 1),
        "producer": report,
        "primary_table": ctx.primary,
        # Sustained: every event produced became visible with a bounded lag, so the pipeline
        # carried the produced rate. Otherwise what it carried is its batch-to-batch rate.
        "throughput": _round(
            producer_rate if verdict == analysis.SUSTAINED else primary["visible_rate"]
        ),
        "batch_to_batch_rate": _round(primary["visible_rate"]),
        "latency": primary["latency"],
        "drain_s": None if drain_s is None else round(drain_s, 1),
        "lag_after_batches": [lag for _t, lag in batches_during_production],
        "lag_growth": analysis.lag_growth(batches_during_production),
        "tables": {
            name: {**f, "visible_rate": _round(f["visible_rate"])} for name, f in figures.items()
        },
        "verdict": verdict,
        "why": why,
        "cpu_cores": cpu,
        "load_average": list(os.getloadavg()),
        "job_queries": job_queries(ctx.settings),
    }
    ctx.say(f"  -> {verdict} ({why}); {summary(result)}")
    return result


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def summary(step: dict[str, Any]) -> str:
    latency = step["latency"]
    p50, p99 = latency["p50_s"], latency["p99_s"]
    return (
        f"produced {step['producer_rate']:,.0f}/s, carried {step['throughput'] or 0:,.0f}/s "
        f"into {step['primary_table']}, latency p50 {p50 if p50 is not None else '-'}s "
        f"p99 {p99 if p99 is not None else '-'}s"
    )


def has_curated_rows(watch: LakeWatch) -> bool:
    return CURATED in watch.tables and watch.tables[CURATED].count > 0
