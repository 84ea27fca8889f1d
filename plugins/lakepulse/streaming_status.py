"""Is the streaming job alive? Read from the heartbeat the job writes to HDFS.

The ingest job's query listener writes ``<status_path>/ingest_events.json`` on every progress
and idle event. The heartbeat, not a process id, is the truth: on a cluster the driver runs on
another machine.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from lakepulse.services.process import pid_alive
from lakepulse.webhdfs import WebHdfs, WebHdfsError

INGEST_JOB = "ingest_events"


@dataclass(frozen=True)
class JobState:
    alive: bool
    reason: str
    heartbeat: dict | None = None
    # False when the heartbeat could not be read: the job may well be running.
    known: bool = True


class HeartbeatUnreadable(RuntimeError):
    """The heartbeat file stayed empty or partial (it is rewritten in place on every beat)."""


def heartbeat_path(status_dir: str, job: str = INGEST_JOB) -> str:
    return f"{status_dir.rstrip('/')}/{job}.json"


def read_heartbeat(
    client: WebHdfs, status_dir: str, job: str = INGEST_JOB, attempts: int = 5
) -> dict | None:
    """The job's last heartbeat, or None when it never wrote one.

    HDFS rewrites the file in place, so a read can land between truncation and the new
    content: such a read is retried a few times before giving up.
    """
    path = heartbeat_path(status_dir, job)
    for attempt in range(attempts):
        try:
            content = client.read_bytes(path)
        except WebHdfsError as exc:
            if exc.status == 404:
                return None
            raise
        try:
            return json.loads(content)
        except json.JSONDecodeError:
            if attempt < attempts - 1:
                time.sleep(0.2)
    raise HeartbeatUnreadable(f"{path} stayed empty or partial over {attempts} reads")


def job_state(
    heartbeat: dict | None, timeout_seconds: float, now: datetime | None = None
) -> JobState:
    """Judge a heartbeat: alive when recent and, for a driver on this host, its process lives."""
    if heartbeat is None:
        return JobState(False, "no heartbeat: the job has never reported progress")
    if heartbeat.get("event") in {"stopped", "failed"}:
        return JobState(False, f"the job reported {heartbeat['event']!r}", heartbeat)
    now = now or datetime.now(UTC)
    updated = datetime.fromisoformat(heartbeat["updated_at"].replace("Z", "+00:00"))
    age = (now - updated).total_seconds()
    on_this_host = heartbeat.get("host") == socket.gethostname() and heartbeat.get("pid")
    if on_this_host and not pid_alive(int(heartbeat["pid"])):
        return JobState(False, f"driver pid {heartbeat['pid']} is gone", heartbeat)
    if age > timeout_seconds:
        return JobState(
            False, f"last heartbeat {age:.0f}s ago (limit {timeout_seconds:.0f}s)", heartbeat
        )
    return JobState(True, f"heartbeat {age:.0f}s ago, batch {heartbeat.get('batch_id')}", heartbeat)


def current_state(
    client: WebHdfs, status_dir: str, timeout_seconds: float, job: str = INGEST_JOB
) -> JobState:
    try:
        heartbeat = read_heartbeat(client, status_dir, job)
    except (WebHdfsError, HeartbeatUnreadable) as exc:
        return JobState(False, f"cannot read the heartbeat from HDFS: {exc}", known=False)
    return job_state(heartbeat, timeout_seconds)


def record_restart(client: WebHdfs, status_dir: str, reason: str, **details: object) -> str:
    """Keep a restart record as one JSON file under ``<status_dir>/restarts/`` (a table)."""
    at = datetime.now(UTC)
    record = {"at": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
              "reason": reason, **details}  # fmt: skip
    path = f"{status_dir.rstrip('/')}/restarts/{at.strftime('%Y%m%dT%H%M%S%fZ')}.json"
    client.write_bytes(path, json.dumps(record, default=str).encode(), overwrite=True)
    return path
