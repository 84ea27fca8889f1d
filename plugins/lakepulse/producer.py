"""Replay NAB series (or the synthetic generator) into Kafka at a chosen speed-up or rate.

The producer is idempotent (``enable.idempotence``, ``acks=all``) and keys every message by
its source, so one source stays in one partition and in order. Each event is sent at wall time
``offset / speedup`` after the start; a speed-up of 0 (or infinity) sends as fast as Kafka
takes them. A ``rate`` instead sends that many messages per second of wall time (the synthetic
generator then steps its event time so that it keeps pace with the wall clock).

NAB replays are rebased by default: all series run on one clock that starts at the replay
epoch (see :mod:`lakepulse.sources.nab`); a resumable replay keeps its epoch in the position
file, so a restarted replay sends the same ids. Faults (malformed, duplicate, late,
out-of-order messages; :mod:`lakepulse.sources.faults`) can be mixed in to test the pipeline;
the report counts what was delivered of each kind. Every delivery report is counted: a failure
shows in the report and the log.
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
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import orjson
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka import Message as KafkaMessage
from tqdm import tqdm

from lakepulse.log import get_logger
from lakepulse.settings import Settings
from lakepulse.sources import ReplayEvent
from lakepulse.sources import nab as nab_source
from lakepulse.sources.faults import ID_KINDS, MALFORMED_KINDS, FaultConfig, Kind, Message, inject
from lakepulse.sources.synthetic import DEFAULT_STEP, SyntheticGenerator, step_for_rate

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
# Rate pacing sends a message up to this early rather than waking up for every one of them:
# below a millisecond the wait would be a busy loop (librdkafka polls in whole milliseconds).
_RATE_SLACK_S = 0.002

_Item = ReplayEvent | Message  # what the send loop takes: a plain event or a labelled message


class KafkaUnavailable(RuntimeError):
    """The Kafka cluster could not be reached (or refused the topic) before producing."""


@dataclass
class ProduceReport:
    topic: str
    mode: str  # "nab" or "synthetic"
    speedup: float
    rate: float = 0.0  # messages per second of wall time; 0 when paced by speedup
    sent: int = 0  # handed to the client
    delivered: int = 0  # acknowledged by the brokers
    failed: int = 0  # reported as failed by a delivery report
    undelivered: int = 0  # still queued when the final flush gave up
    per_source: Counter[str] = field(default_factory=Counter)  # delivered, by source
    errors: Counter[str] = field(default_factory=Counter)  # failure reasons and their counts
    interrupted: bool = False  # stopped by SIGTERM / Ctrl-C rather than by limit or data end
    elapsed_s: float = 0.0
    event_ids: list[str] | None = None  # delivered ids, only when asked for (collect_ids=True)
    # Delivered messages by kind ("valid" and the fault kinds) and malformed ones by sub-kind.
    per_kind: Counter[str] = field(default_factory=Counter)
    malformed_kinds: Counter[str] = field(default_factory=Counter)
    # With collect_ids: delivered ids by kind (a duplicate's id also appears under its first
    # kind) and the bytes of the malformed messages, which have no id.
    ids_by_kind: dict[str, list[str]] | None = None
    malformed_payloads: list[bytes] | None = None
    replay_epoch: datetime | None = None  # a rebased NAB replay's offset zero

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
            "rate": self.rate,
            "replay_epoch": None if self.replay_epoch is None else self.replay_epoch.isoformat(),
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
            "per_kind": dict(self.per_kind),
            "malformed_kinds": dict(self.malformed_kinds),
            "errors": dict(self.errors),
        }


class _Deliveries:
    """Delivery-report callback for one kind of message: counts outcomes without keeping
    messages alive. One instance per kind, so a message's kind needs no look-up."""

    def __init__(
        self,
        report: ProduceReport,
        errors_logged: list[bool],
        kind: Kind = "valid",
        detail: str | None = None,
    ) -> None:
        self.report = report
        self.errors_logged = errors_logged  # shared: the first failure is logged once in all
        self.kind = kind
        self.detail = detail

    def __call__(self, err: KafkaError | None, msg: KafkaMessage) -> None:
        report = self.report
        if err is not None:
            report.failed += 1
            reason = f"{err.name()}: {err.str()}"
            if reason in report.errors or len(report.errors) < _MAX_ERROR_KINDS:
                report.errors[reason] += 1
            if not self.errors_logged[0]:
                self.errors_logged[0] = True
                log.error("delivery failed", topic=report.topic, error=reason)
            return
        report.delivered += 1
        report.per_kind[self.kind] += 1
        if self.detail is not None:
            report.malformed_kinds[self.detail] += 1
            if report.malformed_payloads is not None:
                report.malformed_payloads.append(msg.value())
            return
        # Counted like a reader counts valid events by source (duplicates included).
        report.per_source[msg.key().decode()] += 1
        if report.event_ids is not None:
            event_id = orjson.loads(msg.value())["event_id"]
            report.event_ids.append(event_id)
            if report.ids_by_kind is not None:
                report.ids_by_kind[self.kind].append(event_id)


def _callbacks(report: ProduceReport) -> dict[tuple[Kind, str | None], _Deliveries]:
    """A delivery callback per (kind, malformed sub-kind)."""
    logged = [False]
    callbacks = {(kind, None): _Deliveries(report, logged, kind) for kind in ID_KINDS}
    for detail in MALFORMED_KINDS:
        callbacks["malformed", detail] = _Deliveries(report, logged, "malformed", detail)
    return callbacks


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


def resolve_rate(rate: float | None, settings: Settings) -> float:
    """None means the configured rate; 0 means "pace by speed-up instead"."""
    value = settings.producer.rate if rate is None else float(rate)
    if math.isnan(value) or math.isinf(value) or value < 0:
        raise ValueError(f"rate must be a finite number of events/s >= 0, got {value}")
    return value


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
    *,
    rate: float = 0.0,
    sources_count: int | None = None,
    extra_share: float = 0.0,
) -> tuple[str, Iterable[ReplayEvent], int | None]:
    """The events to replay: (mode "nab" or "synthetic", stream, count or None when endless).

    Falls back to the synthetic generator, with a log line saying where NAB can be had, when
    ``<nab_dir>/data`` does not exist. NAB comes with its original times (a
    :class:`~lakepulse.sources.nab.NabReplay`; rebase it with ``.rebased(epoch)``). With a
    ``rate``, the synthetic generator steps its event time so that it keeps up with the wall
    clock at that rate (``extra_share``: the share of messages that are not its events).
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
        count = settings.producer.synthetic_sources if sources_count is None else sources_count
        step = step_for_rate(rate, count, extra_share) if rate > 0 else DEFAULT_STEP
        generator = SyntheticGenerator(
            count, seed=seed, step=step, start=start or synthetic_start(step)
        )
        return "synthetic", generator, None
    replay = nab_source.replay(settings.paths.nab_dir, selection)
    return "nab", replay, replay.total


def _paced(
    events: Iterable[_Item], speedup: float, producer: Producer, stop: _StopFlag
) -> Iterator[_Item]:
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


def _rated(
    events: Iterable[_Item], rate: float, producer: Producer, stop: _StopFlag
) -> Iterator[_Item]:
    """Yield message i at ``i / rate`` seconds after the first, serving callbacks while waiting.

    Due times follow the count, not the previous send: a slow moment is caught up with a burst
    instead of lowering the average rate.
    """
    started = time.monotonic()
    for index, item in enumerate(events):
        due = started + index / rate
        while not stop.stopped:
            wait = due - time.monotonic()
            if wait <= _RATE_SLACK_S:
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
    rate: float | None = None,
    sources_count: int | None = None,
    faults: FaultConfig | None = None,
    rebase: bool | None = None,
) -> ProduceReport:
    """Replay events into ``settings.kafka.events_topic`` and report what was delivered.

    ``sources`` selects NAB series ("category/series" or category names, comma-separated; None
    means ``settings.producer.sources``, empty means all). ``speedup`` None means the configured
    one. ``rate`` (events/s of wall time; None: ``settings.producer.rate``, 0: pace by speed-up)
    replaces the speed-up when set. ``limit`` stops after that many messages; without it NAB runs
    to its end and the synthetic generator runs until SIGTERM or Ctrl-C. ``collect_ids`` keeps
    the delivered event ids (and malformed payloads) in the report (for tests; not for endless
    runs). ``seed`` steers the synthetic generator and the faults; ``sources_count`` is the
    number of synthetic sources (None: ``settings.producer.synthetic_sources``).

    ``start`` is the event time of offset zero: the synthetic start (default now, on the
    generator's step grid) or a rebased NAB replay's epoch (default now, to the second).
    ``rebase`` (None: ``settings.producer.rebase_times``) puts NAB's series on that clock, the
    original times going to ``source_time``; False keeps the original times.

    ``faults`` (None: the shares in ``settings.producer``) mixes malformed, duplicate, late and
    out-of-order messages into the stream, deterministically for a seed; the report counts each
    kind delivered.

    ``resume`` names a position file: a NAB replay skips what an earlier run with the same
    selection delivered, and records how far it got (every few seconds, after a flush, and at
    the end), so restarting the replay does not send the same events twice. The file also keeps
    whether the replay is rebased and its epoch, so a resumed replay sends the same ids whatever
    ``rebase`` and ``start`` say now. A replay that was killed outright resends at most the last
    few seconds of events.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    pace = resolve_speedup(speedup, settings)
    per_second = resolve_rate(rate, settings)
    faults = FaultConfig.from_settings(settings.producer) if faults is None else faults
    topic = topic or settings.kafka.events_topic
    mode, events, total = open_events(
        settings, sources, synthetic, seed, start,
        rate=per_second, sources_count=sources_count, extra_share=faults.extra_share,
    )  # fmt: skip
    replay_key = f"{mode}:{topic}:{sources or settings.producer.sources}"
    if faults.enabled:  # only then: position files of plain replays stay valid
        replay_key += f":faults({faults.describe()}):seed={seed}"
    position = ReplayPosition(resume, replay_key)
    saved = position.load()
    skipped = 0
    epoch: datetime | None = None
    if isinstance(events, nab_source.NabReplay):
        default_rebase = settings.producer.rebase_times
        epoch = replay_epoch(saved, rebase, start, default_rebase, datetime.now(UTC))
        events = events.rebased(epoch)
        position = replace(position, replay_epoch=epoch)
        skipped = saved.delivered if saved is not None else 0
        # Recorded before the first send: a replay killed before its first checkpoint still
        # comes back with the same epoch, hence the same ids for what it resends.
        position.save(skipped)
    stream: Iterable[_Item] = events
    if faults.enabled:
        stream = inject(events, faults, seed)
        total = None  # faults add and hold back messages: the count is not known ahead
    if skipped:
        log.info("resuming replay", skipped=skipped, position_file=str(resume))
        stream = itertools.islice(stream, skipped, None)
        total = None if total is None else max(0, total - skipped)
    if limit is not None:
        total = limit if total is None else min(total, limit)
        stream = itertools.islice(stream, limit)

    report = ProduceReport(
        topic, mode, pace, rate=per_second, replay_epoch=epoch,
        event_ids=[] if collect_ids else None,
        ids_by_kind={kind: [] for kind in ID_KINDS} if collect_ids else None,
        malformed_payloads=[] if collect_ids else None,
    )  # fmt: skip
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
    callbacks = _callbacks(report)
    on_event = callbacks["valid", None]
    log.info(
        "producing", topic=topic, mode=mode, speedup=pace, rate=per_second, limit=limit,
        events=total, replay_epoch=report.as_dict()["replay_epoch"],
        faults=faults.describe() if faults.enabled else None,
    )  # fmt: skip

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
        paced = (
            _rated(stream, per_second, producer, stop)
            if per_second > 0
            else _paced(stream, pace, producer, stop)
        )
        try:
            for item in paced:
                if type(item) is Message:
                    key, value, on_delivery = (
                        item.key,
                        item.value,
                        callbacks[item.kind, item.detail],
                    )
                else:
                    event = item.event
                    key, value, on_delivery = event.key, event.to_json_bytes(), on_event
                if not _send(producer, topic, key, value, on_delivery, stop):
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
class SavedPosition:
    delivered: int
    replay_epoch: datetime | None  # None: the replay sends the original times


@dataclass(frozen=True)
class ReplayPosition:
    """How far a replay got, and its clock, kept in a small JSON file.

    ``{"replay": ..., "delivered": n, "rebased": bool, "replay_epoch": "<ISO>" or null}``; a
    file from before rebasing existed has neither of the last two and means original times.
    """

    path: Path | None
    replay: str  # mode, topic and selection: a position only applies to the same replay
    replay_epoch: datetime | None = None  # what save() records

    def load(self) -> SavedPosition | None:
        """The saved position of this replay, or None (no file, or one for another replay)."""
        if self.path is None or not self.path.is_file():
            return None
        saved = orjson.loads(self.path.read_bytes())
        if saved.get("replay") != self.replay:
            log.warning("position file is for another replay; starting from the beginning",
                        position_file=str(self.path), saved=saved.get("replay"))  # fmt: skip
            return None
        epoch = saved.get("replay_epoch")
        return SavedPosition(
            int(saved["delivered"]), None if epoch is None else datetime.fromisoformat(epoch)
        )

    def save(self, delivered: int) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        epoch = self.replay_epoch
        record = {
            "replay": self.replay,
            "delivered": delivered,
            "rebased": epoch is not None,
            "replay_epoch": None if epoch is None else epoch.isoformat(),
        }
        temporary.write_bytes(orjson.dumps(record))
        temporary.replace(self.path)  # atomic: a crash leaves the old or the new position


def replay_epoch(
    saved: SavedPosition | None,
    rebase: bool | None,
    start: datetime | None,
    default_rebase: bool,
    now: datetime,
) -> datetime | None:
    """The epoch of a NAB replay (None: original times).

    A saved position wins: a resumed replay keeps its clock (rebased or not, same epoch), so it
    sends the ids it would have sent had it never stopped; asking for another is logged and
    ignored (delete the position file to start over). Otherwise ``rebase`` (None: the default)
    decides, and the epoch is ``start`` or ``now`` to the whole second.
    """
    if saved is not None:
        wanted = default_rebase if rebase is None else rebase
        if (rebase is not None and wanted != (saved.replay_epoch is not None)) or (
            start is not None and saved.replay_epoch is not None and start != saved.replay_epoch
        ):
            log.warning(
                "resumed replay keeps the clock in its position file",
                replay_epoch=None if saved.replay_epoch is None else saved.replay_epoch.isoformat(),
                asked_rebase=rebase, asked_start=None if start is None else start.isoformat(),
                hint="delete the position file to start a replay with another clock",
            )  # fmt: skip
        return saved.replay_epoch
    if not (default_rebase if rebase is None else rebase):
        return None
    if start is not None:
        if start.tzinfo is None:
            raise ValueError(f"start {start!r} has no time zone; pass an aware UTC datetime")
        return start.astimezone(UTC)
    return now.astimezone(UTC).replace(microsecond=0)


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
