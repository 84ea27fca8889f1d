"""10% malformed input: every malformed message reaches the dead-letter topic `events.dlq` with
its reason and Kafka coordinates, and no valid event is lost. Runs on the session's private
platform (Kafka, HDFS and the supervised streaming job)."""

from __future__ import annotations

import base64
import json
import time

import pytest
from confluent_kafka import Consumer, TopicPartition
from conftest import wait_for

from lakepulse.producer import produce
from lakepulse.sources.faults import FaultConfig

pytestmark = [pytest.mark.streaming, pytest.mark.integration, pytest.mark.event_time_now]

DEADLINE_S = 420


def _dead_letters(bootstrap: str, topic: str) -> dict[bytes, dict]:
    """Every message of the dead-letter topic, by the original bytes it carries."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "tests-dlq",
                         "enable.auto.commit": False})  # fmt: skip
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in partitions}  # fmt: skip
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        letters: dict[bytes, dict] = {}
        deadline = time.monotonic() + 60
        positions = dict.fromkeys(partitions, 0)
        while any(positions[p] < ends[p] for p in partitions) and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None or message.error():
                continue
            positions[message.partition()] = message.offset() + 1
            letter = json.loads(message.value())
            letters[base64.b64decode(letter["value_base64"] or "")] = letter
        return letters
    finally:
        consumer.close()


def test_every_malformed_event_reaches_the_dead_letter_topic_and_no_valid_one_is_lost(
    job_running, lake_rows
):
    settings = job_running
    report = produce(settings, synthetic=True, rate=1000, sources_count=10, limit=3000,
                     faults=FaultConfig(malformed=0.10), progress=False, collect_ids=True,
                     seed=23)  # fmt: skip
    assert report.ok, report.as_dict()
    assert len(report.malformed_payloads) == report.per_kind["malformed"] > 200
    malformed = set(report.malformed_payloads)  # some kinds repeat the same bytes
    valid = set(report.ids_by_kind["valid"])

    letters = wait_for(
        lambda: _dead_letters(settings.kafka.bootstrap_servers, settings.kafka.dlq_topic),
        lambda found: malformed <= set(found), DEADLINE_S, "every malformed message in the DLQ",
    )  # fmt: skip
    for payload in malformed:
        letter = letters[payload]
        assert letter["reason"], letter
        assert letter["topic"] == settings.kafka.events_topic
        assert letter["offset"] is not None and letter["partition"] is not None

    ids = ", ".join(f"'{event_id}'" for event_id in sorted(valid))
    query = f"select event_id, count(*) from events where event_id in ({ids}) group by 1"
    counts = dict(wait_for(lambda: lake_rows(query), lambda rows: len(rows) >= len(valid),
                           DEADLINE_S, "every valid event in the curated table"))  # fmt: skip
    assert set(counts) == valid
    assert set(counts.values()) == {1}
