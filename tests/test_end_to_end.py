"""The first slice end to end: the real producer -> Kafka -> the supervised streaming job ->
HDFS, read back with `lakepulse sql`. Runs against the session's private platform."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import wait_for

pytestmark = [pytest.mark.platform, pytest.mark.streaming, pytest.mark.integration]

K = 400
LANDING_DEADLINE_S = 480


def test_each_produced_event_lands_exactly_once_in_hdfs(platform, lake_rows):
    from lakepulse.producer import produce

    report = produce(platform, sources="artificialWithAnomaly", speedup=0, limit=K,
                     progress=False, collect_ids=True, rebase=False)  # fmt: skip
    assert report.ok, report.as_dict()
    assert report.delivered == K
    produced = set(report.event_ids)
    assert len(produced) == K

    ids = ", ".join(f"'{event_id}'" for event_id in sorted(produced))
    query = f"select event_id, count(*) from raw_events where event_id in ({ids}) group by event_id"
    rows = wait_for(lambda: lake_rows(query), lambda r: len(r) >= K,
                     LANDING_DEADLINE_S, f"all {K} events in raw_events")  # fmt: skip
    counts = dict(rows)
    assert set(counts) == produced
    duplicated = {event_id: n for event_id, n in counts.items() if n != 1}
    assert duplicated == {}

    # The same answer through the command line a user types.
    result = subprocess.run(
        [str(Path(sys.executable).parent / "lakepulse"), "sql",
         "select count(*) as events, count(distinct event_id) as ids from raw_events "
         "where source like 'artificialWithAnomaly/%'"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    header, _, values, *_ = result.stdout.strip().splitlines()
    assert header.split() == ["events", "|", "ids"]
    assert values.split() == [str(K), "|", str(K)]


def test_malformed_events_are_quarantined_with_their_reason(platform, lake_rows):
    from confluent_kafka import Producer

    bad = {
        b"this is not json": "not valid JSON",
        b'{"schema_version": 1, "source": "s", "event_time": "2024-01-01T00:00:00Z", "value": 1}':
            "missing event_id",
        b'{"schema_version": 1, "event_id": "x1", "source": "s", "event_time": "yesterday",'
        b' "value": 1}': "event_time",
    }  # fmt: skip
    producer = Producer({"bootstrap.servers": platform.kafka.bootstrap_servers})
    for payload in bad:
        producer.produce(platform.kafka.events_topic, payload, key=b"bad-source")
    assert producer.flush(30) == 0

    query = "select raw_value, reason, kafka_offset from quarantined_events"
    rows = wait_for(lambda: lake_rows(query),
                     lambda r: {row[0] for row in r} >= {p.decode() for p in bad},
                     LANDING_DEADLINE_S, "the malformed events in quarantined_events")  # fmt: skip
    reasons = {row[0].encode(): row[1] for row in rows}
    for payload, expected in bad.items():
        assert expected in reasons[payload]
    assert all(row[2] is not None for row in rows)  # the Kafka offset, to find the original
