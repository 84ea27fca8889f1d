"""Exactly once under crashes: the streaming driver is killed (SIGKILL) five times while a
faulty stream is produced; afterwards the curated `events` table holds every valid event once,
late events are kept apart, malformed ones are quarantined once, and every aggregate window
the stream has closed equals a batch recomputation over the raw zone. Runs on the session's
private platform, whose Airflow supervisor restarts the job after each kill.

Event time is shared by every test of the session: the synthetic events here are produced
close to "now", so the module is marked ``event_time_now`` and runs after the NAB replays of
the other platform tests, which keep their original (2011-2015) timestamps.

The stream closes a window once its watermark (the newest event time minus the allowed
lateness) passes the window's end. Five minutes of data never move the watermark past their
own windows, so the run starts its event time a few minutes in the past and, once everything
is in, one "tick" event a lateness past the run's last event closes all its windows. The tick
lands at most a few minutes ahead of the wall clock: events that later tests send at "now"
stay within the lateness and on time."""

from __future__ import annotations

import datetime as dt
import math
import os
import random
import re
import signal
import threading
from collections import Counter
from pathlib import Path

import pytest
from conftest import wait_for

from lakepulse.producer import produce
from lakepulse.services.process import pid_alive
from lakepulse.sources.faults import FaultConfig
from lakepulse.streaming_status import current_state
from lakepulse.webhdfs import WebHdfs

pytestmark = [pytest.mark.streaming, pytest.mark.integration, pytest.mark.event_time_now]

KILLS = 5
RATE = 300  # events/s
LIMIT = 90_000  # 300 s of producing: the kills (about a minute apart) fall while data flows
SOURCES = 20
FAULTS = FaultConfig(malformed=0.05, duplicates=0.03, late=0.01, out_of_order=0.05)
RESTART_DEADLINE_S = 300
# Event time starts this far back, so that the closing tick stays near the wall clock.
START_BEHIND = dt.timedelta(minutes=8)
TICK_SOURCE = "test/watermark_tick"  # outside synthetic/%, whose windows are compared
FULL_EVENT_ID = re.compile(
    rb'"event_id":\s*"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"'
)


def _jvm_of(python_driver_pid: int) -> int:
    stat = Path(f"/proc/{python_driver_pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def _live_driver(client: WebHdfs, status_dir: str, not_pid: int = 0) -> tuple[int, str] | None:
    """(pid, heartbeat time) of a live driver other than ``not_pid``."""
    state = current_state(client, status_dir, 60)
    beat = state.heartbeat or {}
    pid = int(beat.get("pid") or 0)
    if state.alive and pid and pid != not_pid and pid_alive(pid):
        return pid, beat["updated_at"]
    return None


def _kill_after(client: WebHdfs, status_dir: str, previous_pid: int, seconds: int) -> int:
    """Wait for a driver other than ``previous_pid``; once its heartbeats have covered
    ``seconds`` more, SIGKILL its JVM. Returns the pid killed."""
    pid, first_beat = wait_for(
        lambda: _live_driver(client, status_dir, previous_pid), bool, RESTART_DEADLINE_S,
        "a restarted driver",
    )  # fmt: skip
    due = dt.datetime.fromisoformat(first_beat.replace("Z", "+00:00")) + dt.timedelta(
        seconds=seconds
    )

    def beat_due(found: tuple[int, str] | None) -> bool:
        if found is None or found[0] != pid:
            return True  # the driver went away by itself: nothing to kill
        return dt.datetime.fromisoformat(found[1].replace("Z", "+00:00")) >= due

    found = wait_for(lambda: _live_driver(client, status_dir), beat_due, RESTART_DEADLINE_S,
                     f"driver {pid} running {seconds}s more", interval=0.5)  # fmt: skip
    if found is not None and found[0] == pid:
        os.kill(_jvm_of(pid), signal.SIGKILL)
    return pid


def _kill_at_random_moments(settings, rng: random.Random) -> list[int]:
    """Kill the driver JVM KILLS times, each a random while after it came up."""
    client = WebHdfs(settings.hdfs)
    killed = [0]
    for _ in range(KILLS):
        killed.append(_kill_after(client, settings.status_path, killed[-1], rng.randint(3, 25)))
    return killed[1:]


@pytest.mark.timeout(1800)
def test_kill_9_five_times_loses_and_duplicates_nothing(job_running, lake_rows, lake_spark):
    settings = job_running
    reports = []
    start = _start_on_time(settings, lake_rows)
    producer = threading.Thread(target=lambda: reports.append(produce(
        settings, synthetic=True, rate=RATE, sources_count=SOURCES, limit=LIMIT, faults=FAULTS,
        progress=False, collect_ids=True, seed=7, start=start,
    )))  # fmt: skip
    producer.start()
    killed = _kill_at_random_moments(settings, random.Random(11))
    producer.join(timeout=LIMIT / RATE + 300)
    assert len(killed) == KILLS
    (report,) = reports
    assert report.ok, report.as_dict()

    on_time = set(report.ids_by_kind["valid"]) | set(report.ids_by_kind["out_of_order"])
    late = set(report.ids_by_kind["late"])
    duplicated = set(report.ids_by_kind["duplicate"])
    assert duplicated <= on_time | late  # a duplicate re-sends an event already sent
    client = WebHdfs(settings.hdfs)
    wait_for(lambda: _live_driver(client, settings.status_path), bool, RESTART_DEADLINE_S,
             "the job running again after the last kill")  # fmt: skip

    def curated_counts() -> dict[str, int]:
        rows = lake_rows("select event_id, count(*) from events "
                         "where source like 'synthetic/%' group by event_id")  # fmt: skip
        return dict(rows)

    counts = wait_for(curated_counts, lambda found: on_time <= set(found), RESTART_DEADLINE_S,
                      "every on-time event in the curated table")  # fmt: skip
    assert {event_id: n for event_id, n in counts.items() if n != 1} == {}

    late_rows = dict(lake_rows("select event_id, count(*) from late_events "
                               "where source like 'synthetic/%' group by event_id"))  # fmt: skip
    assert {event_id: n for event_id, n in late_rows.items() if n != 1} == {}
    for event_id in late:  # kept, in exactly one of the two tables
        assert (event_id in counts) != (event_id in late_rows), event_id
    assert len(late & set(late_rows)) >= 0.9 * len(late)
    assert set(late_rows) <= on_time | late  # only late events are called late

    produced = Counter(report.malformed_payloads)
    rows = lake_rows("select raw_bytes, count(*) from quarantined_events group by 1")
    quarantined = {bytes(payload): n for payload, n in rows}
    assert {p: n for p, n in produced.items() if quarantined.get(p, 0) < n} == {}  # none lost
    # Payloads that carry a whole event id occur once; the log-line and cut-short kinds can
    # repeat the same bytes across messages and tests, so only the former are counted exactly.
    unique = [p for p, n in produced.items() if n == 1 and FULL_EVENT_ID.search(p)]
    assert unique and {p: quarantined[p] for p in unique if quarantined[p] != 1} == {}

    streamed_events = sum(counts.values())
    watermark = _close_the_run_windows(settings, lake_rows)
    compared = _assert_closed_windows_equal_a_batch_recomputation(settings, lake_spark, watermark)
    assert compared >= streamed_events  # the run's windows were among those compared


def _start_on_time(settings, lake_rows) -> dt.datetime:
    """START_BEHIND the wall clock, but never behind the stream's watermark: an earlier test
    may have sent events ahead of the clock (the replayed day ends 55 minutes into today)."""
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - START_BEHIND
    front = _newest_raw_event_time(lake_rows)
    if front is None:
        return start
    return max(start, front - _lateness(settings) + dt.timedelta(minutes=1))


def _newest_raw_event_time(lake_rows, where: str = "true") -> dt.datetime | None:
    (newest,) = lake_rows(f"select max(event_time) from raw_events where {where}") or [(None,)]
    return None if newest[0] is None else newest[0].replace(tzinfo=dt.UTC)


def _lateness(settings) -> dt.timedelta:
    from lakepulse.transforms.lateness import parse_delay_ms

    return dt.timedelta(milliseconds=parse_delay_ms(settings.spark.watermark_delay))


def _close_the_run_windows(settings, lake_rows) -> dt.datetime:
    """Send one event a lateness (and a minute) past the run's newest event; return the
    aggregate query's watermark once the stream has moved past every window of the run."""
    from confluent_kafka import Producer

    from lakepulse.events import Event
    from lakepulse.quality.partitions import watermarks
    from lakepulse.streaming.ingest_job import AGGREGATE_QUERY
    from lakepulse.streaming_status import read_heartbeat

    newest = _newest_raw_event_time(lake_rows, "source like 'synthetic/%'")
    tick = Event.create(TICK_SOURCE, newest + _lateness(settings) + dt.timedelta(minutes=1), 0.0)
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers})
    producer.produce(settings.kafka.events_topic, tick.to_json_bytes(), key=tick.key)
    assert producer.flush(30) == 0

    client = WebHdfs(settings.hdfs)
    # Sliding windows reach a window size past their last event; the 1-minute margin is
    # enough for the tumbling ones, so compare what is closed rather than wait for all.
    return wait_for(
        lambda: watermarks(read_heartbeat(client, settings.status_path)).get(AGGREGATE_QUERY),
        lambda mark: mark is not None and mark > newest,
        RESTART_DEADLINE_S,
        "the aggregate query's watermark past the run's newest event",
    )


def _assert_closed_windows_equal_a_batch_recomputation(settings, spark, watermark) -> int:
    """Windows the stream has closed (ending at or before its watermark) hold what a batch
    recomputation over the raw zone gives; returns the events counted in the 1-minute ones."""
    from pyspark.sql import functions as F

    from lakepulse.lake import register_tables
    from lakepulse.transforms.curate import recompute_aggregates

    register_tables(spark, settings)
    synthetic = F.col("source").startswith("synthetic/")
    raw = spark.table("raw_events").where(synthetic)
    days = [row[0] for row in raw.select("event_date").distinct().collect()]
    # From the day before: a sliding window that starts before midnight holds the first day's
    # first events (a run begun just after midnight has such a window).
    first_day = min(days) - dt.timedelta(days=1)
    recomputed = recompute_aggregates(raw, spark.table("late_events"), first_day, max(days))
    counted = 0
    for table, batch in recomputed.items():
        streamed = _closed_windows(spark.table(table).where(synthetic), watermark)
        expected = _closed_windows(batch, watermark)
        assert expected, f"no closed {table} windows to compare (watermark {watermark})"
        only_streamed = sorted(streamed.keys() - expected.keys())
        only_batch = sorted(expected.keys() - streamed.keys())
        differing = sorted(k for k in streamed.keys() & expected.keys()
                           if not _same_stats(streamed[k], expected[k]))  # fmt: skip
        assert not (only_streamed or only_batch or differing), (
            f"{table}: {len(only_streamed)} windows only streamed, e.g. {only_streamed[:3]}; "
            f"{len(only_batch)} only recomputed, e.g. {only_batch[:3]}; {len(differing)} differ, "
            f"e.g. {[(streamed[k], expected[k]) for k in differing[:3]]}"
        )
        if table == "events_agg_1m":
            counted = sum(stats[0] for stats in streamed.values())
    return counted


STATS = ("count", "missing", "min", "max", "mean", "stddev", "p50", "p95")


def _closed_windows(frame, watermark: dt.datetime) -> dict[tuple, tuple]:
    """(source, window_start) -> statistics, for windows ending at or before ``watermark``."""
    from pyspark.sql import functions as F

    closed = frame.where(frame.window_end <= F.lit(watermark))  # an aware time: no local zone
    rows = closed.select("source", "window_start", *STATS).collect()
    return {(row[0], row[1]): tuple(row[2:]) for row in rows}


def _same_stats(streamed: tuple, recomputed: tuple) -> bool:
    """Equal, floats up to summation order (a stream adds its batches up in another order)."""
    return all(
        a == b
        or (
            isinstance(a, float)
            and isinstance(b, float)
            and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
        )
        for a, b in zip(streamed, recomputed, strict=True)
    )
