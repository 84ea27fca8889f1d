"""References from Kafka itself: ProducerPerformance and ConsumerPerformance (the broker's jars).

Both run on a scratch topic with the partitions of the events topic. The payloads are real
Lakepulse events from the synthetic generator (``--payload-file``), so the records have our
size and compress like ours, and the same topic then feeds Spark's no-op read. The producer
gets the producer settings Lakepulse's own producer uses (acks, idempotence, linger, batch
size, compression).
"""

from __future__ import annotations

import itertools
import re
import shlex
import subprocess
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lakepulse.producer import PRODUCER_DEFAULTS, open_events
from lakepulse.services.kafka import tool_command
from lakepulse.settings import Settings

PRODUCER_TOOL = "org.apache.kafka.tools.ProducerPerformance"
CONSUMER_TOOL = "org.apache.kafka.tools.ConsumerPerformance"
# librdkafka settings of lakepulse.producer that mean the same for the Java producer.
_SHARED_PRODUCER_KEYS = (
    "acks",
    "enable.idempotence",
    "linger.ms",
    "batch.size",
    "compression.type",
)
_PRODUCER_SUMMARY = re.compile(
    r"(?P<records>\d+) records sent, (?P<rate>[\d.]+) records/sec \((?P<mb>[\d.]+) MB/sec\), "
    r"(?P<avg>[\d.]+) ms avg latency, (?P<max>[\d.]+) ms max latency, (?P<p50>\d+) ms 50th, "
    r"(?P<p95>\d+) ms 95th, (?P<p99>\d+) ms 99th"
)


class ToolError(RuntimeError):
    """A Kafka tool failed or printed something that could not be read."""


@dataclass(frozen=True)
class ProducerPerf:
    records: int
    records_per_s: float
    mb_per_s: float
    latency_avg_ms: float
    latency_p50_ms: float
    latency_p99_ms: float


@dataclass(frozen=True)
class ConsumerPerf:
    records: int
    records_per_s: float  # over the whole run, the group join included
    fetch_records_per_s: float  # over fetching only
    mb_per_s: float


def write_payloads(settings: Settings, path: Path, count: int = 10_000) -> float:
    """``count`` synthetic events, one JSON a line; returns their mean size in bytes."""
    _mode, events, _total = open_events(
        settings, None, True, seed=7, start=None, rate=10_000.0, sources_count=8
    )
    lines = [item.event.to_json_bytes() for item in itertools.islice(events, count)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\n".join(lines) + b"\n")
    return sum(map(len, lines)) / len(lines)


def producer_props(settings: Settings) -> list[str]:
    shared = [f"{key}={str(PRODUCER_DEFAULTS[key]).lower()}" for key in _SHARED_PRODUCER_KEYS]
    return [f"bootstrap.servers={settings.kafka.bootstrap_servers}", *shared]


def _run(command: list[str], timeout: float, log: Path) -> str:
    """Run a tool; its output is kept in ``log`` as well."""
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise ToolError(f"{command[-1]}... did not finish within {timeout:.0f}s") from exc
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(f"$ {shlex.join(command)}\n{result.stdout}\n--- stderr ---\n{result.stderr}")
    if result.returncode != 0:
        raise ToolError(
            f"exit {result.returncode}:\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
        )
    return result.stdout


def parse_producer_output(text: str) -> ProducerPerf:
    """The final summary line (the one with percentiles) of ProducerPerformance."""
    matches = [m for line in text.splitlines() if (m := _PRODUCER_SUMMARY.search(line))]
    if not matches:
        raise ToolError(f"no summary in ProducerPerformance output:\n{text[-2000:]}")
    last = matches[-1]
    return ProducerPerf(
        records=int(last["records"]),
        records_per_s=float(last["rate"]),
        mb_per_s=float(last["mb"]),
        latency_avg_ms=float(last["avg"]),
        latency_p50_ms=float(last["p50"]),
        latency_p99_ms=float(last["p99"]),
    )


def parse_consumer_output(text: str) -> ConsumerPerf:
    """ConsumerPerformance's header line and the values line under it."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    header_at = next((i for i, line in enumerate(lines) if line.startswith("start.time")), None)
    if header_at is None or header_at + 1 >= len(lines):
        raise ToolError(f"no result in ConsumerPerformance output:\n{text[-2000:]}")
    names = [name.strip() for name in lines[header_at].split(",")]
    values = dict(zip(names, (v.strip() for v in lines[header_at + 1].split(",")), strict=True))
    return ConsumerPerf(
        records=int(values["data.consumed.in.nMsg"]),
        records_per_s=float(values["nMsg.sec"]),
        fetch_records_per_s=float(values["fetch.nMsg.sec"]),
        mb_per_s=float(values["MB.sec"]),
    )


def producer_performance(
    settings: Settings, topic: str, records: int, payloads: Path, timeout: float, log: Path
) -> ProducerPerf:
    command = tool_command(
        settings, PRODUCER_TOOL,
        "--topic", topic, "--num-records", str(records), "--throughput", "-1",
        "--payload-file", str(payloads), "--producer-props", *producer_props(settings),
    )  # fmt: skip
    return parse_producer_output(_run(command, timeout, log))


def consumer_performance(
    settings: Settings, topic: str, records: int, timeout: float, log: Path
) -> ConsumerPerf:
    command = tool_command(
        settings, CONSUMER_TOOL,
        "--bootstrap-server", settings.kafka.bootstrap_servers, "--topic", topic,
        "--messages", str(records), "--timeout", "30000",
        "--group", f"bench-perf-{uuid.uuid4().hex[:8]}",
    )  # fmt: skip
    return parse_consumer_output(_run(command, timeout, log))


def as_dict(result: ProducerPerf | ConsumerPerf) -> dict[str, Any]:
    return asdict(result)
