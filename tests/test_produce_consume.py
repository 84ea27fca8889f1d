"""Round trips through a real Kafka broker: what the producer delivers is what a reader finds.

``kafka_settings`` (tests/conftest.py) is a Settings whose Kafka is running, with a fresh topic
name in ``settings.kafka.events_topic``. Each test here works on its own topic derived from it
(created if missing), so the tests do not see each other's events.
"""

from __future__ import annotations

import dataclasses
import itertools
import uuid
from datetime import UTC, datetime

import orjson
import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from lakepulse.consumer import consume
from lakepulse.events import Event
from lakepulse.producer import produce
from lakepulse.settings import Settings
from lakepulse.sources import nab

pytestmark = [pytest.mark.streaming, pytest.mark.integration]

K = 500


def _topic(settings: Settings, suffix: str) -> Settings:
    """A settings copy pointing at a new topic with the configured partition count."""
    name = f"{settings.kafka.events_topic}-{suffix}-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers})
    topic = NewTopic(
        name,
        num_partitions=settings.kafka.events_partitions,
        replication_factor=settings.kafka.replication_factor,
    )
    try:
        admin.create_topics([topic])[name].result(timeout=30)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise
    return dataclasses.replace(
        settings, kafka=dataclasses.replace(settings.kafka, events_topic=name)
    )


@pytest.fixture
def nab_settings(kafka_settings: Settings) -> Settings:
    if not nab.data_dir(kafka_settings.paths.nab_dir).is_dir():
        pytest.skip(f"no NAB corpus at {kafka_settings.paths.nab_dir}")
    return _topic(kafka_settings, "nab")


def test_nab_events_land_exactly_once_one_partition_per_source(nab_settings: Settings) -> None:
    topic = nab_settings.kafka.events_topic
    report = produce(nab_settings, sources="", speedup=0, limit=K, progress=False, collect_ids=True)
    assert report.mode == "nab"
    assert (report.sent, report.delivered, report.failed, report.undelivered) == (K, K, 0, 0)
    assert report.ok and not report.interrupted
    assert report.total == sum(report.per_source.values()) == K
    # The first K events of the merged replay, nothing else.
    expected = [item.event for item in itertools.islice(nab.replay(nab_settings.paths.nab_dir), K)]
    assert report.event_ids is not None
    assert sorted(report.event_ids) == sorted(e.event_id for e in expected)

    read = consume(nab_settings, topic, timeout_s=60, idle_s=1.0, collect_ids=True)
    assert not read.timed_out
    assert (read.messages, read.valid, read.invalid, read.duplicates) == (K, K, 0, 0)
    assert read.event_ids == set(report.event_ids)
    assert read.per_source == report.per_source
    assert len(read.per_source) == 58  # every series starts at offset 0: all are in the first K
    # Keyed by source: each source in exactly one partition, and the keys spread out.
    assert all(len(parts) == 1 for parts in read.partitions_by_source.values())
    assert len(read.per_partition) == min(nab_settings.kafka.events_partitions, 58)
    assert sum(read.per_partition.values()) == K


def test_anonymous_reads_commit_nothing_and_groups_commit(nab_settings: Settings) -> None:
    topic = nab_settings.kafka.events_topic
    assert produce(nab_settings, sources="realTweets", speedup=0, limit=200, progress=False).ok

    again = [consume(nab_settings, topic, timeout_s=60, idle_s=1.0) for _ in range(2)]
    assert [r.messages for r in again] == [200, 200]  # nothing committed in between

    group = f"test-{uuid.uuid4().hex[:8]}"
    first = consume(nab_settings, topic, timeout_s=60, idle_s=1.0, group_id=group)
    second = consume(nab_settings, topic, timeout_s=60, idle_s=1.0, group_id=group)
    assert (first.messages, second.messages) == (200, 0)
    assert set(first.per_source) == {
        s.name for s in nab.select(nab.discover(nab_settings.paths.nab_dir), "realTweets")
    }


def test_synthetic_events_keep_their_labels(kafka_settings: Settings) -> None:
    settings = _topic(kafka_settings, "synthetic")
    sources = settings.producer.synthetic_sources
    limit = sources * 288 * 3  # three days of 5-minute steps
    report = produce(
        settings,
        synthetic=True,
        speedup=0,
        limit=limit,
        progress=False,
        collect_ids=True,
        seed=3,
        start=datetime(2024, 1, 1, tzinfo=UTC),
    )
    assert report.mode == "synthetic" and report.ok and report.delivered == limit
    assert report.event_ids is not None and len(set(report.event_ids)) == limit

    read = consume(settings, settings.kafka.events_topic, timeout_s=60, idle_s=1.0)
    assert (read.messages, read.invalid) == (limit, 0)
    assert read.per_source == report.per_source
    assert len(read.per_source) == sources
    assert read.anomalies > 0
    assert all(len(parts) == 1 for parts in read.partitions_by_source.values())


def test_invalid_messages_are_counted_by_reason(kafka_settings: Settings) -> None:
    settings = _topic(kafka_settings, "invalid")
    topic = settings.kafka.events_topic
    good = [
        Event.create("a/b", datetime(2024, 1, 1, 0, minute, tzinfo=UTC), float(minute))
        for minute in range(5)
    ]
    bad = [
        b"{not json",
        orjson.dumps({"schema_version": 1, "event_id": "x", "event_time": "2024-01-01T00:00:00Z"}),
        orjson.dumps(
            {
                "schema_version": 1,
                "event_id": "y",
                "source": "a/b",
                "event_time": "2024-01-01T00:00:00Z",
                "value": "12",
            }
        ),
    ]
    raw = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers})
    for event in good:
        raw.produce(topic, event.to_json_bytes(), key=event.key)
    for payload in bad:
        raw.produce(topic, payload, key=b"a/b")
    assert raw.flush(30) == 0

    read = consume(settings, topic, timeout_s=60, idle_s=1.0, collect_ids=True)
    assert (read.messages, read.valid, read.invalid) == (8, 5, 3)
    assert read.invalid_reasons == {
        "bad JSON": 1,
        "missing field 'source'": 1,
        "wrong type for 'value'": 1,
    }
    assert [e["offset"] for e in read.invalid_examples] == [5, 6, 7]  # one partition, in order
    assert read.event_ids == {e.event_id for e in good}
    assert read.as_dict()["sources_in_several_partitions"] == []


def test_a_resumed_replay_continues_where_the_last_one_stopped(
    nab_settings: Settings, tmp_path
) -> None:
    position = tmp_path / "position.json"
    first = produce(nab_settings, sources="realAdExchange", speedup=0, limit=300,
                    progress=False, collect_ids=True, resume=position)  # fmt: skip
    second = produce(nab_settings, sources="realAdExchange", speedup=0, limit=200,
                     progress=False, collect_ids=True, resume=position)  # fmt: skip
    assert first.ok and second.ok
    replay = nab.replay(nab_settings.paths.nab_dir, "realAdExchange")
    expected = [item.event.event_id for item in itertools.islice(replay, 500)]
    assert sorted(first.event_ids) == sorted(expected[:300])
    assert sorted(second.event_ids) == sorted(expected[300:])

    read = consume(nab_settings, nab_settings.kafka.events_topic, timeout_s=60, idle_s=1.0)
    assert (read.messages, read.duplicates) == (500, 0)
