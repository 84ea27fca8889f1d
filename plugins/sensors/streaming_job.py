"""Sensors of the streaming job's life: wait for it to be down, and watch it while it runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import BaseHook, BaseSensorOperator

from hooks.lakepulse_hooks import LakepulseWebHdfsHook
from lakepulse.streaming.watchdog import Observation, assess, observe
from lakepulse.streaming_status import (
    INGEST_JOB,
    HeartbeatUnreadable,
    current_state,
    job_state,
    read_heartbeat,
    record_restart,
)
from lakepulse.webhdfs import WebHdfsError


class StreamingJobDownSensor(BaseSensorOperator):
    """Succeeds when the job's heartbeat is missing, stale, or its driver process is gone.

    The reason is recorded in HDFS (``<status_dir>/restarts/``) and returned (XCom), so every
    (re)start of the job is kept with why it was needed.
    """

    template_fields = ("status_dir",)

    def __init__(self, *, status_dir: str, heartbeat_timeout: float,
                 webhdfs_conn_id: str = "lakepulse_webhdfs", job: str = INGEST_JOB,
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.job = job
        self.status_dir = status_dir
        self.heartbeat_timeout = heartbeat_timeout
        self.webhdfs_conn_id = webhdfs_conn_id
        self._reason = ""

    def poke(self, context: Any) -> bool:
        client = LakepulseWebHdfsHook(self.webhdfs_conn_id).get_conn()
        state = current_state(client, self.status_dir, self.heartbeat_timeout, self.job)
        if not state.known:
            # Unreadable is not down: starting a second job on one checkpoint would be worse.
            self.log.warning("streaming job state unknown, looking again: %s", state.reason)
            return False
        self.log.info("streaming job %s: %s", "alive" if state.alive else "down", state.reason)
        self._reason = state.reason
        return not state.alive

    def execute(self, context: Any) -> str:
        super().execute(context)
        client = LakepulseWebHdfsHook(self.webhdfs_conn_id).get_conn()
        path = record_restart(client, self.status_dir, self._reason, action="start",
                              dag_run_id=context["run_id"], job=self.job)  # fmt: skip
        self.log.info("(re)starting the job because %s; recorded in %s", self._reason, path)
        return self._reason


class StreamingJobWatchdogSensor(BaseSensorOperator):
    """Watches the job started by this DAG run; succeeds when it ended or is unhealthy.

    Returns ``{"outcome": "ended" | "unhealthy", "reason": ..., "pid": ..., "host": ...}``; a
    downstream task stops an unhealthy job, after which the supervisor starts it again. Runs in
    poke mode: the verdict needs the observations of earlier pokes.
    """

    def __init__(self, *, status_dir: str, checkpoint_dir: str, topic: str,
                 heartbeat_timeout: float, stall_after_s: float, max_lag: int,
                 growth_window_s: float, start_grace_s: float,
                 webhdfs_conn_id: str = "lakepulse_webhdfs",
                 kafka_conn_id: str = "lakepulse_kafka", **kwargs: Any) -> None:  # fmt: skip
        kwargs.setdefault("mode", "poke")
        super().__init__(**kwargs)
        self.status_dir = status_dir
        self.checkpoint_dir = checkpoint_dir
        self.topic = topic
        self.heartbeat_timeout = heartbeat_timeout
        self.stall_after_s = stall_after_s
        self.max_lag = max_lag
        self.growth_window_s = growth_window_s
        self.start_grace_s = start_grace_s
        self.webhdfs_conn_id = webhdfs_conn_id
        self.kafka_conn_id = kafka_conn_id
        self._watch_started: datetime | None = None
        self._observations: list[Observation] = []
        self._outcome: dict[str, Any] = {}

    def poke(self, context: Any) -> bool:
        now = datetime.now(UTC)
        self._watch_started = self._watch_started or now
        client = LakepulseWebHdfsHook(self.webhdfs_conn_id).get_conn()
        try:
            heartbeat = read_heartbeat(client, self.status_dir)
        except (WebHdfsError, HeartbeatUnreadable) as exc:
            self.log.warning("heartbeat unreadable, looking again: %s", exc)
            return False
        started_at = _parse_time(heartbeat.get("started_at")) if heartbeat else None
        # A heartbeat from before this run belongs to the job this run replaces.
        if started_at is None or started_at < self._watch_started - timedelta(seconds=60):
            waited = (now - self._watch_started).total_seconds()
            if waited > self.start_grace_s:
                return self._done("ended", f"no job reported within {self.start_grace_s:.0f}s")
            return False
        state = job_state(heartbeat, self.heartbeat_timeout, now)
        if not state.alive:
            return self._done("ended", state.reason, heartbeat)
        bootstrap = BaseHook.get_connection(self.kafka_conn_id).extra_dejson["bootstrap.servers"]
        self._observations.append(observe(client, self.checkpoint_dir, bootstrap, self.topic, now))
        keep_s = max(self.stall_after_s, self.growth_window_s) * 1.5
        self._observations = [o for o in self._observations
                              if (now - o.at).total_seconds() <= keep_s]  # fmt: skip
        verdict = assess(self._observations, stall_after_s=self.stall_after_s,
                         max_lag=self.max_lag, growth_window_s=self.growth_window_s)  # fmt: skip
        self.log.info("streaming job: %s", verdict.reason)
        if not verdict.healthy:
            return self._done("unhealthy", verdict.reason, heartbeat)
        return False

    def _done(self, outcome: str, reason: str, heartbeat: dict | None = None) -> bool:
        heartbeat = heartbeat or {}
        self._outcome = {
            "outcome": outcome,
            "reason": reason,
            **{key: heartbeat.get(key) for key in ("pid", "host", "app_id")},
        }
        self.log.info("watch over: %s (%s)", outcome, reason)
        return True

    def execute(self, context: Any) -> dict[str, Any]:
        super().execute(context)
        return self._outcome


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None
