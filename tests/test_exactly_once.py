"""Exactly once under crashes: the streaming driver is killed (SIGKILL) five times while a
faulty stream is produced; afterwards the curated `events` table holds every valid event once,
late events are kept apart and malformed ones are quarantined once. (That the streamed
aggregates equal a batch recomputation is checked on a local lake across a restart in
test_streaming_pipeline.py; under these kills it is not checked yet.) Runs on the session's
private platform, whose Airflow supervisor restarts the job after each kill.

Event time is shared by every test of the session: the synthetic events here are produced at
"now", so the module is marked ``event_time_now`` and runs after the NAB replays of the other
platform tests, which keep their original (2011-2015) timestamps."""

from __future__ import annotations

import datetime as dt
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
def test_kill_9_five_times_loses_and_duplicates_nothing(job_running, lake_rows):
    settings = job_running
    reports = []
    producer = threading.Thread(target=lambda: reports.append(produce(
        settings, synthetic=True, rate=RATE, sources_count=SOURCES, limit=LIMIT, faults=FAULTS,
        progress=False, collect_ids=True, seed=7,
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
