"""streaming_supervisor brings a crashed job back from its checkpoint, and nothing is lost or
duplicated. Runs on the session's private platform (the supervisor of the real Airflow)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from conftest import wait_for

from lakepulse.producer import produce
from lakepulse.services.process import pid_alive
from lakepulse.streaming_status import current_state, read_heartbeat
from lakepulse.webhdfs import WebHdfs

pytestmark = [pytest.mark.streaming, pytest.mark.platform, pytest.mark.integration]

RESTART_DEADLINE_S = 300
LANDING_DEADLINE_S = 300


def _jvm_of(python_driver_pid: int) -> int:
    stat = Path(f"/proc/{python_driver_pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def test_a_killed_job_is_restarted_from_its_checkpoint_losing_nothing(job_running, lake_rows):
    settings = job_running
    client = WebHdfs(settings.hdfs)
    before = read_heartbeat(client, settings.status_path)
    driver_pid = int(before["pid"])
    restarts_before = len(client.list(f"{settings.status_path}/restarts"))

    # Series no other test replays: a NAB replay's event ids follow source and time, so two
    # tests replaying the same rows would see each other's copies.
    first = produce(settings, sources="realTraffic/TravelTime_387,realTraffic/TravelTime_451",
                    speedup=0, limit=300, progress=False,
                    collect_ids=True, rebase=False)  # fmt: skip
    os.kill(_jvm_of(driver_pid), signal.SIGKILL)  # a crash: no clean shutdown
    second = produce(settings, sources="realTweets", speedup=0, limit=300, progress=False,
                     collect_ids=True, rebase=False)  # fmt: skip
    assert first.ok and second.ok
    produced = set(first.event_ids) | set(second.event_ids)
    assert len(produced) == 600

    def restarted():
        state = current_state(client, settings.status_path, 60)
        pid = int((state.heartbeat or {}).get("pid") or 0)
        return state.alive and pid != driver_pid and pid_alive(pid)

    wait_for(restarted, bool, RESTART_DEADLINE_S, "a new driver with a fresh heartbeat")

    ids = ", ".join(f"'{event_id}'" for event_id in sorted(produced))
    query = f"select event_id, count(*) from raw_events where event_id in ({ids}) group by 1"
    rows = wait_for(lambda: lake_rows(query), lambda r: len(r) >= len(produced),
                    LANDING_DEADLINE_S, "every event produced around the crash")  # fmt: skip
    counts = dict(rows)
    assert set(counts) == produced
    assert {n for n in counts.values()} == {1}

    records = client.list(f"{settings.status_path}/restarts")
    assert len(records) > restarts_before
    newest = max(records, key=lambda entry: entry["pathSuffix"])
    reason = client.read_text(f"{settings.status_path}/restarts/{newest['pathSuffix']}")
    assert "driver pid" in reason or "failed" in reason or "heartbeat" in reason, reason
