"""Read a topic back and count what is in it: per source, per partition, and invalid messages.

Meant for checking a replay (``lakepulse consume``) and for tests, not as the pipeline's
consumer (that is the Spark job). Without a group id it reads as an anonymous observer: it
assigns the partitions itself, joins no consumer group and never commits an offset, so it can
not disturb anyone's position.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from lakepulse.events import InvalidEvent, from_json_bytes
from lakepulse.log import get_logger
from lakepulse.settings import Settings

log = get_logger("consumer")

_MAX_REASONS = 20
_MAX_EXAMPLES = 5
_BATCH = 1_000


class TopicNotFound(LookupError):
    """The topic does not exist on the cluster (or the cluster did not answer)."""


@dataclass
class ConsumeReport:
    topic: str
    group_id: str | None  # None: anonymous read, nothing committed
    messages: int = 0
    valid: int = 0
    invalid: int = 0
    per_source: Counter[str] = field(default_factory=Counter)  # valid events by source
    per_partition: Counter[int] = field(default_factory=Counter)  # all messages by partition
    partitions_by_source: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    invalid_reasons: Counter[str] = field(default_factory=Counter)
    invalid_examples: list[dict[str, Any]] = field(default_factory=list)  # first few, located
    anomalies: int = 0  # valid events labelled is_anomaly=true
    duplicates: int = 0  # repeated event ids (only counted with collect_ids=True)
    event_ids: set[str] | None = None
    timed_out: bool = False  # stopped by timeout_s rather than by the idle period
    elapsed_s: float = 0.0

    @property
    def events_per_s(self) -> float:
        return self.messages / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "group_id": self.group_id,
            "messages": self.messages,
            "valid": self.valid,
            "invalid": self.invalid,
            "anomalies": self.anomalies,
            "duplicates": self.duplicates if self.event_ids is not None else None,
            "sources": len(self.per_source),
            "per_source": dict(sorted(self.per_source.items())),
            # String keys: JSON objects (and the log formatter) allow no others.
            "per_partition": {str(p): n for p, n in sorted(self.per_partition.items())},
            # Should stay empty: the key (the source) pins a source to one partition.
            "sources_in_several_partitions": sorted(
                source for source, parts in self.partitions_by_source.items() if len(parts) > 1
            ),
            "invalid_reasons": dict(self.invalid_reasons),
            "invalid_examples": self.invalid_examples,
            "timed_out": self.timed_out,
            "elapsed_s": round(self.elapsed_s, 3),
        }


def _reason_kind(reason: str) -> str:
    # Reasons read "<rule>: <detail>" ("bad JSON: ...", "wrong type for 'value': ..."): counting
    # by rule keeps the counter small on a flood of similar messages.
    return reason.split(":", 1)[0]


def consume(
    settings: Settings,
    topic: str,
    *,
    timeout_s: float,
    from_beginning: bool = True,
    group_id: str | None = None,
    idle_s: float = 3.0,
    collect_ids: bool = False,
    max_messages: int | None = None,
) -> ConsumeReport:
    """Read ``topic`` until every partition is at its end and nothing new came for ``idle_s``
    seconds, or until ``timeout_s`` (or ``max_messages``); count what was read.

    With ``group_id`` the consumer joins that group, starts from its committed offsets (else
    from the beginning or the end, per ``from_beginning``) and commits what it read at the end.
    ``collect_ids`` keeps the set of event ids and counts duplicates.
    """
    anonymous = group_id is None
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka.bootstrap_servers,
        # librdkafka needs a group id even for assign(); a unique one stays unused.
        "group.id": group_id or f"lakepulse-inspect-{uuid.uuid4().hex[:12]}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest" if from_beginning else "latest",
        "enable.partition.eof": True,
        "isolation.level": "read_committed",
        "client.id": "lakepulse-consumer",
        "logger": log.logger.getChild("librdkafka"),
    }
    consumer = Consumer(config)
    report = ConsumeReport(topic, group_id, event_ids=set() if collect_ids else None)
    started = time.monotonic()
    try:
        partitions = _partitions(consumer, topic, settings.kafka.bootstrap_servers)
        # The partitions this consumer reads: all of them when anonymous, else what the group
        # hands it (filled in by the rebalance callback).
        assigned: set[int] = set()
        if anonymous:
            start = OFFSET_BEGINNING if from_beginning else OFFSET_END
            consumer.assign([TopicPartition(topic, p, start) for p in partitions])
            assigned.update(partitions)
        else:

            def on_assign(_consumer: Consumer, parts: list[TopicPartition]) -> None:
                assigned.update(tp.partition for tp in parts)

            def on_revoke(_consumer: Consumer, parts: list[TopicPartition]) -> None:
                assigned.difference_update(tp.partition for tp in parts)

            consumer.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
        _read(consumer, report, assigned, started, timeout_s, idle_s, max_messages)
        if not anonymous and report.messages:
            # Positions after the last message counted: what was read is what is committed.
            consumer.commit(asynchronous=False)
    finally:
        consumer.close()
        report.elapsed_s = time.monotonic() - started
    log.info("consume finished", **{k: v for k, v in report.as_dict().items() if k != "per_source"})
    return report


def _partitions(consumer: Consumer, topic: str, bootstrap: str) -> list[int]:
    try:
        metadata = consumer.list_topics(topic, timeout=15)
    except KafkaException as exc:
        raise TopicNotFound(f"Kafka at {bootstrap} did not answer: {exc}") from None
    found = metadata.topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        detail = found.error.str() if found is not None and found.error else "no partitions"
        raise TopicNotFound(f"topic {topic!r} is not available on {bootstrap}: {detail}")
    return sorted(found.partitions)


def _read(
    consumer: Consumer,
    report: ConsumeReport,
    partitions: set[int],
    started: float,
    timeout_s: float,
    idle_s: float,
    max_messages: int | None,
) -> None:
    at_end: set[int] = set()
    last_activity = time.monotonic()
    while True:
        now = time.monotonic()
        if now - started >= timeout_s:
            report.timed_out = True
            return
        # Idle only counts once every partition has been read to its end at least once, so a
        # slow first fetch is not mistaken for an empty topic.
        if partitions and at_end >= partitions and now - last_activity >= idle_s:
            return
        if max_messages is not None and report.messages >= max_messages:
            return
        wait = max(0.0, min(0.5, timeout_s - (now - started)))
        batch = _BATCH if max_messages is None else min(_BATCH, max_messages - report.messages)
        for msg in consumer.consume(batch, timeout=wait):
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    at_end.add(msg.partition())
                    continue
                if error.retriable() and not error.fatal():
                    log.warning("transient kafka error", topic=report.topic, error=error.str())
                    continue
                raise RuntimeError(f"consuming {report.topic} failed: {error.str()}")
            last_activity = time.monotonic()
            at_end.discard(msg.partition())
            _count(report, msg.partition(), msg.offset(), msg.value())


def _count(report: ConsumeReport, partition: int, offset: int, value: bytes | None) -> None:
    report.messages += 1
    report.per_partition[partition] += 1
    try:
        event = from_json_bytes(value)
    except InvalidEvent as exc:
        report.invalid += 1
        kind = _reason_kind(exc.reason)
        if kind in report.invalid_reasons or len(report.invalid_reasons) < _MAX_REASONS:
            report.invalid_reasons[kind] += 1
        if len(report.invalid_examples) < _MAX_EXAMPLES:
            report.invalid_examples.append(
                {"partition": partition, "offset": offset, "reason": exc.reason}
            )
        return
    report.valid += 1
    report.per_source[event.source] += 1
    report.partitions_by_source[event.source].add(partition)
    if event.is_anomaly:
        report.anomalies += 1
    if report.event_ids is not None:
        if event.event_id in report.event_ids:
            report.duplicates += 1
        else:
            report.event_ids.add(event.event_id)
