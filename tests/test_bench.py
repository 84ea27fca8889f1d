"""The benchmark's own arithmetic and parsing (bench/), without any service running."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `bench` is a top-level folder of the checkout, not installed
    sys.path.insert(0, str(ROOT))

from bench import analysis, cpu, deployment, kafka_tools, report  # noqa: E402
from bench.lake_watch import SinkLog, hdfs_path  # noqa: E402

pytestmark = pytest.mark.bench

PRODUCER_OUTPUT = """\
149713 records sent, 29942.6 records/sec (5.20 MB/sec), 290.1 ms avg latency, 601.0 ms max latency.
1000000 records sent, 97847.4 records/sec (16.94 MB/sec), 85.12 ms avg latency, 402.00 ms max \
latency, 85 ms 50th, 250 ms 95th, 284 ms 99th, 300 ms 99.9th.
"""
CONSUMER_OUTPUT = """\
start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, \
rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
2026-11-26 17:40:01:001, 2026-11-26 17:40:04:001, 52.1, 17.3, 300000, 100000.0, 1800, 1200, \
43.4, 250000.0
"""


def test_kafka_tool_outputs_are_read():
    producer = kafka_tools.parse_producer_output(PRODUCER_OUTPUT)
    assert (producer.records, producer.records_per_s, producer.latency_p99_ms) == (
        1_000_000, 97847.4, 284.0,
    )  # fmt: skip
    consumer = kafka_tools.parse_consumer_output(CONSUMER_OUTPUT)
    assert (consumer.records, consumer.records_per_s, consumer.fetch_records_per_s) == (
        300_000, 100_000.0, 250_000.0,
    )  # fmt: skip
    with pytest.raises(kafka_tools.ToolError):
        kafka_tools.parse_producer_output("Exception in thread main")


def test_private_deployment_keeps_off_the_default_and_test_ports(tmp_path):
    env = deployment.bench_environment(tmp_path / "data", tmp_path / "bench.toml")
    ports = {int(v) for k, v in env.items() if k.endswith("PORT")}
    ports.add(int(env["LAKEPULSE__KAFKA__BOOTSTRAP_SERVERS"].rsplit(":", 1)[1]))
    defaults = {9092, *deployment.DEFAULT_PORTS.values()}
    assert ports == {port + 22000 for port in defaults}
    assert env["LAKEPULSE__AIRFLOW__MANAGED"] == env["LAKEPULSE__MLFLOW__MANAGED"] == "false"


def test_rows_of_a_step_are_found_by_partition_and_offset():
    ranges = analysis.step_ranges({0: 10, 1: 5}, {0: 13, 1: 5, 2: 2})
    assert ranges == {0: (10, 13), 2: (0, 2)} and analysis.range_size(ranges) == 5
    partition = np.array([0, 0, 0, 1, 2, 2])
    offset = np.array([9, 10, 12, 5, 0, 1])
    assert analysis.in_ranges(partition, offset, ranges).tolist() == [0, 1, 1, 0, 1, 1]


def test_curated_rows_take_their_production_time_from_raw_rows():
    ranges = {0: (100, 103)}
    produced = analysis.lookup_produced(
        partition=np.array([0, 0, 0]),
        offset=np.array([102, 100, 101]),
        raw_partition=np.array([0, 0, 1]),
        raw_offset=np.array([100, 102, 100]),
        raw_produced=np.array([1.0, 3.0, 9.0]),
        ranges=ranges,
    )
    assert produced[:2].tolist() == [3.0, 1.0] and np.isnan(produced[2])


def test_latency_percentiles_skip_unknown_rows():
    stats = analysis.latency_stats(np.array([1.0, 2.0, np.nan, 3.0]))
    assert (stats["p50_s"], stats["max_s"]) == (2.0, 3.0)
    assert analysis.latency_stats(np.array([np.nan]))["p99_s"] is None


def test_visible_rate_leaves_out_the_first_and_the_last_partial_batch():
    # 1000 rows/s produced, a batch visible every 10 s; the last batch is half full.
    seen = np.repeat([12.0, 22.0, 32.0, 42.0], [3000, 10_000, 10_000, 5000])
    assert analysis.visible_rate(seen) == pytest.approx(1000.0)
    assert analysis.visible_rate(np.repeat([5.0, 15.0], [10, 20])) == pytest.approx(2.0)
    assert analysis.visible_rate(np.full(10, 5.0)) is None


@pytest.mark.parametrize(
    ("producer_rate", "visible", "drain_s", "growth", "verdict"),
    [
        (1990.0, 1000, 20.0, 100, analysis.SUSTAINED),
        (1500.0, 1000, 20.0, 100, analysis.PRODUCER_LIMITED),
        (1990.0, 900, 20.0, 100, analysis.FELL_BEHIND),
        (1990.0, 1000, 90.0, 100, analysis.FELL_BEHIND),
        (1990.0, 1000, 20.0, 50_000, analysis.FELL_BEHIND),
    ],
)
def test_step_verdicts(producer_rate, visible, drain_s, growth, verdict):
    outcome, why = analysis.classify(
        offered=2000, producer_rate=producer_rate, expected_rows=1000, visible_rows=visible,
        drain_s=drain_s, drain_limit_s=60, growth=growth, growth_limit=20_000,
    )  # fmt: skip
    assert outcome == verdict and why


def test_lag_growth_compares_the_low_points_after_batches():
    assert analysis.lag_growth([(1.0, 500), (11.0, 700), (21.0, 5500)]) == 5000
    assert analysis.lag_growth([(1.0, 500)]) == 0


def test_sink_log_lists_each_committed_file_once():
    log = SinkLog(client=None, table_dir="/lakepulse/raw/events")  # type: ignore[arg-type]
    batch = (
        'v1\n{"path":"hdfs://127.0.0.1:30020/lakepulse/raw/events/event_date=2026-11-26/'
        'part-0.parquet","size":10,"isDir":false,"modificationTime":1,"blockReplication":1,'
        '"blockSize":1,"action":"add"}'
    )
    compact = batch + '\n{"path":"/lakepulse/raw/events/event_date=2026-11-26/part-1.parquet"}'
    assert log._added_files(batch) == ["/lakepulse/raw/events/event_date=2026-11-26/part-0.parquet"]
    assert log._added_files(compact) == [
        "/lakepulse/raw/events/event_date=2026-11-26/part-1.parquet"
    ]
    assert hdfs_path("hdfs://nn:8020/a%20b/c") == "/a b/c"


def test_results_render_as_markdown_with_ratios():
    step = {
        "offered_rate": 2000.0, "producer_rate": 1999.0, "throughput": 1990.0,
        "latency": {"p50_s": 12.0, "p99_s": 20.0, "max_s": 21.0},
        "tables": {"raw_events": {"latency": {"p50_s": 6.0, "p99_s": 9.0}}},
        "verdict": analysis.SUSTAINED, "why": "every event visible, lag bounded",
        "primary_table": "events", "cpu_cores": {report.JOB_CPU: 1.2, cpu.OTHERS: 0.3},
    }  # fmt: skip
    results = {
        "command": ".venv/bin/python -m bench.pipeline", "started_at": "2026-11-26 18:00",
        "elapsed_minutes": 12.0, "load_average_at_end": [2.0, 2.0, 2.0],
        "machine": {"nproc": 2, "cpu_model": "cpu", "memory_gib": 23.5, "kernel": "6",
                    "load_average_at_start": [1.0, 1.0, 1.0]},
        "versions": {"kafka_broker_and_tools": "4.1.2", "pyspark": "4.2.0",
                     "spark_sql_kafka": "4.2.0", "spark_kafka_clients": "3.9.2",
                     "hadoop": "3.4.3", "python": "3.11", "confluent_kafka": "2.16.1",
                     "librdkafka": "2.16.0", "java": ["openjdk 17"], "git_commit": "abc",
                     "git_uncommitted_files": 0},
        "settings": {"master": "local[2]", "driver_memory": "1g", "trigger_seconds": 10,
                     "max_offsets_per_trigger": 200_000, "shuffle_partitions": 4,
                     "watermark_delay": "10 minutes", "events_partitions": 3,
                     "kafka_heap": "512m", "hdfs_heap": "384m"},
        "config": {"sources": 58, "step_seconds": 60.0, "warmup_seconds": 20.0,
                   "poll_interval": 0.25, "code": "worktree"},
        "event_bytes": 182.0, "primary_table": "events", "drain_limit_s": 60.0,
        "poll_resolution": {"median_s": 0.25, "p99_s": 0.3, "max_s": 0.5},
        "references": {"kafka_producer": {"name": "Kafka producer", "rate": 100_000.0}},
        "reference_rates": {"kafka_producer": 100_000.0, "kafka_consumer": 200_000.0,
                            "spark_noop": 20_000.0},
        "steps": [step], "caveats": ["shared machine"],
    }  # fmt: skip
    text = report.render_markdown(results)
    assert "Highest sustained rate: 1,990 events/s produced -> visible in `events`" in text
    assert "| 2,000 | 1,999 | 1,990 | 12.0 | 20.0 | 21.0 | 6.0 / 9.0 |" in text
    assert "| 2.0% | 1.0% | 10.0% | 1.2 / 0.3 |" in text
    assert "- shared machine" in text
