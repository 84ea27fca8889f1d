"""Replay NAB series (or the synthetic generator) into Kafka at a chosen speed-up.

The producer is idempotent (``enable.idempotence``, ``acks=all``) and keys every message by
its source, so one source stays in one partition and in order. Each event is sent at wall time
``offset / speedup`` after the start; a speed-up of 0 (or infinity) sends as fast as Kafka
takes them. Every delivery report is counted: a failure shows in the report and the log.
"""

from __future__ import annotations

import itertools
import math
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import orjson
from confluent_kafka import KafkaError, KafkaException, Message, Producer
from tqdm import tqdm

from lakepulse.log import get_logger
from lakepulse.settings import Settings
from lakepulse.sources import ReplayEvent
from lakepulse.sources import nab as nab_source
from lakepulse.sources.synthetic import DEFAULT_STEP, SyntheticGenerator

log = get_logger("producer")

# Throughput over latency: batches of up to 1 MB, lingering 20 ms to fill them, lz4 (cheap on
# CPU, supported by the Java clients Spark uses). murmur2 is the Java clients' partitioner, so
# any Java producer of the same keys lands them in the same partitions.
PRODUCER_DEFAULTS: dict[str, Any] = {
    "acks": "all",
    "enable.idempotence": True,
    "linger.ms": 20,
    "batch.size": 1_000_000,
    "batch.num.messages": 20_000,
    "compression.type": "lz4",
    "partitioner": "murmur2_random",
    "queue.buffering.max.messages": 200_000,
    "queue.buffering.max.kbytes": 262_144,
    # A broker outage fails messages after 2 minutes instead of the default 5.
    "message.timeout.ms": 120_000,
    "client.id": "lakepulse-producer",
}

_POLL_EVERY = 1_000  # serve delivery reports at least this often while sending flat out
_PROGRESS_EVERY = 2_000
_MAX_WAIT_S = 0.2  # longest blocking call, so SIGTERM and Ctrl-C are handled promptly
_CHECKPOINT_EVERY_S = 5.0  # how often a resumable replay records how far it got
_MAX_ERROR_KINDS = 20


class KafkaUnavailable(RuntimeError):
    """The Kafka cluster could not be reached (or refused the topic) before producing."""


@dataclass
class ProduceReport:
    topic: str
    mode: str  # "nab" or "synthetic"
    speedup: float
    sent: int = 0  # handed to the client
    delivered: int = 0  # acknowledged by the brokers
    failed: int = 0  # reported as failed by a delivery report
    undelivered: int = 0  # still queued when the final flush gave up
    per_source: Counter[str] = field(default_factory=Counter)  # delivered, by source
    errors: Counter[str] = field(default_factory=Counter)  # failure reasons and their counts
    interrupted: bool = False  # stopped by SIGTERM / Ctrl-C rather than by limit or data end
    elapsed_s: float = 0.0
    event_ids: list[str] | None = None  # delivered ids, only when asked for (collect_ids=True)

    @property
    def total(self) -> int:
        return self.delivered

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.undelivered == 0

    @property
    def events_per_s(self) -> float:
        return self.delivered / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "mode": self.mode,
            "speedup": self.speedup,
            "sent": self.sent,
            "delivered": self.delivered,
            "failed": self.failed,
            "undelivered": self.undelivered,
            "ok": self.ok,
            "interrupted": self.interrupted,
            "elapsed_s": round(self.elapsed_s, 3),
            "events_per_s": round(self.events_per_s, 1),
            "sources": len(self.per_source),
            "per_source": dict(sorted(self.per_source.items())),
            "errors": dict(self.errors),
        }


class _Deliveries:
    """Delivery-report callback: counts outcomes without keeping messages alive."""

    def __init__(self, report: ProduceReport) -> None:
        self.report = report
        self.first_error_logged = False

    def __call__(self, err: KafkaError | None, msg: Message) -> None:
        report = self.report
        if err is not None:
            report.failed += 1
            reason = f"{err.name()}: {err.str()}"
            if reason in report.errors or len(report.errors) < _MAX_ERROR_KINDS:
                report.errors[reason] += 1
            if not self.first_error_logged:
                self.first_error_logged = True
                log.error("delivery failed", topic=report.topic, error=reason)
            return
        report.delivered += 1
        report.per_source[msg.key().decode()] += 1
        if report.event_ids is not None:
            report.event_ids.append(orjson.loads(msg.value())["event_id"])


class _StopFlag:
    """Turns SIGTERM into a polite stop (the main loop checks it) for the duration of a run."""

    def __init__(self) -> None:
        self.stopped = False
        self._installed = False
        self._previous: Any = None

    def __enter__(self) -> _StopFlag:
        # Signal handlers can only be installed from the main thread (Airflow runs us there).
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
            self._installed = True
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.stopped = True

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            # None means a handler set outside Python; the default is the closest we can restore.
            signal.signal(signal.SIGTERM, self._previous or signal.SIG_DFL)


def resolve_speedup(speedup: float | None, settings: Settings) -> float:
    """None means the configured speed-up; 0 and infinity both mean "no pacing" (returned 0)."""
    value = settings.producer.speedup if speedup is None else float(speedup)
    if math.isnan(value) or value < 0:
        raise ValueError(f"speedup must be >= 0 (0 or inf: as fast as possible), got {value}")
    return 0.0 if math.isinf(value) else value


def synthetic_start(step: timedelta = DEFAULT_STEP) -> datetime:
    """The default synthetic start: now, on the step grid, so a new run gets new event ids
    instead of repeating (and being deduplicated against) an earlier run's."""
    now = datetime.now(UTC)
    return now - (now - datetime(1970, 1, 1, tzinfo=UTC)) % step


def open_events(
    settings: Settings,
    sources: str | Iterable[str] | None,
    synthetic: bool,
    seed: int,
    start: datetime | None,
) -> tuple[str, Iterable[ReplayEvent], int | None]:
    """The events to replay: (mode "nab" or "synthetic", stream, count or None when endless).

    Falls back to the synthetic generator, with a log line saying where NAB can be had, when
    ``<nab_dir>/data`` does not exist.
    """
    selection = settings.producer.sources if sources is None else sources
    nab_data = nab_source.data_dir(settings.paths.nab_dir)
    if not synthetic and not nab_data.is_dir():
        log.warning(
            "no NAB data found, falling back to the synthetic generator",
            nab_data=str(nab_data),
            hint=nab_source.NAB_HINT,
        )
        synthetic = True
    if synthetic:
        if nab_source.parse_selection(selection):
            log.warning("source selection ignored in synthetic mode", sources=str(selection))
        generator = SyntheticGenerator(
            settings.producer.synthetic_sources, seed=seed, start=start or synthetic_start()
        )
        return "synthetic", generator, None
    replay = nab_source.replay(settings.paths.nab_dir, selection)
    return "nab", replay, replay.total


def _paced(
    events: Iterable[ReplayEvent], speedup: float, producer: Producer, stop: _StopFlag
) -> Iterator[ReplayEvent]:
    """Yield each event at its wall time, serving callbacks while waiting.

    Times count from the first event yielded, so a resumed replay does not first wait out the
    part it skipped.
    """
    started = time.monotonic()
    first_offset: float | None = None
    for item in events:
        if first_offset is None:
            first_offset = item.offset
        if speedup > 0:
            due = started + (item.offset - first_offset) / speedup
            while not stop.stopped:
                wait = due - time.monotonic()
                if wait <= 0:
                    break
                producer.poll(min(wait, _MAX_WAIT_S))
        if stop.stopped:
            return
        yield item


def produce(
    settings: Settings,
    *,
    sources: str | Iterable[str] | None = None,
    speedup: float | None = None,
    limit: int | None = None,
    synthetic: bool = False,
    progress: bool = True,
    collect_ids: bool = False,
    seed: int = 0,
    start: datetime | None = None,
    topic: str | None = None,
    kafka_config: Mapping[str, Any] | None = None,
    flush_timeout_s: float = 60.0,
    resume: Path | None = None,
) -> ProduceReport:
    """Replay events into ``settings.kafka.events_topic`` and report what was delivered.

    ``sources`` selects NAB series ("category/series" or category names, comma-separated; None
    means ``settings.producer.sources``, empty means all). ``speedup`` None means the configured
    one. ``limit`` stops after that many events; without it NAB runs to its end and the
    synthetic generator runs until SIGTERM or Ctrl-C. ``collect_ids`` keeps the delivered event
    ids in the report (for tests; not for endless runs). ``seed`` and ``start`` steer the
    synthetic generator (start defaults to now, on its 5-minute grid).

    ``resume`` names a position file: a NAB replay skips what an earlier run with the same
    selection delivered, and records how far it got (every few seconds, after a flush, and at
    the end), so restarting the replay does not send the same events twice. A replay that was
    killed outright resends at most the last few seconds of events.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    pace = resolve_speedup(speedup, settings)
    topic = topic or settings.kafka.events_topic
    mode, events, total = open_events(settings, sources, synthetic, seed, start)
    position = ReplayPosition(resume, f"{mode}:{topic}:{sources or settings.producer.sources}")
    skipped = position.load() if mode == "nab" else 0
    if skipped:
        log.info("resuming replay", skipped=skipped, position_file=str(resume))
        events = itertools.islice(events, skipped, None)
        total = None if total is None else max(0, total - skipped)
    if limit is not None:
        total = limit if total is None else min(total, limit)
        events = itertools.islice(events, limit)

    report = ProduceReport(topic, mode, pace, event_ids=[] if collect_ids else None)
    config = {
        **PRODUCER_DEFAULTS,
        "bootstrap.servers": settings.kafka.bootstrap_servers,
        "error_cb": _log_client_error,
        # librdkafka's own log lines become structured JSON lines like ours (served by poll()).
        "logger": log.logger.getChild("librdkafka"),
        **(kafka_config or {}),
    }
    producer = Producer(config)
    _check_topic(producer, topic, settings.kafka.bootstrap_servers)
    on_delivery = _Deliveries(report)
    log.info("producing", topic=topic, mode=mode, speedup=pace, limit=limit, events=total)

    started = time.monotonic()
    bar = tqdm(
        total=total,
        unit="ev",
        unit_scale=True,
        file=sys.stderr,
        disable=not progress,
        desc=f"produce {mode} -> {topic}",
        mininterval=0.5,
    )
    pending_progress = 0
    next_checkpoint = time.monotonic() + _CHECKPOINT_EVERY_S
    with _StopFlag() as stop:
        try:
            for item in _paced(events, pace, producer, stop):
                event = item.event
                if not _send(producer, topic, event.key, event.to_json_bytes(), on_delivery, stop):
                    break
                report.sent += 1
                pending_progress += 1
                if pending_progress >= _PROGRESS_EVERY:
                    bar.update(pending_progress)
                    pending_progress = 0
                if report.sent % _POLL_EVERY == 0:
                    producer.poll(0)
                if resume is not None and time.monotonic() >= next_checkpoint:
                    if producer.flush(10) == 0 and report.failed == 0:
                        position.save(skipped + report.sent)
                    next_checkpoint = time.monotonic() + _CHECKPOINT_EVERY_S
            report.interrupted = stop.stopped
        except KeyboardInterrupt:
            report.interrupted = True
        finally:
            bar.update(pending_progress)
            bar.close()
            if report.interrupted:
                log.warning("interrupted, flushing what was sent", sent=report.sent)
            report.undelivered = _flush(producer, flush_timeout_s)
            report.elapsed_s = time.monotonic() - started
            if resume is not None and report.ok and mode == "nab":
                position.save(skipped + report.sent)
    _log_report(report)
    return report


@dataclass(frozen=True)
class ReplayPosition:
    """How many events of a replay were delivered, kept in a small JSON file."""

    path: Path | None
    replay: str  # mode, topic and selection: a position only applies to the same replay

    def load(self) -> int:
        if self.path is None or not self.path.is_file():
            return 0
        saved = orjson.loads(self.path.read_bytes())
        if saved.get("replay") != self.replay:
            log.warning("position file is for another replay; starting from the beginning",
                        position_file=str(self.path), saved=saved.get("replay"))  # fmt: skip
            return 0
        return int(saved["delivered"])

    def save(self, delivered: int) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_bytes(orjson.dumps({"replay": self.replay, "delivered": delivered}))
        temporary.replace(self.path)  # atomic: a crash leaves the old or the new position


def _send(
    producer: Producer,
    topic: str,
    key: bytes,
    value: bytes,
    on_delivery: _Deliveries,
    stop: _StopFlag,
) -> bool:
    """Hand one message to the client; False if a stop came while its queue was full."""
    while True:
        try:
            producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
            return True
        except BufferError:
            # The local queue is full: let the client drain it (serving delivery reports).
            producer.poll(_MAX_WAIT_S)
            if stop.stopped:
                return False


def _flush(producer: Producer, timeout_s: float) -> int:
    """Flush in short slices (so a second Ctrl-C is not swallowed); returns what is left."""
    deadline = time.monotonic() + timeout_s
    remaining = len(producer)
    while remaining and time.monotonic() < deadline:
        remaining = producer.flush(min(_MAX_WAIT_S * 5, max(0.0, deadline - time.monotonic())))
    return remaining


def _check_topic(producer: Producer, topic: str, bootstrap: str) -> None:
    """Fail fast with a clear message instead of queueing into a void for two minutes."""
    try:
        metadata = producer.list_topics(topic, timeout=10)
    except KafkaException as exc:
        raise KafkaUnavailable(
            f"Kafka at {bootstrap} is not reachable ({exc.args[0]}); is the broker running?"
        ) from None
    error = metadata.topics[topic].error if topic in metadata.topics else None
    if error is not None and error.code() != KafkaError.LEADER_NOT_AVAILABLE:
        # LEADER_NOT_AVAILABLE is what a topic being auto-created right now reports.
        raise KafkaUnavailable(f"topic {topic!r} on {bootstrap} is not usable: {error.str()}")


def _log_client_error(err: KafkaError) -> None:
    # Client-level errors (broker down, auth) are retried by librdkafka; fatal ones are not.
    level = log.error if err.fatal() else log.warning
    level("kafka client error", error=f"{err.name()}: {err.str()}")


def _log_report(report: ProduceReport) -> None:
    fields = report.as_dict()
    fields.pop("per_source")
    if report.ok:
        log.info("produce finished", **fields)
    else:
        log.error(
            "produce finished with undelivered events",
            **fields,
            hint="see 'errors'; the events not delivered were not written to Kafka",
        )
