"""Round trips through a real Kafka broker: what the producer delivers is what a reader finds.

``kafka_settings`` (tests/conftest.py) is a Settings whose Kafka is running, with a fresh topic
name in ``settings.kafka.events_topic``. Each test here works on its own topic derived from it
(created if missing), so the tests do not see each other's events.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import subprocess
import sys
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from lakepulse.consumer import ConsumeReport, consume
from lakepulse.events import Event
from lakepulse.producer import ProduceReport, produce
from lakepulse.services import kafka, stack
from lakepulse.settings import Settings
from lakepulse.sources import nab
from lakepulse.sources.faults import FaultConfig

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
    assert report.per_kind == {"valid": K}
    # The first K events of the merged replay (rebased by default onto the run's clock).
    assert report.replay_epoch is not None
    assert abs(datetime.now(UTC) - report.replay_epoch) < timedelta(minutes=5)
    replay = nab.replay(nab_settings.paths.nab_dir, epoch=report.replay_epoch)
    expected = [item.event for item in itertools.islice(replay, K)]
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
    # Asking for another clock on resuming changes nothing: the position file's clock wins.
    second = produce(nab_settings, sources="realAdExchange", speedup=0, limit=200,
                     progress=False, collect_ids=True, resume=position,
                     start=datetime(2030, 1, 1, tzinfo=UTC))  # fmt: skip
    assert first.ok and second.ok
    assert first.replay_epoch is not None and second.replay_epoch == first.replay_epoch
    saved = orjson.loads(position.read_bytes())
    assert (saved["delivered"], saved["rebased"]) == (500, True)
    assert datetime.fromisoformat(saved["replay_epoch"]) == first.replay_epoch
    replay = nab.replay(nab_settings.paths.nab_dir, "realAdExchange", epoch=first.replay_epoch)
    expected = [item.event.event_id for item in itertools.islice(replay, 500)]
    assert sorted(first.event_ids) == sorted(expected[:300])
    assert sorted(second.event_ids) == sorted(expected[300:])

    read = consume(nab_settings, nab_settings.kafka.events_topic, timeout_s=60, idle_s=1.0)
    assert (read.messages, read.duplicates) == (500, 0)


def test_original_times_replay_sends_the_corpus_timestamps(nab_settings: Settings) -> None:
    report = produce(nab_settings, sources="realTweets", speedup=0, limit=100, progress=False,
                     collect_ids=True, rebase=False)  # fmt: skip
    assert report.ok and report.replay_epoch is None
    replay = nab.replay(nab_settings.paths.nab_dir, "realTweets")
    expected = [i.event.event_id for i in itertools.islice(replay, 100)]
    assert sorted(report.event_ids) == sorted(expected)  # delivered in partition order


def _reason_kinds(read: ConsumeReport) -> Counter[str]:
    """The reader's reasons, grouped by the producer's malformed sub-kinds."""
    prefixes = {
        "bad JSON": "not_json",
        "missing field": "missing_field",
        "bad timestamp": "bad_timestamp",
        "wrong type for": "wrong_type",
    }
    grouped: Counter[str] = Counter()
    for reason, count in read.invalid_reasons.items():
        (kind,) = [kind for prefix, kind in prefixes.items() if reason.startswith(prefix)]
        grouped[kind] += count
    return grouped


def _check_counts(report: ProduceReport, read: ConsumeReport, n: int) -> None:
    """What the reader finds is, kind by kind, what the producer says it injected."""
    assert report.ok and report.delivered == n == sum(report.per_kind.values())
    assert (read.messages, read.invalid, read.valid) == (
        n, report.per_kind["malformed"], n - report.per_kind["malformed"],
    )  # fmt: skip
    assert read.duplicates == report.per_kind["duplicate"]
    assert _reason_kinds(read) == report.malformed_kinds
    assert read.per_source == report.per_source
    assert all(len(parts) == 1 for parts in read.partitions_by_source.values())


def test_synthetic_faults_are_read_back_with_exact_counts(kafka_settings: Settings) -> None:
    settings = _topic(kafka_settings, "faults")
    n = 6_000
    faults = FaultConfig(malformed=0.1, duplicates=0.02, late=0.01, out_of_order=0.05)
    report = produce(settings, synthetic=True, speedup=0, limit=n, progress=False,
                     collect_ids=True, seed=11, sources_count=50, faults=faults,
                     start=datetime(2026, 1, 1, tzinfo=UTC))  # fmt: skip
    assert set(report.per_kind) == {"valid", "malformed", "duplicate", "late", "out_of_order"}
    assert 0.08 * n < report.per_kind["malformed"] < 0.12 * n
    assert report.per_kind["duplicate"] > 0.01 * n
    assert report.ids_by_kind is not None and report.malformed_payloads is not None
    assert len(report.malformed_payloads) == report.per_kind["malformed"]
    assert {k: len(v) for k, v in report.ids_by_kind.items()} == {
        k: report.per_kind[k] for k in ("valid", "out_of_order", "late", "duplicate")
    }
    # A duplicate repeats an id sent before; no other kind does.
    unique = [i for k in ("valid", "out_of_order", "late") for i in report.ids_by_kind[k]]
    assert len(unique) == len(set(unique))
    assert set(report.ids_by_kind["duplicate"]) <= set(unique)

    read = consume(settings, settings.kafka.events_topic, timeout_s=60, idle_s=1.0,
                   collect_ids=True)  # fmt: skip
    _check_counts(report, read, n)
    assert read.event_ids == set(unique)


def test_cli_produces_a_faulty_stream_at_a_rate(kafka_settings: Settings) -> None:
    settings = _topic(kafka_settings, "cli")
    topic = settings.kafka.events_topic
    n = 3_000
    command = [
        str(Path(sys.executable).parent / "lakepulse"), "produce", "--synthetic",
        "--rate", "2000", "--sources-count", "50", "--malformed", "0.1", "--duplicates", "0.02",
        "--late", "0.01", "--out-of-order", "0.05", "--limit", str(n), "--seed", "3",
        "--topic", topic, "--no-progress",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    printed = json.loads(result.stdout)
    assert printed["rate"] == 2000 and printed["delivered"] == n
    # Paced: 3,000 messages at 2,000/s take 1.5 s (less the pacing slack), not less.
    assert 1.45 <= printed["elapsed_s"] < 6.0, printed["elapsed_s"]
    report = ProduceReport(
        topic, "synthetic", 0, delivered=n, per_kind=Counter(printed["per_kind"]),
        malformed_kinds=Counter(printed["malformed_kinds"]),
        per_source=Counter(printed["per_source"]),
    )  # fmt: skip
    read = consume(settings, topic, timeout_s=60, idle_s=1.0, collect_ids=True)
    _check_counts(report, read, n)
    assert len(read.per_source) == 50


def test_pipeline_topics_get_their_config_and_partition_drift_is_only_reported(
    kafka_settings: Settings,
) -> None:
    suffix = uuid.uuid4().hex[:8]
    settings = dataclasses.replace(
        kafka_settings,
        kafka=dataclasses.replace(
            kafka_settings.kafka, events_topic=f"events-{suffix}", dlq_topic=f"dlq-{suffix}",
            dlq_partitions=2, retention_hours=2, dlq_retention_hours=48,
        ),
        ml=dataclasses.replace(kafka_settings.ml, anomalies_topic=f"anomalies-{suffix}"),
    )  # fmt: skip
    wanted = stack.topics(settings)
    assert sorted(kafka.ensure_topics(settings, wanted)) == sorted(wanted)
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers})
    resources = [ConfigResource("topic", name) for name in wanted]
    described = {
        resource.name: future.result(timeout=30)
        for resource, future in admin.describe_configs(resources).items()
    }
    for name, (_partitions, config) in wanted.items():
        assert {key: described[name][key].value for key in config} == config
    assert described[f"dlq-{suffix}"]["retention.ms"].value == str(48 * 3_600_000)
    metadata = admin.list_topics(timeout=30).topics
    assert len(metadata[f"dlq-{suffix}"].partitions) == 2

    # Another partition count for existing topics: reported, nothing created, nothing raised.
    changed = {name: (partitions + 1, config) for name, (partitions, config) in wanted.items()}
    assert kafka.ensure_topics(settings, changed) == []
    existing = {name: len(metadata[name].partitions) for name in wanted}
    assert kafka.partition_mismatches(changed, existing) == {
        name: (partitions, partitions + 1) for name, (partitions, _) in wanted.items()
    }
